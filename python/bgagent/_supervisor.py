"""How the supervisor process is started: the command line only (the supervisor itself is in
the extension, `_core._supervise`)."""

from __future__ import annotations

from . import _core

# Run by `python -I -S -c`: loads the extension from the path given as argv[1] under its own
# name, without importing the package (its __init__ and everything that imports), and serves.
# Only importlib.machinery (built in): importlib.util would import contextlib and collections,
# a third of the time the first task waits for the supervisor.
_LOAD_AND_SERVE = (
    "import sys, importlib.machinery as m; "
    "loader = m.ExtensionFileLoader('bgagent._core', sys.argv[1]); "
    "spec = m.ModuleSpec('bgagent._core', loader, origin=sys.argv[1]); "
    "core = loader.create_module(spec); loader.exec_module(core); core._supervise()"
)


def command(interpreter: str) -> list[str]:
    """The supervisor's argv: this interpreter, isolated, loading the extension by its path."""
    return [interpreter, "-I", "-S", "-c", _LOAD_AND_SERVE, _core.__file__]
