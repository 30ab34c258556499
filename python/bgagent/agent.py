"""`Agent`: the production agent loop in one object."""

from __future__ import annotations

import html
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _core, _views
from ._aio import ticking
from .background import BackgroundManager
from .timeline import Timeline

if TYPE_CHECKING:
    # asyncio, concurrent.futures and inspect are imported where the async face runs, not
    # here: they are most of the time `import bgagent` would take.
    import asyncio
    import concurrent.futures

    from typing_extensions import Self


class Agent:
    """A coding agent with background tasks.

    Unlike the lesson's loop it waits, at the end of a turn, for tasks still running (at most
    `max_wait` seconds) so their results reach the model, and offers two more tools,
    wait_background and kill_background. `mirror=True` gives the lesson's loop exactly.
    Commands do not get ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN and their values are
    redacted from tool outputs, unless `pass_api_key=True` (or `mirror=True`). The manager it
    makes runs at most `max_running` tasks at once (None: no limit; the mirror has none).
    Used as a context manager (`with` or `async with`), it shuts down the manager it made.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        client: Any = None,
        workdir: str | os.PathLike[str] | None = None,
        manager: BackgroundManager | None = None,
        system: str | None = None,
        mirror: bool = False,
        max_wait: float = 300.0,  # DEFAULTS["max_wait"] (a test checks every default)
        max_tokens: int = 8000,
        echo: bool = True,
        pass_api_key: bool = False,
        trace: str | os.PathLike[str] | None = None,
        max_running: int | None = int(_core.DEFAULTS["max_running"]),
    ) -> None:
        self.workdir = Path(workdir if workdir is not None else os.getcwd()).resolve()
        self.model = model if model is not None else os.environ.get("MODEL_ID")
        self.client = client if client is not None else _core.Client()
        self.pass_api_key = pass_api_key or mirror
        self._owns_manager = manager is None
        if manager is None:
            # The mirror starts every task at once, as the lesson; production caps them.
            cap = None if mirror else max_running
            # The mirror keeps every finished task and its log, as the lesson; production
            # keeps the core's defaults.
            keep: dict[str, Any] = {"keep_finished": None, "log_budget": None} if mirror else {}
            manager = BackgroundManager(
                self.workdir, pass_api_key=self.pass_api_key, max_running=cap, **keep
            )
        if not isinstance(manager, BackgroundManager):
            raise TypeError(
                f"manager must be a bgagent.BackgroundManager, not {type(manager).__name__}"
            )
        self.manager = manager
        self.system = system if system is not None else _core.lesson_system(self.workdir)
        self.mirror = mirror
        self.max_wait = max_wait
        self.max_tokens = max_tokens
        self.echo = echo
        self.messages: list[Any] = []
        # The messages as last sent, so each model call converts only what is new or changed.
        self._sent = _core.MessageCache()
        # Every run is traced: into `trace` (JSON lines) if given, else in memory for timeline().
        self.tracer = _core.Tracer(
            None if trace is None else os.fspath(trace),
            mode="mirror" if mirror else "production",
            model=self.model or "",
            workdir=self.workdir,
        )
        self.tracer.follow(self.manager._core)

    def loop(self, messages: list[Any]) -> None:
        """Runs the loop on `messages` (mutated in place) until the model ends its turn."""
        self._run_loop(messages, self.client, None)

    def _run_loop(self, messages: list[Any], client: Any, stop: _core.StopFlag | None) -> None:
        overrides, drain = _overridden(self.manager, self.mirror)
        _core.run_loop(
            messages,
            client=client,
            model=self.model,
            system=self.system,
            manager=self.manager,
            workdir=self.workdir,
            mirror=self.mirror,
            max_wait=self.max_wait,
            max_tokens=self.max_tokens,
            echo=self.echo,
            pass_api_key=self.pass_api_key,
            stop=stop,
            overrides=overrides,
            drain=drain,
            trace=self.tracer,
            cache=self._sent,
        )

    def run(self, prompt: str) -> str:
        """Adds `prompt` to the conversation, runs the loop, returns the final text."""
        self.messages.append({"role": "user", "content": prompt})
        self.loop(self.messages)
        return final_text(self.messages)

    def timeline(self) -> Timeline:
        """The picture of this agent's runs so far (from its trace file, or from memory)."""
        path = self.tracer.path
        if path is None:
            return Timeline(self.tracer.lines())
        self.tracer.settle()
        return Timeline.from_trace(path)

    async def run_async(self, prompt: str) -> str:
        """`run` for asyncio: the event loop stays free meanwhile. `client` may be the built-in
        one, a plain object, or one whose `messages.create` is a coroutine function
        (`anthropic.AsyncAnthropic()`), awaited on this event loop. Cancelled (or
        interrupted), the loop stops at once: every tool call in the conversation has its
        answer when CancelledError (or KeyboardInterrupt) is raised here."""
        self.messages.append({"role": "user", "content": prompt})
        await self.loop_async(self.messages)
        return final_text(self.messages)

    async def loop_async(self, messages: list[Any]) -> None:
        """`loop` for asyncio (see `run_async`)."""
        import asyncio

        event_loop = asyncio.get_running_loop()
        stop = _core.StopFlag()
        client = self.client
        if not isinstance(client, (_core.Client, _core.ScriptedClient)):
            client = _OnLoop(client, event_loop)
        done = event_loop.create_future()

        def work() -> None:
            # The loop blocks, so it runs on a thread of its own, one per awaited run.
            outcome: BaseException | None = None
            try:
                self._run_loop(messages, client, stop)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = e
            try:
                event_loop.call_soon_threadsafe(_settle, done, outcome)
            except RuntimeError:
                pass  # the event loop has closed: nobody awaits this any more

        threading.Thread(target=work, name="bgagent-loop", daemon=True).start()
        try:
            await ticking(asyncio.shield(done))
        except (asyncio.CancelledError, KeyboardInterrupt):
            stop.set()
            if isinstance(client, _OnLoop):
                client.cancel()
            # The loop answers every open tool call as it stops: let it, then raise.
            await asyncio.wait({done})
            done.exception()  # the loop's own ending (interrupted) is not news here
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_manager:
            self.manager.shutdown()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_manager:
            await self.manager.shutdown_async()

    def _summary(self) -> dict[str, Any]:
        turns = sum(
            1
            for m in self.messages
            if m.get("role") == "user"
            and isinstance(m.get("content"), str)
            and not m["content"].startswith("<background-results>")
        )
        return {
            "model": self.model,
            "turns": turns,
            "tasks": len(self.manager.tasks),
            "last": final_text(self.messages),
        }

    def _repr_html_(self) -> str:
        s = self._summary()
        mode = "mirror" if self.mirror else "production"
        return (
            f"<div class='bgagent-agent'><b>Agent</b> {html.escape(str(s['model']))} ({mode}): "
            f"{s['turns']} turns, {s['tasks']} background tasks"
            f"<blockquote>{html.escape(s['last']) or '<i>no reply yet</i>'}</blockquote>"
            f"{_views.tasks_html(self.manager)}</div>"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        if cycle:
            p.text(repr(self))
            return
        s = self._summary()
        p.text(
            f"Agent {s['model']}: {s['turns']} turns, {s['tasks']} background tasks\n"
            f"last reply: {s['last'] or '(none yet)'}"
        )

    def __repr__(self) -> str:
        return f"<Agent model={self.model!r} workdir={str(self.workdir)!r} mirror={self.mirror}>"


def final_text(messages: list[Any]) -> str:
    """The text blocks of the last assistant message, joined by newlines."""
    for message in reversed(messages):
        if message["role"] == "assistant":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "\n".join(b["text"] for b in content if b.get("type") == "text")
    return ""


def _overridden(manager: BackgroundManager, mirror: bool) -> tuple[dict[str, Any] | None, Any]:
    """The methods (by name: run, check, kill) and the drain that must be a subclass's own,
    because it overrides them; the core answers the rest of the tools itself. A `run` that
    takes `timeout` gets the model's, in production (the lesson's tool has none)."""
    if not isinstance(manager, BackgroundManager):
        return None, None  # run_loop says what it takes
    kind = type(manager)

    def own(name: str) -> bool:
        return getattr(kind, name) is not getattr(BackgroundManager, name)

    tools: dict[str, Any] = {}
    if own("run"):
        with_timeout = not mirror and _takes(manager.run, "timeout")

        def run(**kw: Any) -> str:
            if with_timeout and kw.get("timeout") is not None:
                return manager.run(kw["command"], timeout=kw["timeout"])
            return manager.run(kw["command"])

        tools["run"] = run
    if own("check"):
        tools["check"] = lambda **kw: manager.check(kw.get("task_id"))
    if own("kill"):
        tools["kill"] = lambda **kw: manager.kill(kw["task_id"])
    drain = manager.drain_notifications if own("drain_notifications") else None
    return tools or None, drain


def _takes(method: Any, name: str) -> bool:
    """`method` accepts a keyword argument `name` (by name, or through `**kwargs`)."""
    import inspect  # slow to import: only when a subclass overrides `run`

    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        (p.name == name and p.kind != p.POSITIONAL_ONLY) or p.kind == p.VAR_KEYWORD for p in params
    )


def _settle(done: asyncio.Future[None], outcome: BaseException | None) -> None:
    if done.done():
        return
    if outcome is None:
        done.set_result(None)
    else:
        done.set_exception(outcome)


async def _awaited(reply: Any) -> Any:
    return await reply


class _OnLoop:
    """A client called from the loop's thread whose `messages.create` may return an awaitable
    (an async client): that is awaited on the caller's event loop, where it belongs."""

    def __init__(self, client: Any, event_loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._event_loop = event_loop
        self._pending: concurrent.futures.Future[Any] | None = None
        self.messages = self

    def create(self, **kwargs: Any) -> Any:
        import asyncio
        import inspect

        reply = self._client.messages.create(**kwargs)
        if not inspect.isawaitable(reply):
            return reply
        self._pending = asyncio.run_coroutine_threadsafe(_awaited(reply), self._event_loop)
        return self._pending.result()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
