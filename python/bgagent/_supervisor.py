"""How the supervisor process is started: the command line only (the supervisor itself is in
the extension, `_core._supervise`)."""

from __future__ import annotations

from . import _core

# Run by `python -I -S -c`: loads the extension from the path given as argv[1] under its own
# name, without importing the package (its __init__ and everything that imports), and serves.
_LOAD_AND_SERVE = (
    "import sys, importlib.machinery as m, importlib.util as u; "
    "loader = m.ExtensionFileLoader('bgagent._core', sys.argv[1]); "
    "spec = u.spec_from_loader('bgagent._core', loader); "
    "core = u.module_from_spec(spec); loader.exec_module(core); core._supervise()"
)


def command(interpreter: str) -> list[str]:
    """The supervisor's argv: this interpreter, isolated, loading the extension by its path."""
    return [interpreter, "-I", "-S", "-c", _LOAD_AND_SERVE, _core.__file__]
