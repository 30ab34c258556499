"""How a manager's tasks look in a notebook: an HTML table, IPython's text view, and a live
table that follows the task events. IPython is imported only when a live view is asked for,
so the package works without it. It knows a manager only by what it reads (`Tasks`), so it
imports no other module of the package: the manager and the agent use it."""

from __future__ import annotations

import atexit
import html
import threading
from typing import Any, Protocol


class Tasks(Protocol):
    """What the views read of a `BackgroundManager`."""

    @property
    def tasks(self) -> dict[str, Any]: ...
    def info(self, task_id: str) -> Any: ...
    def has_running_tasks(self) -> bool: ...
    @property
    def _core(self) -> Any: ...


COLOURS = {
    "queued": "#57606a",
    "running": "#1f6feb",
    "completed": "#1a7f37",
    "timeout": "#9a6700",
    "error": "#cf222e",
    "killed": "#8250df",
}
PREVIEW = 80


def task_rows(manager: Tasks) -> list[dict[str, str]]:
    """One row per entry of `manager.tasks`: id, status, exit code, elapsed, command, preview."""
    rows = []
    for task_id, entry in list(manager.tasks.items()):  # another thread may start a task
        try:
            info: Any = manager.info(task_id)
        except KeyError:
            info = {}  # an entry written into `tasks` by hand
        exit_code = info.get("exit_code")
        elapsed = info.get("elapsed")
        waited = info.get("waited") or 0.0
        result = entry.get("result") or ""
        if entry.get("status") == "queued":
            # Still in line: how long so far, in place of a run time it does not have yet.
            elapsed, result = None, f"waiting for a slot ({waited:.1f}s)"
        rows.append(
            {
                "id": str(task_id),
                "status": str(entry.get("status", "")),
                "exit": "" if exit_code is None else str(exit_code),
                "elapsed": "" if elapsed is None else f"{elapsed:.1f}s",
                "command": str(entry.get("command", "")),
                "result": " ".join(str(result).split())[:PREVIEW],
            }
        )
    return rows


COLUMNS = ["id", "status", "exit", "elapsed", "command", "result"]


def tasks_html(manager: Tasks) -> str:
    rows = task_rows(manager)
    if not rows:
        return "<p><b>BackgroundManager</b>: no background tasks.</p>"
    head = "".join(f"<th style='text-align:left'>{c}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        colour = COLOURS.get(row["status"], "inherit")
        cells = "".join(
            f"<td style='text-align:left;color:{colour}'>{html.escape(row[c])}</td>"
            if c == "status"
            else f"<td style='text-align:left'><code>{html.escape(row[c])}</code></td>"
            if c in ("command", "result")
            else f"<td style='text-align:left'>{html.escape(row[c])}</td>"
            for c in COLUMNS
        )
        body.append(f"<tr data-task-id='{html.escape(row['id'], quote=True)}'>{cells}</tr>")
    running = sum(r["status"] == "running" for r in rows)
    queued = sum(r["status"] == "queued" for r in rows)
    caption = f"BackgroundManager: {len(rows)} tasks, {running} running"
    if queued:
        caption += f", {queued} queued"
    return (
        f"<table class='bgagent-tasks'><caption style='text-align:left'>{caption}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def tasks_text(manager: Tasks) -> str:
    rows = task_rows(manager)
    if not rows:
        return "BackgroundManager: no background tasks."
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    line = "  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()
    lines = [line] + ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def live(manager: Tasks) -> None:
    """Shows the table and updates it, from a thread that follows the task events, until
    nothing runs; the kernel stays free meanwhile."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        # Not in IPython or Jupyter (IPython may be installed all the same): no live view.
        print(tasks_text(manager))
        return
    events = manager._core.subscribe()
    handle = display(HTML(tasks_html(manager)), display_id=True)

    def follow() -> None:
        try:
            while manager.has_running_tasks():
                if events.next(timeout=1.0) is None:
                    continue
                while events.next(timeout=0.25) is not None:
                    pass  # take a burst of events in one update
                handle.update(HTML(tasks_html(manager)))
        finally:
            events.close()
            handle.update(HTML(tasks_html(manager)))

    thread = threading.Thread(target=follow, name="bgagent-display", daemon=True)
    _live[:] = [(e, t) for e, t in _live if t.is_alive()]
    _live.append((events, thread))
    thread.start()


# Live views still following at exit: stopped and joined while Python can still run them.
_live: list[tuple[Any, threading.Thread]] = []


@atexit.register
def _stop_live_views() -> None:
    for events, thread in _live:
        events.close()
        thread.join(timeout=2)
