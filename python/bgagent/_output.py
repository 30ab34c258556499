"""Following a task's output: its complete lines as they come, for `for` and `async for`,
over the core's reads by offset (each read waits, GIL released, for more)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _core
from ._aio import ticking

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from ._types import OutputRead

# Bytes asked for per read while following.
_CHUNK = 65536


def _lines(pending: str, read: OutputRead) -> tuple[list[str], str]:
    """The complete lines `pending` and the read make (without their newlines), and what
    is left; once the task has ended and nothing follows, the rest is a line too."""
    text = pending + read["text"]
    *lines, rest = text.split("\n")
    if not read["running"] and not read["text"] and rest:
        lines.append(rest)
        rest = ""
    return lines, rest


def follow(core: _core.BackgroundManager, task_id: str) -> Iterator[str]:
    """Each complete line of the task's output as it comes (the last, partial one when the
    task ends); ends when the task has ended and everything is read."""
    after, rest = 0, ""
    while True:
        read = _core.read_output(core, task_id, after, _CHUNK, None)
        lines, rest = _lines(rest, read)
        yield from lines
        after = read["next"]
        if not read["running"] and not read["text"] and not rest:
            return


async def follow_async(core: _core.BackgroundManager, task_id: str) -> AsyncIterator[str]:
    """`follow` for asyncio: holds no thread between lines."""
    after, rest = 0, ""
    while True:
        read = await ticking(_core.read_output_async(core, task_id, after, _CHUNK, None))
        lines, rest = _lines(rest, read)
        for line in lines:
            yield line
        after = read["next"]
        if not read["running"] and not read["text"] and not rest:
            return
