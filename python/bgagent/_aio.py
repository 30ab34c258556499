"""Awaiting in a notebook: ipykernel turns an interrupt into the cancellation of the running
cell, but schedules it without waking the event loop, so a wait that sleeps in the loop would
not notice. The awaits here wake the loop every 0.1 s, so an interrupt lands at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable

T = TypeVar("T")

TICK = 0.1


async def ticking(awaitable: Awaitable[T]) -> T:
    """Awaits `awaitable`, waking the event loop every TICK seconds meanwhile. Cancelled (or
    interrupted), it cancels what it awaited and raises."""
    # Imported here, not at the top: asyncio is most of `import bgagent`'s time, and a
    # caller that awaits has imported it already.
    import asyncio

    future = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=TICK)
            if done:
                return future.result()
    except BaseException:
        future.cancel()
        raise
