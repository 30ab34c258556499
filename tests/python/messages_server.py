"""A scripted fake of the Anthropic Messages API on 127.0.0.1, for tests.

Standard library only. Each POST /v1/messages consumes one scripted reply: a message (sent as
JSON, or as an SSE stream when the request asks for `"stream": true`), an error, a stall, a
dropped connection or a malformed body. `after(action, reply)` first runs `action()` when the
request arrives, so a test can act at that moment (or hold the reply until something happened).

    with MessagesServer([message([text("hi")])]) as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0)
        ...
        assert server.requests[0].body["model"] == ...
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union, final
from urllib.parse import urlsplit

__all__ = [
    "MessagesServer",
    "Request",
    "after",
    "close",
    "error",
    "malformed",
    "message",
    "stall",
    "text",
    "tool_use",
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _rand(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


@dataclass
class Request:
    """One request as received: headers have lower-case keys; body is None unless JSON."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    raw: bytes


@dataclass(frozen=True)
class _Special:
    """A reply that is not a message: kind is "error", "stall", "close" or "malformed"."""

    kind: str
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class _After:
    """Run `action()` when the request arrives, then send `reply`."""

    action: Callable[[], object]
    reply: dict | _Special


Reply = Union[dict, _Special, _After]


# --- reply constructors ----------------------------------------------------------------------


def text(s: str) -> dict:
    """A text content block."""
    return {"type": "text", "text": s}


def tool_use(name: str, input: dict, id: str | None = None) -> dict:
    """A tool_use content block; the id is random unless given."""
    return {"type": "tool_use", "id": id or _rand("toolu_"), "name": name, "input": input}


