"""`BackgroundManager`: the lesson's manager on the Rust core, with a live `tasks` dict."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Union

from . import _core, _output, _tool_use, _views
from ._aio import ticking
from ._types import Notification, OutputRead, StoredTask, TaskInfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from typing_extensions import Self

_StrPath = Union[str, "os.PathLike[str]"]

# Production's cap on running tasks: twice the CPUs this process may use, at least 4.
_MAX_RUNNING = int(_core.DEFAULTS["max_running"])
# What production keeps of finished tasks (the lesson keeps everything: None).
_KEEP_FINISHED = int(_core.DEFAULTS["keep_finished"])
_LOG_BUDGET = int(_core.DEFAULTS["log_budget"])


class BackgroundManager:
    """Runs shell commands in the background and queues one notification per finished task.

    Each task runs `/bin/sh -c command` in its own process group, at most `timeout` seconds;
    its output (stdout then stderr, stripped) is kept up to `output_limit` characters, and its
    notification carries the first `preview_limit`. Stopping a task sends SIGTERM to the group,
    then SIGKILL after `grace` seconds. At most `max_running` tasks run at once (None: no
    limit); the others wait in line, first come first started, with status `queued`, and
    their timeout counts from their start. Past `keep_finished` finished tasks, the oldest
    whose notification was taken are let go (from `tasks` too), with their log files when the
    log directory is the manager's own; past `log_budget` bytes of finished tasks' log files
    there, the oldest files are removed (`info()` says `log_removed`). None keeps all.
    A notification carries the lesson's keys, the exit code and, unless
    `notification_details=False` (the lesson's form), `duration` (seconds), `log_path` and
    `tail` (the output's last lines when `result` does not end with them, else "").
    With `state=FILE` (SQLite), every task and notification is also written there, each end
    committed before its notification can be taken, so a later manager lists them
    (`stored()`); the logs then go beside it, kept. A manager whose process died leaves its
    running tasks `killed` (never run again) and its undelivered notifications to the one
    manager that adopts it (`adopt=OWNER_ID`, an id `stored()` gives).
    Tasks do not get ANTHROPIC_API_KEY/AUTH_TOKEN unless
    `pass_api_key=True`. With `trace=FILE`, every task event is written there as trace lines
    (`bgagent view FILE` draws them). Subclass it freely: the state lives in a core object
    (`_core`).
    """

    def __init__(
        self,
        workdir: _StrPath | None = None,
        *,
        timeout: float = 300.0,
        output_limit: int = 50000,
        preview_limit: int = 500,
        grace: float = 2.0,
        log_dir: _StrPath | None = None,
        log_limit: int = 64 * 1024 * 1024,
        pass_api_key: bool = False,
        trace: _StrPath | None = None,
        max_running: int | None = _MAX_RUNNING,
        keep_finished: int | None = _KEEP_FINISHED,
        log_budget: int | None = _LOG_BUDGET,
        notification_details: bool = True,
        state: _StrPath | None = None,
        adopt: str | None = None,
    ) -> None:
        self._core = _core.BackgroundManager(
            workdir,
            timeout=timeout,
            output_limit=output_limit,
            preview_limit=preview_limit,
            grace=grace,
            log_dir=log_dir,
            log_limit=log_limit,
            pass_api_key=pass_api_key,
            max_running=max_running,
            keep_finished=keep_finished,
            log_budget=log_budget,
            notification_details=notification_details,
            state=state,
            adopt=adopt,
        )
        self._tasks: dict[str, Any] = {}
        # `trace`: the task events as trace lines (the README's schema) in that file.
        self._tracer = None
        if trace is not None:
            self._tracer = _core.Tracer(os.fspath(trace), mode="manager", workdir=self.workdir)
            self._tracer.follow(self._core)

    @property
    def tasks(self) -> dict[str, Any]:
        """`{task_id: {"status", "result", "command"}}` in start order, as in the lesson: the
        same dict every time, brought up to date on each read (entries change in place).
        Entries written here (the lesson's tests plant some) show in `check()`; they never
        produce a notification, and new tasks never take their ids."""
        self._core.refresh(self._tasks)
        return self._tasks

    @tasks.setter
    def tasks(self, tasks: dict[str, Any]) -> None:
        self._tasks = tasks

    def start(
        self, command: str, workdir: _StrPath | None = None, *, timeout: float | None = None
    ) -> str:
        """Starts `command` now, or puts it in line if `max_running` tasks run (in `workdir`
        instead of the manager's, if given, and stopped `timeout` seconds after its start
        instead of the manager's timeout); returns its task id. Never waits for the command."""
        return self._submit(command, workdir, timeout)[0]

    def _submit(
        self, command: str, workdir: _StrPath | None, timeout: float | None
    ) -> tuple[str, tuple[int, int] | None]:
        """Starts a task: its id, and `(place in line, tasks running)` if it waits."""
        if not isinstance(command, str):
            raise TypeError(f"command must be a str, not {type(command).__name__}")
        # The entries of tasks let go leave `tasks` here too, so it stays bounded by
        # `keep_finished` even when no one reads it.
        self._core.prune(self._tasks)
        while True:
            task_id = self._new_id()
            # The lesson writes the entry before the thread starts: so does this.
            self._tasks[task_id] = {"status": "running", "result": None, "command": command}
            got = self._core.submit_as(task_id, command, workdir, timeout)
            if got is not False:
                if got is not None:
                    self._tasks[task_id]["status"] = "queued"
                return task_id, got
            del self._tasks[task_id]  # the core knows that id (an entry deleted from `tasks`)

    def _new_id(self) -> str:
        """The lesson's 8 hex characters, never the id of an entry in `tasks`."""
        while True:
            task_id = _core.new_task_id()
            if task_id not in self._tasks:
                return task_id

    def run(
        self, command: str, workdir: _StrPath | None = None, *, timeout: float | None = None
    ) -> str:
        """Starts `command`; returns `Background task {id} started: {command[:80]}`, or if it
        waits for a slot `Background task {id} queued (2nd in line, 4 running): {command[:80]}`."""
        task_id, waiting = self._submit(command, workdir, timeout)
        if waiting is None:
            return _core.started_line(task_id, command)
        return _core.queued_line(task_id, waiting[0], waiting[1], command)

    def start_now(self, task_id: str) -> str:
        """Starts a task that waits in line now, past `max_running`; returns `check(task_id)`,
        or the error text if the task is unknown or does not wait."""
        refused = self._core.start_now(task_id)
        return refused if refused is not None else self.check(task_id)

    @property
    def max_running(self) -> int | None:
        """At most this many tasks run at once (None: no limit)."""
        return self._core.max_running

    def check(self, task_id: str | None = None) -> str:
        """One task's `[status] command` and result, or a line per task (the lesson's text);
        a task waiting for a slot shows its place in line."""
        tasks = self.tasks
        if isinstance(task_id, str) and task_id:
            queued = self._core.check_queued(task_id)
            if queued is not None and tasks.get(task_id, {}).get("status") == "queued":
                return queued
        return _core.check_text(tasks, task_id)

    def forget(self, task_id: str) -> None:
        """Lets a finished task go now: its record, its entry in `tasks`, and its log file if
        the log directory is the manager's own. KeyError for an unknown task; ValueError for
        one that runs or waits, or whose notification is still queued (drain it first)."""
        refused = self._core.forget(task_id)
        if refused is not None:
            if refused.startswith("Error: Unknown task"):
                raise KeyError(refused)
            raise ValueError(refused)
        self._core.prune(self._tasks)

    def drain_notifications(self) -> list[Notification]:
        """Every queued notification, in completion order; the queue is left empty."""
        return self._core.drain()

    def wait_for_notifications(self, timeout: float | None = None) -> list[Notification]:
        """Waits while the queue is empty and a task runs (at most `timeout` seconds), then
        drains. `[]` means a timeout or that nothing runs."""
        return self._core.wait_for_notifications(timeout)

    def wait_for_finished(self, timeout: float | None = None) -> bool:
        """Waits while the queue is empty and a task runs (at most `timeout` seconds), and
        leaves the queue as it is: True once a notification is queued or nothing runs, False
        if the time ran out. A plain wait for a loop of your own that must not take the
        notifications an Agent (or your own drain) is to read."""
        return self._core.wait("finished", timeout)

    async def wait_for_finished_async(self, timeout: float | None = None) -> bool:
        """`wait_for_finished` for asyncio: holds no thread, and cancelling stops it."""
        return await ticking(self._core.wait_async("finished", timeout))

    def notifications(self, timeout: float | None = None) -> Notifications:
        """Each notification as it arrives, for `for` and `async for` alike; the iteration ends
        once nothing is queued and nothing runs. `timeout` bounds each wait between two
        notifications (TimeoutError). It takes from the queue an Agent drains: each
        notification goes to one of them."""
        return Notifications(self._core, timeout)

    async def wait_for_notifications_async(
        self, timeout: float | None = None
    ) -> list[Notification]:
        """`wait_for_notifications` for asyncio: holds no thread, and cancelling stops it."""
        return await ticking(self._core.wait_for_notifications_async(timeout))

    async def wait_async(self, task_id: str, timeout: float | None = None) -> str:
        """`wait` for asyncio: holds no thread, and cancelling stops it."""
        await ticking(self._core.wait_async("ended", timeout, task_id))
        return self.check(task_id)

    async def kill_async(self, task_id: str) -> str:
        """`kill` for asyncio."""
        refused = await ticking(self._core.kill_async(task_id))
        return refused if refused is not None else self.check(task_id)

    async def shutdown_async(self) -> None:
        """`shutdown` for asyncio (it can take the grace period and a little more)."""
        await ticking(self._core.shutdown_async())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown_async()

    def wait(self, task_id: str, timeout: float | None = None) -> str:
        """Waits for the task to end (at most `timeout` seconds); returns `check(task_id)`."""
        self._core.wait("ended", timeout, task_id)
        return self.check(task_id)

    def kill(self, task_id: str) -> str:
        """Stops a running task (SIGTERM to its process group, SIGKILL after `grace`), waits
        for it to end, and returns `check(task_id)`. A task waiting in line leaves it: it ends
        `killed` with `Error: Killed (never started)`."""
        refused = self._core.kill(task_id)
        return refused if refused is not None else self.check(task_id)

    def tool_definitions(
        self, format: Literal["anthropic", "openai"] = "anthropic"
    ) -> list[dict[str, Any]]:
        """The six background tools (background_run, check_background, read_background,
        wait_background, kill_background, list_background) for a loop of your own, as
        bgagent's own loop offers them: `format="anthropic"` gives Messages API tools,
        `"openai"` Chat Completions functions. Answer a call with `run_tool`."""
        return _core.kit_definitions(self._core, format)

    def run_tool(self, tool_use: Any, arguments: Any = None) -> str:
        """Runs one tool use and returns the tool-result text: a tool name with its
        arguments (a dict, or the JSON text OpenAI sends), or a tool-use block as your SDK
        gives it (Anthropic's `name`/`input`, OpenAI's `function.name`/`function.arguments`).
        A bad argument or an unknown tool comes back as text for the model, not an exception.
        `wait_background` blocks (at most 300 s) with the GIL released; Ctrl-C stops it."""
        name, arguments = _tool_use.name_and_arguments(tool_use, arguments)
        return _core.kit_call(self._core, name, arguments)

    async def run_tool_async(self, tool_use: Any, arguments: Any = None) -> str:
        """`run_tool` for asyncio: a wait holds no event loop, and cancelling stops it."""
        name, arguments = _tool_use.name_and_arguments(tool_use, arguments)
        return await ticking(_core.kit_call_async(self._core, name, arguments))

    @property
    def owner_id(self) -> str | None:
        """This manager's id in its state file (what another manager adopts); None without
        `state`."""
        return self._core.owner_id

    def stored(self) -> list[StoredTask]:
        """Every task in the state file, every manager's, with its `owner` and whether that
        owner is alive (`owner_alive`), in the order they were queued; [] without `state`."""
        return self._core.stored()

    def has_running_tasks(self) -> bool:
        """True while a task runs or waits in line."""
        return self._core.running_count() > 0

    def shutdown(self) -> None:
        """Takes every waiting task out of the line (each ends `killed`, never started), kills
        every running task and waits for them to end. Their notifications stay queued."""
        self._core.shutdown()

    def info(self, task_id: str) -> TaskInfo:
        """Everything known about one task: exit code, elapsed time, byte counts, log file."""
        return self._core.info(task_id)

    def read(
        self, task_id: str, after: int = 0, max_bytes: int = 65536, timeout: float | None = 0
    ) -> OutputRead:
        """Up to `max_bytes` of the task's output from byte offset `after`, waiting up to
        `timeout` seconds (None: no limit) for some while it runs: `{"text", "next" (pass it
        as `after` next), "dropped" (bytes the log no longer keeps), "running", "exit_code"}`."""
        return _core.read_output(self._core, task_id, after, max_bytes, timeout)

    async def read_async(
        self, task_id: str, after: int = 0, max_bytes: int = 65536, timeout: float | None = 0
    ) -> OutputRead:
        """`read` for asyncio: holds no thread, and cancelling stops it."""
        return await ticking(
            _core.read_output_async(self._core, task_id, after, max_bytes, timeout)
        )

    def follow(self, task_id: str) -> Iterator[str]:
        """Each complete line of the task's output as it comes (without its newline), then the
        last partial line when it ends."""
        return _output.follow(self._core, task_id)

    def follow_async(self, task_id: str) -> AsyncIterator[str]:
        """`follow` for `async for`."""
        return _output.follow_async(self._core, task_id)

    def tail(self, task_id: str, lines: int = 20) -> str:
        """The last `lines` lines of the task's output, while it runs or after."""
        return _core.tail_output(self._core, task_id, lines)

    @property
    def workdir(self) -> Path:
        """Where tasks run unless `start`/`run` name another directory."""
        return self._core.workdir

    @property
    def log_dir(self) -> Path | None:
        """Where each task's full output is logged (a temporary directory unless given)."""
        return self._core.log_dir

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def display(self) -> None:
        """In a notebook: shows the task table and keeps it updated as tasks start, progress
        and end, while the kernel stays free; it stops updating once nothing runs. Outside
        IPython (a plain script) it prints the table once."""
        _views.live(self)

    def _repr_html_(self) -> str:
        return _views.tasks_html(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else _views.tasks_text(self))

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} workdir={str(self.workdir)!r} tasks={len(self.tasks)} "
            f"running={self._core.running_count()}>"
        )


class Notifications:
    """Iterates over a manager's notifications as they arrive (`for` or `async for`); see
    `BackgroundManager.notifications`."""

    def __init__(self, core: _core.BackgroundManager, timeout: float | None) -> None:
        self._core = core
        self._timeout = timeout

    def __iter__(self) -> Notifications:
        return self

    def __next__(self) -> Notification:
        note = self._core.wait("next", self._timeout)
        if note is None:
            raise StopIteration
        return note

    def __aiter__(self) -> Notifications:
        return self

    async def __anext__(self) -> Notification:
        note = await ticking(self._core.wait_async("next", self._timeout))
        if note is None:
            raise StopAsyncIteration
        return note
