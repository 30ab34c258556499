"""`Timeline`: the picture of a run, from a trace (see the README's trace schema)."""

from __future__ import annotations

import html
import os
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
        """Reads a trace file (`bgagent --trace FILE`, `Agent(trace=FILE)`)."""
        return cls(Path(path).read_text(encoding="utf-8").splitlines())

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
