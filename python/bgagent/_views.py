"""How a manager and an agent look in a notebook: an HTML table, IPython's text view, and a
live table that follows the task events. IPython is imported only when a live view is asked
for, so the package works without it."""

from __future__ import annotations

import atexit
import html
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent
    from .background import BackgroundManager

COLOURS = {
    "running": "#1f6feb",
    "completed": "#1a7f37",
    "timeout": "#9a6700",
    "error": "#cf222e",
    "killed": "#8250df",
}
PREVIEW = 80


def task_rows(manager: BackgroundManager) -> list[dict[str, str]]:
    """One row per entry of `manager.tasks`: id, status, exit code, elapsed, command, preview."""
    rows = []
    for task_id, entry in list(manager.tasks.items()):  # another thread may start a task
        try:
            info: Any = manager.info(task_id)
        except KeyError:
            info = {}  # an entry written into `tasks` by hand
        exit_code = info.get("exit_code")
        elapsed = info.get("elapsed")
        result = entry.get("result") or ""
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


def tasks_html(manager: BackgroundManager) -> str:
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
    caption = f"BackgroundManager: {len(rows)} tasks, {running} running"
    return (
        f"<table class='bgagent-tasks'><caption style='text-align:left'>{caption}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def tasks_text(manager: BackgroundManager) -> str:
    rows = task_rows(manager)
    if not rows:
        return "BackgroundManager: no background tasks."
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS}
    line = "  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()
    lines = [line] + ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def agent_summary(agent: Agent) -> dict[str, Any]:
    from .agent import final_text

    turns = sum(
        1
        for m in agent.messages
        if m.get("role") == "user"
        and isinstance(m.get("content"), str)
        and not m["content"].startswith("<background-results>")
    )
    return {
        "model": agent.model,
        "turns": turns,
        "tasks": len(agent.manager.tasks),
        "last": final_text(agent.messages),
    }


def agent_html(agent: Agent) -> str:
    s = agent_summary(agent)
    mode = "mirror" if agent.mirror else "production"
    return (
        f"<div class='bgagent-agent'><b>Agent</b> {html.escape(str(s['model']))} ({mode}): "
        f"{s['turns']} turns, {s['tasks']} background tasks"
        f"<blockquote>{html.escape(s['last']) or '<i>no reply yet</i>'}</blockquote>"
        f"{tasks_html(agent.manager)}</div>"
    )


def agent_text(agent: Agent) -> str:
    s = agent_summary(agent)
    return (
        f"Agent {s['model']}: {s['turns']} turns, {s['tasks']} background tasks\n"
        f"last reply: {s['last'] or '(none yet)'}"
    )


def live(manager: BackgroundManager) -> None:
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
