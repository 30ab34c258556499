"""The s08 "Background Tasks" lesson module, name for name and string for string, running on
bgagent's Rust core. Reassign `client`, `BG`, `MODEL`, `SYSTEM`, `TOOLS` or `TOOL_HANDLERS`
and the next `agent_loop` call uses the new value, as in the lesson.

Run the lesson's REPL with:  python -m bgagent.s08
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from typing_extensions import Self

_VARIABLE = re.compile(r"\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}")
_BINDING = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z0-9_.\-]+)\s*=(?P<space>\s*)(?P<raw>.*)$")


def _dotenv(path: str) -> dict[str, str]:
    """What the lesson's `load_dotenv(override=True)` sets, for one-line `KEY=value` files:
    quotes and escapes as python-dotenv reads them, and each `${VAR}` (or `${VAR:-default}`)
    taken from the values earlier in the file first, then from the environment."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in lines:
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


class BackgroundManager(_core.BackgroundManager):
    """The lesson's manager: each task runs in the WORKDIR global as it is when the task starts
    (the lesson's thread reads it then), and gets the whole environment."""

    def __init__(self, workdir: Any = None, **options: Any) -> None:
        # The core object is built by __new__ (below); nothing is left to set here.
        pass

    def __new__(cls, workdir: Any = None, **options: Any) -> Self:
        options.setdefault("pass_api_key", True)  # the lesson passes the environment on
        return super().__new__(cls, WORKDIR if workdir is None else workdir, **options)

    def run(self, command: str, workdir: Any = None) -> str:
        return super().run(command, WORKDIR if workdir is None else workdir)


BG = BackgroundManager()


def safe_path(p: str) -> Path:
    return _core.safe_path(WORKDIR, p)


def run_bash(command: str) -> str:
    return _core.run_bash(WORKDIR, command)


def run_read(path: str, limit: int | None = None) -> str:
    return _core.run_read(WORKDIR, path, limit)


def run_write(path: str, content: str) -> str:
    return _core.run_write(WORKDIR, path, content)


def run_edit(path: str, old_text: str, new_text: str) -> str:
    return _core.run_edit(WORKDIR, path, old_text, new_text)


TOOL_HANDLERS = {
    "bash": lambda **kw: run_bash(kw["command"]),
    "read_file": lambda **kw: run_read(kw["path"], kw.get("limit")),
    "write_file": lambda **kw: run_write(kw["path"], kw["content"]),
    "edit_file": lambda **kw: run_edit(kw["path"], kw["old_text"], kw["new_text"]),
    "background_run": lambda **kw: BG.run(kw["command"]),
    "check_background": lambda **kw: BG.check(kw.get("task_id")),
}

TOOLS = _core.tool_schemas()


def agent_loop(messages: list) -> None:
    """The lesson's loop: drain and inject background results, call the model, run tools."""
    _core.run_loop(
        messages,
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
    main()