def message(content: list[dict], stop_reason: str = "end_turn", **extra: Any) -> dict:
    """A full Messages API response; `model` defaults to the request's model at send time."""
    out_tokens = max(1, len(json.dumps(content)) // 4)
    msg = {
        "id": _rand("msg_"),
        "type": "message",
        "role": "assistant",
        "model": None,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": out_tokens},
    }
    msg.update(extra)
    return msg


def error(
    status: int,
    message: str = "scripted error",
    type: str | None = None,
    headers: dict[str, str] | None = None,
) -> _Special:
    """An HTTP error with the API's error body; `type` defaults from the status code."""
    if type is None:
        type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": type, "message": message}}
    return _Special("error", status=status, body=_dumps(body), headers=dict(headers or {}))


def after(action: Callable[[], object], reply: dict | _Special) -> _After:
    """Runs `action()` in the server's thread when the request arrives, then sends `reply`.

    The client is then waiting for this reply: what it did before sending the request is done.
    If `action` raises, the reply is a 500 error naming the exception.
    """
    return _After(action, reply)


def stall(seconds: float) -> _Special:
    """Read the request, send nothing for `seconds`, then close the connection."""
    return _Special("stall", seconds=seconds)


def close() -> _Special:
    """Read the request, then close the connection without a response."""
    return _Special("close")


def malformed() -> _Special:
    """A 200 application/json response whose body is not valid JSON."""
    return _Special("malformed", body=b'{"id": "msg_broken", "type": "message", "content": [')


# --- SSE encoding ----------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    # Raw UTF-8 like the real API, so clients must decode multi-byte text split across reads.
    return json.dumps(obj, ensure_ascii=False).encode()


def _pieces(s: str, n: int) -> list[str]:
    """Split s into at most n non-empty, roughly equal pieces (one empty piece if s is empty)."""
    n = max(1, min(n, len(s)))
    size = -(-len(s) // n) if s else 1
    return [s[i : i + size] for i in range(0, len(s), size)] or [""]


def _event(kind: str, **fields: Any) -> tuple[str, dict]:
    return kind, {"type": kind, **fields}


def _sse_events(msg: dict) -> list[tuple[str, dict]]:
    """The event sequence the real API streams for a finished message."""
    usage = dict(msg.get("usage") or {})
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    events = [_event("message_start", message=start), _event("ping")]
    for index, block in enumerate(msg.get("content") or []):
        if block.get("type") == "text":
            first = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": t} for t in _pieces(block["text"], 3)]
        elif block.get("type") == "tool_use":
            first = {**block, "input": {}}
            js = json.dumps(block.get("input", {}), ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(js, 4)]
        else:  # other block kinds arrive whole in their start event
            first, deltas = block, []
        events.append(_event("content_block_start", index=index, content_block=first))
        events += [_event("content_block_delta", index=index, delta=d) for d in deltas]
        events.append(_event("content_block_stop", index=index))
    stop = {"stop_reason": msg.get("stop_reason"), "stop_sequence": msg.get("stop_sequence")}
    events.append(
        _event("message_delta", delta=stop, usage={"output_tokens": usage.get("output_tokens", 1)})
    )
    events.append(_event("message_stop"))
    return events


# --- server ----------------------------------------------------------------------------------


def conversation_problem(messages: Any) -> str | None:
    """What the real API would refuse in a conversation: an empty message, a tool_use without a
    tool_result right after it, a tool_result without its tool_use just before."""
    if not isinstance(messages, list):
        return "messages: a list is required"

    def ids(message: Any, kind: str, key: str) -> list:
        content = message.get("content") if isinstance(message, dict) else None
        blocks = content if isinstance(content, list) else []
        return [b.get(key) for b in blocks if isinstance(b, dict) and b.get("type") == kind]

    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if content in ([], ""):
            return f"messages.{i}: all messages must have non-empty content"
        before = ids(messages[i - 1], "tool_use", "id") if i else []
        for result in ids(message, "tool_result", "tool_use_id"):
            if result not in before:
                return f"messages.{i}: tool_result for {result} has no tool_use before it"
        after = ids(messages[i + 1], "tool_result", "tool_use_id") if i + 1 < len(messages) else []
        for call in ids(message, "tool_use", "id"):
            if call not in after:
                return f"messages.{i}: tool_use {call} has no tool_result after it"
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled handler must never keep the process alive
    owner: MessagesServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-reply is expected in tests; keep stderr quiet


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # TCP_NODELAY: avoids ~40 ms delayed-ACK stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._record(b"")
        if urlsplit(self.path).path == "/health":
            self._send(200, b"ok", "text/plain")
        else:
            self._send_special(error(404, f"Not found: {self.path}"))

    def do_POST(self) -> None:
        raw = self._read_body()
        request = self._record(raw)
        if urlsplit(self.path).path != "/v1/messages":
            self._send_special(error(404, f"Not found: {self.path}"))
            return
        body = request.body if isinstance(request.body, dict) else {}
        problem = conversation_problem(body.get("messages"))
        if problem:
            # Refused as the real API refuses it, so every test checks the conversation.
            self._send_special(error(400, problem, "invalid_request_error"))
            return
        reply = self.server.owner._next_reply()
        if isinstance(reply, _After):
            try:
                reply.action()
                reply = reply.reply
            except Exception as e:  # noqa: BLE001 - any failure goes to the client as text
                reply = error(500, f"the test's action failed: {e!r}")
        if isinstance(reply, _Special):
            self._send_special(reply)
            return
        msg = dict(reply)
        if not msg.get("model"):
            msg["model"] = body.get("model", "claude-test")
        if body.get("stream") is True:
            self._send_stream(msg)
        else:
            self._send(200, _dumps(msg), "application/json")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size + 2)[:size])  # drop the chunk's CRLF
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, raw: bytes) -> Request:
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = Request(self.command, self.path, headers, body, raw)
        self.server.owner._append(request)
        return request

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status, "Overloaded" if status == 529 else None)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", _rand("req_"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_special(self, reply: _Special) -> None:
        if reply.kind in ("error", "malformed"):
            self._send(reply.status, reply.body, "application/json", reply.headers)
        elif reply.kind == "stall":
            self.server.owner._stopping.wait(reply.seconds)  # cut short by server shutdown
            self.close_connection = True
        elif reply.kind == "close":
            self.close_connection = True

    def _send_stream(self, msg: dict) -> None:
        # Chunked encoding keeps the connection reusable; httpx and reqwest both decode it.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", _rand("req_"))
        self.end_headers()
        for name, data in _sse_events(msg):
            event = b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"
            # Two writes per event, so clients must join events that span reads.
            half = len(event) // 2
            for part in (event[:half], event[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@final  # not meant for subclassing, so __enter__ can return the concrete type
class MessagesServer:
    """A fake Messages API serving scripted replies, one per POST /v1/messages, in order.

    Use as a context manager: entering starts it on an OS-chosen port (see `url`), leaving
    stops it, even while a stall is in progress. An empty queue answers 500.
    """

    def __init__(self, replies: list | None = None) -> None:
        self._lock = threading.Lock()
        self._replies: list[Reply] = list(replies or [])
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[Request] = []
        self.url = ""

    def add(self, *replies: Reply) -> None:
        """Append replies to the queue."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still unused."""
        with self._lock:
            return len(self._replies)

    def __enter__(self) -> MessagesServer:
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        # Wake handlers blocked reading idle keep-alive connections.
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def _next_reply(self) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.pop(0)
        return error(500, "no scripted reply left", "api_error")

    def _append(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)
