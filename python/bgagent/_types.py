"""The dicts bgagent hands out, as TypedDicts (for type checkers; at runtime they are dicts)."""

from __future__ import annotations

from typing import TypedDict


class Notification(TypedDict):
    """One finished task, as queued for the model: the lesson's four keys and the exit code."""

    task_id: str
    status: str
    command: str
    result: str
    exit_code: int | None


class TaskEntry(TypedDict):
    """A value of `BackgroundManager.tasks`, as in the lesson."""

    status: str
    result: str | None
    command: str


class TaskInfo(TypedDict):
    """`BackgroundManager.info(task_id)`: everything known about one task."""

    task_id: str
    status: str
    command: str
    result: str | None
    exit_code: int | None
    elapsed: float
    pid: int | None
    stdout_bytes: int
    stderr_bytes: int
    log_path: str | None
    log_bytes: int
    log_cut: bool
    log_error: str | None
