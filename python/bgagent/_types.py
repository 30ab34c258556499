"""The dicts bgagent hands out, as TypedDicts (for type checkers; at runtime they are dicts).

Each is the serde form of one core type (src/background/record.rs), converted as is: a key
added there shows here once added to the TypedDict (tests/python/test_api.py checks they
agree)."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class Notification(TypedDict):
    """One finished task, as queued for the model: the lesson's four keys and the exit code
    (the core's `Notification`), and production's details unless the manager was made with
    `notification_details=False` (the lesson's module)."""

    task_id: str
    status: str
    command: str
    result: str
    exit_code: int | None
    duration: NotRequired[float]
    """Seconds from its start to its end (0.0 if it never started)."""
    log_path: NotRequired[str | None]
    """Its log file when it ended (None: no file)."""
    tail: NotRequired[str]
    """The output's last lines (at most 20 and 2,000 characters) when `result` does not end
    with them (cut by the preview, or a message such as a timeout's); "" otherwise."""


class StoredTask(TypedDict):
    """One task as a state file holds it (`BackgroundManager.stored()`): the core's
    `StoredTask`."""

    owner: str
    owner_alive: bool
    id: str
    command: str
    workdir: str
    status: str
    """queued, starting, running, or how it ended (completed, timeout, error, killed)."""
    queued_at: float
    """Unix seconds, as the other times."""
    started_at: float | None
    ended_at: float | None
    pid: int | None
    exit_code: int | None
    result: str | None
    log_path: str | None


class TaskEntry(TypedDict):
    """A value of `BackgroundManager.tasks`, as in the lesson."""

    status: str
    result: str | None
    command: str


class TaskInfo(TypedDict):
    """`BackgroundManager.info(task_id)`: everything known about one task (the core's
    `TaskRecord`, its output counts flattened in)."""

    task_id: str
    status: str
    command: str
    result: str | None
    exit_code: int | None
    elapsed: float
    waited: float
    pid: int | None
    stdout_bytes: int
    stderr_bytes: int
    log_path: str | None
    log_bytes: int
    log_cut: bool
    log_dropped: int
    log_error: str | None
    log_removed: bool


class OutputRead(TypedDict):
    """`BackgroundManager.read(task_id, ...)`: output from an offset (the core's `Read`)."""

    text: str
    next: int
    dropped: int
    running: bool
    exit_code: int | None
