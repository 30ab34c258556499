"""A scripted fake of the OpenAI Chat Completions API on 127.0.0.1, for the kit's OpenAI-style
example: each POST /v1/chat/completions takes the next scripted assistant message and answers
it as a (non-streaming) completion. Standard library only.

    with ChatServer([tool_calls(("background_run", {"command": "true"})), answer("done")]) as s:
        client = openai.OpenAI(base_url=s.url, api_key="test")
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, final

__all__ = ["ChatServer", "answer", "tool_calls"]


def answer(text: str) -> dict:
    return {"role": "assistant", "content": text}


def tool_calls(*calls: tuple[str, dict]) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(arguments)}}
            for i, (name, arguments) in enumerate(calls)
        ],
    }  # fmt: skip


@final  # not meant for subclassing, so __enter__ can return the concrete type
class ChatServer:
    """Serves `replies` in order; `requests` holds each request body. `before(n, action)` runs
    `action()` when the n-th request (from 0) arrives, before its reply."""

    def __init__(self, replies: list[dict]) -> None:
        self.replies = list(replies)
        self.requests: list[Any] = []
        self.actions: dict[int, Callable[[], object]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    n = len(server.requests)
                    server.requests.append(body)
                    reply = server.replies.pop(0) if server.replies else None
                if n in server.actions:
                    server.actions[n]()
                if self.path != "/v1/chat/completions" or reply is None:
                    self.send_error(500, "no scripted reply left")
                    return
                finish = "tool_calls" if reply.get("tool_calls") else "stop"
                completion = {
                    "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }  # fmt: skip
                data = json.dumps(completion).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def before(self, n: int, action: Callable[[], object]) -> None:
        self.actions[n] = action

    def __enter__(self) -> ChatServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
