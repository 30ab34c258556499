from collections.abc import Awaitable, Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal, final, overload

from typing_extensions import Self

from ._blocks import Block
from ._types import Notification, OutputRead, StoredTask, TaskInfo

__all__ = [
    "DEFAULTS",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BackgroundManager",
    "BadRequestError",
    "BgagentError",
    "Client",
    "ConfigError",
    "InternalServerError",
    "MessageCache",
    "MessageStream",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ScriptedClient",
    "StopFlag",
    "TaskEvents",
    "Tracer",
    "__version__",
    "_set_supervisor",
    "_shutdown_all",
    "_supervise",
    "check_text",
    "cli_main",
    "kit_call",
    "kit_call_async",
    "kit_definitions",
    "lesson_system",
    "new_task_id",
    "queued_line",
    "read_output",
    "read_output_async",
    "read_text",
    "render_html",
    "render_svg",
    "results_block",
    "run_bash",
    "run_edit",
    "run_loop",
    "run_read",
    "run_write",
    "safe_path",
    "started_line",
    "tail_output",
    "tool_schemas",
]

__version__: str
# The core's defaults, by the name of the parameter that takes them.
DEFAULTS: dict[str, float | int]

@final
class BackgroundManager:
    """The core of `bgagent.BackgroundManager`, which wraps it (subclass that one)."""

    def __new__(
        cls,
        workdir: str | PathLike[str] | None = None,
        *,
        timeout: float = 300.0,
        output_limit: int = 50000,
        preview_limit: int = 500,
        grace: float = 2.0,
        log_dir: str | PathLike[str] | None = None,
        log_limit: int = 67108864,
        pass_api_key: bool = False,
        max_running: int | None = ...,
        keep_finished: int | None = 1000,
        log_budget: int | None = 1073741824,
        notification_details: bool = True,
        state: str | PathLike[str] | None = None,
        adopt: str | None = None,
    ) -> Self: ...
    def start_as(
        self,
        task_id: str,
        command: str,
        workdir: str | PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> bool: ...
    def submit_as(
        self,
        task_id: str,
        command: str,
        workdir: str | PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> Literal[False] | tuple[int, int] | None: ...
    def start_now(self, task_id: str) -> str | None: ...
    def check_queued(self, task_id: str) -> str | None: ...
    @property
    def max_running(self) -> int | None: ...
    def drain(self) -> list[Notification]: ...
    @overload
    def wait(
        self, until: Literal["next"], timeout: float | None = None, task_id: None = None
    ) -> Notification | None: ...
    @overload
    def wait(
        self,
        until: Literal["ended", "finished", "idle"],
        timeout: float | None = None,
        task_id: str | None = None,
    ) -> bool: ...
    @overload
    def wait_async(
        self, until: Literal["next"], timeout: float | None = None, task_id: None = None
    ) -> Awaitable[Notification | None]: ...
    @overload
    def wait_async(
        self,
        until: Literal["ended", "finished", "idle"],
        timeout: float | None = None,
        task_id: str | None = None,
    ) -> Awaitable[bool]: ...
    def wait_for_notifications(self, timeout: float | None = None) -> list[Notification]: ...
    def wait_for_notifications_async(
        self, timeout: float | None = None
    ) -> Awaitable[list[Notification]]: ...
    def kill_async(self, task_id: str) -> Awaitable[str | None]: ...
    def shutdown_async(self) -> Awaitable[None]: ...
    def kill(self, task_id: str) -> str | None: ...
    def running_count(self) -> int: ...
    def shutdown(self) -> None: ...
    def refresh(self, tasks: dict[str, Any]) -> None: ...
    def prune(self, tasks: dict[str, Any]) -> None: ...
    def forget(self, task_id: str) -> str | None: ...
    def subscribe(self) -> TaskEvents: ...
    def info(self, task_id: str) -> TaskInfo: ...
    def stored(self) -> list[StoredTask]: ...
    @property
    def owner_id(self) -> str | None: ...
    @property
    def workdir(self) -> Path: ...
    @property
    def log_dir(self) -> Path | None: ...

@final
class TaskEvents:
    """A subscription to a manager's task events."""

    def next(self, timeout: float | None = None) -> dict[str, Any] | None: ...
    def close(self) -> None: ...

def started_line(task_id: str, command: str) -> str: ...
def queued_line(task_id: str, place: int, running: int, command: str) -> str: ...
def new_task_id() -> str: ...
def check_text(tasks: dict[Any, Any], task_id: object = None) -> str: ...
def _shutdown_all() -> None: ...
def read_output(
    core: BackgroundManager,
    task_id: str,
    after: int = 0,
    max_bytes: int = 65536,
    timeout: float | None = 0.0,
) -> OutputRead: ...
def read_output_async(
    core: BackgroundManager,
    task_id: str,
    after: int = 0,
    max_bytes: int = 65536,
    timeout: float | None = 0.0,
) -> Awaitable[OutputRead]: ...
def tail_output(core: BackgroundManager, task_id: str, lines: int = 20) -> str: ...

@final
class MessageStream:
    """A streamed reply in progress, shaped like the SDK's: iterate `text_stream`, then call
    `get_final_message()`."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def text_stream(self) -> Self: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> str: ...
    def get_final_message(self) -> Any: ...
    def until_done(self) -> None: ...

@final
class Client:
    """The built-in Messages API client; `client.messages.create(**kwargs)` works like the SDK's."""

    def __new__(
        cls,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 2,
        stream: bool = False,
    ) -> Self: ...
    @property
    def messages(self) -> Self: ...
    @property
    def base_url(self) -> str: ...
    def create(
        self,
        *,
        model: str | None,
        messages: list[Any],
        max_tokens: int,
        system: str | None = None,
        tools: list[Any] | None = None,
        **other: Any,
    ) -> Block: ...
    def stream(
        self,
        *,
        model: str | None,
        messages: list[Any],
        max_tokens: int,
        system: str | None = None,
        tools: list[Any] | None = None,
        **other: Any,
    ) -> MessageStream: ...

@final
class ScriptedClient:
    """A client whose `messages.create` answers with the next scripted response (a dict with
    `content` blocks and a `stop_reason`), recording the last `keep_requests` requests (None:
    every one); `demo()` is `--demo`'s."""

    DEMO_PROMPTS: list[str]
    def __new__(
        cls, responses: list[dict[str, Any]], *, keep_requests: int | None = 100
    ) -> Self: ...
    @staticmethod
    def demo() -> ScriptedClient: ...
    @property
    def messages(self) -> Self: ...
    def create(
        self,
        *,
        model: str | None,
        messages: list[Any],
        max_tokens: int,
        system: str | None = None,
        tools: list[Any] | None = None,
        **other: Any,
    ) -> Block: ...
    @property
    def requests(self) -> list[dict[str, Any]]: ...
    @property
    def remaining(self) -> int: ...

@final
class Tracer:
    """Records a run as trace lines, into `path` or in memory."""

    def __new__(
        cls,
        path: str | PathLike[str] | None = None,
        *,
        mode: str = "production",
        model: str = "",
        workdir: str | PathLike[str] | None = None,
    ) -> Self: ...
    def follow(self, manager: BackgroundManager) -> None: ...
    def close(self) -> None: ...
    def settle(self) -> None: ...
    def lines(self) -> list[str]: ...
    @property
    def path(self) -> Path | None: ...

def render_html(lines: list[str]) -> str: ...
def render_svg(lines: list[str]) -> str: ...

@final
class StopFlag:
    """Set from any thread to interrupt a loop running on another (`run_loop(stop=...)`)."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...

@final
class MessageCache:
    """What an Agent keeps of its conversation between runs (`run_loop(cache=...)`), so that a
    model call converts only the messages that are new or changed since the last."""

    def __new__(cls) -> Self: ...

def run_loop(
    messages: list[Any],
    *,
    client: Any,
    model: str | None,
    system: str,
    manager: Any,
    workdir: str | PathLike[str],
    tools: list[Any] | None = None,
    handlers: dict[str, Callable[..., Any]] | None = None,
    mirror: bool = False,
    max_wait: float = 300.0,
    max_tokens: int = 8000,
    echo: bool = True,
    pass_api_key: bool = False,
    stop: StopFlag | None = None,
    overrides: dict[str, Callable[..., Any]] | None = None,
    drain: Callable[[], list[Notification]] | None = None,
    trace: Tracer | None = None,
    cache: MessageCache | None = None,
) -> None: ...
def safe_path(workdir: str | PathLike[str], p: str) -> Path: ...
def _set_supervisor(argv: list[str]) -> None: ...
def _supervise() -> None: ...
def run_bash(workdir: str | PathLike[str], command: str, timeout: float = 120.0) -> str: ...
def run_read(workdir: str | PathLike[str], path: str, limit: int | None = None) -> str: ...
def run_write(workdir: str | PathLike[str], path: str, content: str) -> str: ...
def read_text(workdir: str | PathLike[str], path: str) -> str: ...
def run_edit(workdir: str | PathLike[str], path: str, old_text: str, new_text: str) -> str: ...
def tool_schemas(extended: bool = False) -> list[dict[str, Any]]: ...
def kit_definitions(
    core: BackgroundManager, format: Literal["anthropic", "openai"]
) -> list[dict[str, Any]]: ...
def kit_call(core: BackgroundManager, name: str, input: Any) -> str: ...
def kit_call_async(core: BackgroundManager, name: str, input: Any) -> Awaitable[str]: ...
def results_block(notes: Sequence[Mapping[str, Any]], lesson: bool = False) -> str:
    """The `<background-results>` block a loop injects for drained notifications:
    production's (status, exit code, duration, log file, the output's head and tail), or with
    `lesson=True` the lesson's one line per task."""

def lesson_system(workdir: str | PathLike[str]) -> str: ...

class BgagentError(Exception): ...

class APIError(BgagentError):
    message: str

class APIStatusError(APIError):
    status_code: int
    type: str
    request_id: str | None

class BadRequestError(APIStatusError): ...
class AuthenticationError(APIStatusError): ...
class PermissionDeniedError(APIStatusError): ...
class NotFoundError(APIStatusError): ...
class RateLimitError(APIStatusError): ...
class InternalServerError(APIStatusError): ...
class APIConnectionError(APIError): ...
class APITimeoutError(APIConnectionError): ...
class APIResponseValidationError(APIError): ...
class ConfigError(BgagentError): ...

def cli_main(argv: list[str]) -> int: ...
