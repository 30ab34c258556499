"""`Agent`: the production agent loop in one object."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import _core
from .background import BackgroundManager


class Agent:
    """A coding agent with background tasks.

    Unlike the lesson's loop it waits, at the end of a turn, for tasks still running (at most
    `max_wait` seconds) so their results reach the model, and offers two more tools,
    wait_background and kill_background. `mirror=True` gives the lesson's loop exactly.
    Commands do not get ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN and their values are
    redacted from tool outputs, unless `pass_api_key=True` (or `mirror=True`).
    """

    def __init__(
        self,
        model: str | None = None,
        client: Any = None,
        workdir: str | os.PathLike[str] | None = None,
        manager: BackgroundManager | None = None,
        system: str | None = None,
        mirror: bool = False,
        max_wait: float = 300.0,
        *,
        max_tokens: int = 8000,
        echo: bool = True,
        pass_api_key: bool = False,
    ) -> None:
        self.workdir = Path(workdir if workdir is not None else os.getcwd()).resolve()
        self.model = model if model is not None else os.environ.get("MODEL_ID")
        self.client = client if client is not None else _core.Client()
        self.pass_api_key = pass_api_key or mirror
        if manager is None:
            manager = BackgroundManager(self.workdir, pass_api_key=self.pass_api_key)
        self.manager = manager
        self.system = system if system is not None else _core.lesson_system(self.workdir)
        self.mirror = mirror
        self.max_wait = max_wait
        self.max_tokens = max_tokens
        self.echo = echo
        self.messages: list[Any] = []

    def loop(self, messages: list[Any]) -> None:
        """Runs the loop on `messages` (mutated in place) until the model ends its turn."""
        _core.run_loop(
            messages,
            client=self.client,
            model=self.model,
            system=self.system,
            manager=self.manager,
            workdir=self.workdir,
            mirror=self.mirror,
            max_wait=self.max_wait,
            max_tokens=self.max_tokens,
            echo=self.echo,
            pass_api_key=self.pass_api_key,
        )

    def run(self, prompt: str) -> str:
        """Adds `prompt` to the conversation, runs the loop, returns the final text."""
        self.messages.append({"role": "user", "content": prompt})
        self.loop(self.messages)
        return final_text(self.messages)

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
