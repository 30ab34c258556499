"""`Timeline`: the picture of a run, from a trace (see the README's trace schema)."""

from __future__ import annotations

import html
import json
import os
import warnings
from pathlib import Path

from . import _core


class Timeline:
    """A run drawn on a time axis: the main loop's lane (model calls, tools, the wait for
    running tasks, idle time) and one lane per background task, each result linked to the
    model call that first saw it; with a step-through of the model calls."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)

    @classmethod
    def from_trace(cls, path: str | os.PathLike[str]) -> Timeline:
        """Reads a trace file (`bgagent --trace FILE`, `Agent(trace=FILE)`). Bytes that are
        not UTF-8 are replaced; a last line cut while the trace was being written is left out,
        with a warning."""
        lines = _lines(Path(path).read_bytes().decode("utf-8", errors="replace"))
        if lines and not _is_event(lines[-1]):
            warnings.warn(
                f"the last line of {os.fspath(path)} is cut (was the trace still being "
                "written?); it is left out",
                stacklevel=2,
            )
            lines.pop()
        return cls(lines)

    def html(self) -> str:
        """One self-contained page (inline CSS and JS, no network)."""
        return _core.render_html(self.lines)

    def svg(self) -> str:
        """The static picture."""
        return _core.render_svg(self.lines)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the page (or, for a `.svg` name, the picture) to `path`."""
        target = Path(path)
        text = self.svg() if target.suffix.lower() == ".svg" else self.html()
        target.write_text(text, encoding="utf-8")
        return target

    def _repr_html_(self) -> str:
        # In a frame of its own, so that several timelines in one notebook do not share ids.
        page = html.escape(self.html(), quote=True)
        return f"<iframe srcdoc='{page}' style='width:100%;height:720px;border:0'></iframe>"

    def __repr__(self) -> str:
        return f"<Timeline {len(self.lines)} trace lines>"


def _lines(text: str) -> list[str]:
    """The lines as the Rust reader splits them: at "\\n" only (`str.splitlines` would also
    split at U+2028 or U+0085, which a JSON string may hold as they are), without a "\\r"."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _is_event(line: str) -> bool:
    """A JSON object, or a blank line (skipped by the reader, but not a cut one)."""
    if not line.strip():
        return True
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
