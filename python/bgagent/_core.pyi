from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import TypedDict

from typing_extensions import Self

__version__: str

class Notification(TypedDict):
    task_id: str
    status: str
    command: str
    result: str
    exit_code: int | None

class TaskEntry(TypedDict):
    status: str
    result: str | None
    command: str

class TaskInfo(TypedDict):
    task_id: str
    status: str
    command: str
    result: str | None
    exit_code: int | None
    elapsed: float
    stdout_bytes: int
    stderr_bytes: int
    log_path: str | None
    log_bytes: int
    log_cut: bool
    log_error: str | None

class BackgroundManager:
    """Runs shell commands in the background and queues one notification per finished task."""

    def __init__(
        self,
        workdir: str | PathLike[str] | None = None,
        *,
        timeout: float = 300.0,
        output_limit: int = 50000,
        preview_limit: int = 500,
        grace: float = 2.0,
        log_dir: str | PathLike[str] | None = None,
        log_limit: int = 67108864,
    ) -> None: ...
    def run(self, command: str) -> str: ...
    def start(self, command: str) -> str: ...
    def check(self, task_id: str | None = None) -> str: ...
    def drain_notifications(self) -> list[Notification]: ...
    def wait_for_notifications(self, timeout: float | None = None) -> list[Notification]: ...
    def wait(self, task_id: str, timeout: float | None = None) -> str: ...
    def kill(self, task_id: str) -> str: ...
    def has_running_tasks(self) -> bool: ...
    def shutdown(self) -> None: ...
    @property
    def tasks(self) -> dict[str, TaskEntry]: ...
    def info(self, task_id: str) -> TaskInfo: ...
    @property
    def workdir(self) -> Path: ...
    @property
    def log_dir(self) -> Path: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

def _shutdown_all() -> None: ...
