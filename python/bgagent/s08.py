"""The s08 "Background Tasks" lesson module, name for name and string for string, running on
bgagent's Rust core. Reassign `client`, `BG`, `MODEL`, `SYSTEM`, `TOOLS` or `TOOL_HANDLERS`
and the next `agent_loop` call uses the new value, as in the lesson.

Run the lesson's REPL with:  python -m bgagent.s08
"""

from __future__ import annotations

import codecs
import operator
import os
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import Any

from . import _core, background

_VARIABLE = re.compile(r"\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}")
_BINDING = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z0-9_.\-]+)\s*=(?P<space>\s*)(?P<raw>.*)$")


_DOTENV_LIMIT = 1 << 20  # far above any real .env


def _read_dotenv(path: str) -> str | None:
    """The text of `path` if it is a regular file of at most 1 MiB; else None, with a warning
    if something else is there. The lesson reads a FIFO (and waits for a writer): importing
    this module must not hang."""
    why = None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            why = "is not a regular file"
        else:
            # O_NONBLOCK: a FIFO swapped in after the check does not block the open either.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    why = "is not a regular file"
                else:
                    data = f.read(_DOTENV_LIMIT + 1)
                    if len(data) > _DOTENV_LIMIT:
                        why = "is larger than 1 MiB"
    except OSError:
        return None  # none there, or one that cannot be opened (permissions): skipped
    if why is not None:
        # stacklevel: the line of this module that loads .env.
        warnings.warn(f"bgagent.s08: {path} {why}; not read", RuntimeWarning, stacklevel=3)
        return None
    return data.decode("utf-8")


def _dotenv(path: str) -> dict[str, str]:
    """What the lesson's `load_dotenv(override=True)` sets, for one-line `KEY=value` files:
    quotes and escapes as python-dotenv reads them, and each `${VAR}` (or `${VAR:-default}`)
    taken from the values earlier in the file first, then from the environment."""
    text = _read_dotenv(path)
    if text is None:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _BINDING.match(line)
        if not match:
            continue
        raw = match["raw"]
        quoted = re.match(r"""(['"])((?:\\.|(?!\1).)*)\1""", raw)
        if quoted and quoted[1] == "'":
            value = re.sub(r"\\([\\'])", r"\1", quoted[2])
        elif quoted:
            value = re.sub(
                r"""\\[\\'"abfnrtv]""", lambda m: codecs.decode(m[0], "unicode-escape"), quoted[2]
            )
        elif match["space"] and raw.startswith("#"):
            value = ""
        else:
            value = re.sub(r"\s+#.*", "", raw).rstrip()
        values[match["key"]] = _expand(value, {**os.environ, **values})
    return values


def _expand(value: str, known: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: known.get(m["name"], m["default"] or "") or "", value)


os.environ.update(_dotenv(".env"))

# The lesson drops the bearer token when a base URL is set.
if os.getenv("ANTHROPIC_BASE_URL"):
    os.environ.pop("ANTHROPIC_AUTH_TOKEN", None)

WORKDIR = Path.cwd()
client: Any = _core.Client(base_url=os.getenv("ANTHROPIC_BASE_URL"))
# Importing works without MODEL_ID; the first model call says it is missing.
MODEL = os.environ.get("MODEL_ID")

SYSTEM = f"You are a coding agent at {WORKDIR}. Use background_run for long-running commands."


class BackgroundManager(background.BackgroundManager):
    """The lesson's manager: each task runs in the WORKDIR global as it is when the task starts
    (the lesson's thread reads it then), and gets the whole environment."""

    def __init__(self, workdir: Any = None, **options: Any) -> None:
        options.setdefault("pass_api_key", True)  # the lesson passes the environment on
        options.setdefault("max_running", None)  # the lesson starts every task at once
        options.setdefault("keep_finished", None)  # and keeps every finished task
        options.setdefault("log_budget", None)  # and every log
        options.setdefault("notification_details", False)  # its notifications have four keys
        super().__init__(WORKDIR if workdir is None else workdir, **options)

    def run(self, command: str, workdir: Any = None, *, timeout: float | None = None) -> str:
        if not isinstance(command, str):
            return self._run_not_text(command)
        return super().run(command, WORKDIR if workdir is None else workdir, timeout=timeout)

    def _run_not_text(self, command: Any) -> str:
        """The lesson with a command that is not a string (a number from the model): its thread
        cannot start it and leaves the task as `error`, with no notification, and `run` raises
        TypeError. (Python's subprocess takes a list or bytes too; the mirror does not.)"""
        try:
            list(command)  # what subprocess does with a command that is not text
        except TypeError as e:
            failure = f"Error: {e}"
        else:
            raise _not_text(command)
        self.tasks[self._new_id()] = {"status": "error", "result": failure, "command": command}
        _ = command[:80]  # the lesson's answer slices the command: TypeError
        raise _not_text(command)


# What the lesson's subprocess raises for a command with a NUL byte, before starting anything
# (the core's task result for such a command is the same text).
_NUL = "embedded null byte"


def _not_text(command: Any) -> TypeError:
    """What the mirror raises for a command it cannot run as the lesson would (a list, bytes)."""
    return TypeError(f"bgagent.s08 runs str commands, not {type(command).__name__}")


BG = BackgroundManager()


# The tools take strings. Arguments of other types (the model may send a number) fail as the
# lesson's code fails with them: Python raises the same TypeError because the same operation is
# tried here on the same value; everything else runs in the core.


def _text_path(p: Any) -> str:
    """`p` as the lesson's `WORKDIR / p` takes it, or that expression's TypeError."""
    if isinstance(p, str):
        return p
    if isinstance(p, os.PathLike):
        return os.fspath(p)
    return str(WORKDIR / p)  # raises TypeError for anything else


def safe_path(p: str) -> Path:
    return _core.safe_path(WORKDIR, _text_path(p))


def run_bash(command: str) -> str:
    if not isinstance(command, str):
        _ = "sudo" in command  # the lesson's blocklist test raises TypeError first
        raise _not_text(command)
    answer = _core.run_bash(WORKDIR, command)
    # The lesson tests its blocklist first; then subprocess raises (the core cannot start it).
    if "\0" in command and answer != "Error: Dangerous command blocked":
        raise ValueError(_NUL)
    return answer


def run_read(path: str, limit: int | None = None) -> str:
    try:
        path = _text_path(path)
        if limit is None or isinstance(limit, int):
            return _core.run_read(WORKDIR, path, limit)
        # A limit of another type matters only where the lesson slices with it.
        count = len(_core.read_text(WORKDIR, path).splitlines())
        if limit and limit < count:
            _ = [][:limit]  # the lesson slices its lines: TypeError for 2.0
            limit = operator.index(limit)
        return _core.run_read(WORKDIR, path, limit if isinstance(limit, int) else None)
    except Exception as e:  # noqa: BLE001 - the lesson turns any failure into its text
        return f"Error: {e}"


def run_write(path: str, content: str) -> str:
    try:
        path = _text_path(path)
        if not isinstance(content, str):
            target = safe_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)  # the lesson's step before writing
            target.write_text(content)  # raises TypeError before it opens the file
        return _core.run_write(WORKDIR, path, content)
    except Exception as e:  # noqa: BLE001 - the lesson turns any failure into its text
        return f"Error: {e}"


def run_edit(path: str, old_text: str, new_text: str) -> str:
    try:
        path = _text_path(path)
        if not (isinstance(old_text, str) and isinstance(new_text, str)):
            # The lesson reads the file, then tests `old_text in text`, then replaces.
            text = _core.read_text(WORKDIR, path)
            if old_text not in text:
                return f"Error: Text not found in {path}"
            text.replace(old_text, new_text, 1)
        return _core.run_edit(WORKDIR, path, old_text, new_text)
    except Exception as e:  # noqa: BLE001 - the lesson turns any failure into its text
        return f"Error: {e}"


TOOL_HANDLERS = {
    "bash": lambda **kw: run_bash(kw["command"]),
    "read_file": lambda **kw: run_read(kw["path"], kw.get("limit")),
    "write_file": lambda **kw: run_write(kw["path"], kw["content"]),
    "edit_file": lambda **kw: run_edit(kw["path"], kw["old_text"], kw["new_text"]),
    "background_run": lambda **kw: BG.run(kw["command"]),
    "check_background": lambda **kw: BG.check(kw.get("task_id")),
}

TOOLS = _core.tool_schemas()


# What the loop converted of the history, so each prompt converts only its new messages.
_SENT = _core.MessageCache()


def agent_loop(messages: list) -> None:
    """The lesson's loop: drain and inject background results, call the model, run tools."""
    _core.run_loop(
        messages,
        cache=_SENT,
        client=client,
        model=MODEL,
        system=SYSTEM,
        manager=BG,
        workdir=WORKDIR,
        tools=TOOLS,
        handlers=TOOL_HANDLERS,
        mirror=True,
    )


def main() -> None:
    history: list = []
    while True:
        try:
            query = input("\033[36ms08 >> \033[0m")
        except (EOFError, KeyboardInterrupt):
            break
        if query.strip().lower() in ("q", "exit", ""):
            break
        history.append({"role": "user", "content": query})
        agent_loop(history)
        response_content = history[-1]["content"]
        if isinstance(response_content, list):
            for block in response_content:
                if hasattr(block, "text"):
                    print(block.text)
        print()


if __name__ == "__main__":
    if MODEL is None:
        # The lesson dies here with KeyError at import; one line saying what to do instead.
        print(
            "bgagent.s08: MODEL_ID is not set: put MODEL_ID (and ANTHROPIC_API_KEY) in the "
            "environment or in ./.env; `bgagent --demo` runs with no key",
            file=sys.stderr,
        )
        sys.exit(2)
    main()
