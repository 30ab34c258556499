"""`bgagent mcp`: the six background tools over stdio, driven by the official Python MCP
client and by raw lines on the server's stdin. Real tasks in a fresh workspace; a task that
must still run waits for a file the test makes; every task carries a marker, so the test can
see that none is left once the server is gone."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The MCP client needs Python 3.10 (scripts/test installs it only there); the server itself
# is Rust and needs no Python at all.
if sys.version_info < (3, 10):
    pytest.skip("the mcp client needs Python 3.10 or later", allow_module_level=True)

import anyio
from bgagent import _core
from helpers import SIX, new_marker, processes_with, wait_until
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

SCRIPT = Path(sys.executable).parent / "bgagent"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}


def workspace(tmp_path: Path, marker: str) -> Path:
    """A workspace whose path carries the marker (so the server's command line does too)."""
    path = tmp_path / marker
    path.mkdir()
    return path


def held(marker: str, name: str = "go") -> str:
    """A command that prints, then runs until the file `name` exists in the workspace."""
    return f"echo begun; until [ -e {name} ]; do sleep 0.01; done; echo released {marker}"


def task_id(started: str) -> str:
    """The id in `background_run`'s answer ("Background task ID started|queued ...")."""
    assert started.startswith("Background task "), started
    return started.split()[2]


def served(ws: Path, *flags: str, body) -> None:
    """Runs `body(session)` against `bgagent mcp` in `ws`, then the client leaves."""

    async def main():
        params = StdioServerParameters(
            command=str(SCRIPT),
            args=["mcp", "--workdir", str(ws), *flags],
            env=clean_env(),
            cwd=str(ws),
        )
        async with (
            stdio_client(params) as (read, write),
            ClientSession(read, write, read_timeout_seconds=120) as session,
        ):
            init = await session.initialize()
            assert init.server_info.name == "bgagent"
            assert init.server_info.version == _core.__version__
            await body(session)

    anyio.run(main)


async def call(session, name: str, arguments: dict) -> str:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result
    return "".join(block.text for block in result.content)


async def poll(session, name: str, arguments: dict, done, what: str) -> str:
    """Calls the tool until `done(text)`; fails after a generous deadline."""
    deadline = time.monotonic() + 60
    while True:
        text = await call(session, name, arguments)
        if done(text):
            return text
        assert time.monotonic() < deadline, f"no {what}; last answer: {text!r}"
        await anyio.sleep(0.01)


def task_runs(marker: str) -> None:
    """The server and the task both have the marker in their command lines."""
    wait_until(lambda: len(processes_with(marker)) > 1, "the task runs")


def none_left(marker: str) -> None:
    wait_until(lambda: not processes_with(marker), f"no process has {marker} (the server ended)")


def test_the_six_tools_for_real(tmp_path):
    marker = new_marker()
    ws = workspace(tmp_path, marker)

    async def body(session):
        tools = (await session.list_tools()).tools
        assert [t.name for t in tools] == SIX
        # The kit's definitions: those bgagent's own loop sends.
        own = {t["name"]: t for t in _core.tool_schemas(True)}
        for tool in tools:
            assert tool.description == own[tool.name]["description"]
            assert tool.input_schema == own[tool.name]["input_schema"]

        one = task_id(await call(session, "background_run", {"command": held(marker)}))
        await poll(session, "read_background", {"task_id": one}, lambda t: "begun" in t, "output")
        nothing = await call(session, "wait_background", {"cursor": 0, "timeout": 0})
        assert nothing == "No task finished since cursor 0.\n[cursor: 0; 1 running, 0 queued]"
        (ws / "go").touch()
        done = await call(session, "wait_background", {"cursor": 0, "timeout": 50})
        assert done.startswith(f"[bg:{one}] completed (exit 0, "), done
        assert f"released {marker}" in done
        assert done.endswith("[cursor: 1; 0 running, 0 queued]"), done
        # The answer was lost on the way: the same cursor gives the same task again.
        again = await call(session, "wait_background", {"cursor": 0, "timeout": 50})
        assert again.splitlines()[0] == done.splitlines()[0]

        two = task_id(await call(session, "background_run", {"command": held(marker, "never")}))
        await poll(session, "read_background", {"task_id": two}, lambda t: "begun" in t, "start")
        await call(session, "kill_background", {"task_id": two})
        killed = await poll(
            session, "check_background", {"task_id": two}, lambda t: "killed" in t, "kill"
        )
        assert killed.startswith("[killed]"), killed
        listed = await call(session, "list_background", {})
        assert one in listed and two in listed

        # Hostile arguments are refused in text; the server goes on.
        outside = await call(session, "background_run", {"command": "pwd", "workdir": "/"})
        assert outside.startswith("Error: Path escapes workspace"), outside
        huge = await call(session, "background_run", {"command": "true", "timeout": 1e300})
        assert huge.startswith("Error: timeout must be a positive number"), huge
        unknown = await call(session, "check_background", {"task_id": "nosuchid"})
        assert unknown == "Error: Unknown task nosuchid"
        assert (await call(session, "kill_background", {"task_id": "nosuchid"})).startswith("Error")
        result = await session.call_tool("bash", {"command": f"echo {marker}"})
        assert result.is_error and result.content[0].text == "Unknown tool: bash"
        assert "Background task" in await call(session, "background_run", {"command": "true"})

    served(ws, body=body)
    none_left(marker)


def test_more_tasks_than_the_cap_wait_in_line(tmp_path):
    marker = new_marker()
    ws = workspace(tmp_path, marker)

    async def body(session):
        first = await call(session, "background_run", {"command": held(marker)})
        assert " started: " in first, first
        second = await call(session, "background_run", {"command": f"echo second {marker}"})
        assert " queued (1st in line, 1 running): " in second, second
        (ws / "go").touch()
        both = await poll(
            session,
            "wait_background",
            {"cursor": 0, "timeout": 50},
            lambda t: "[cursor: 2; 0 running, 0 queued]" in t,
            "both tasks finished",
        )
        assert f"second {marker}" in both

    served(ws, "--max-running", "1", body=body)
    none_left(marker)


def test_a_wait_without_cursor_waits_for_a_task_that_finishes_after_it(tmp_path):
    marker = new_marker()
    ws = workspace(tmp_path, marker)

    async def body(session):
        first = task_id(await call(session, "background_run", {"command": f"echo {marker}"}))
        await call(session, "wait_background", {"task_id": first, "timeout": 50})
        second = task_id(await call(session, "background_run", {"command": held(marker)}))
        answers = []

        async def wait_any():
            answers.append(await call(session, "wait_background", {"timeout": 50}))

        async with anyio.create_task_group() as group:
            group.start_soon(wait_any)
            # Sent after the wait: once it is answered, the wait has been read too.
            await call(session, "list_background", {})
            (ws / "go").touch()
        # The first task's notification was emptied from the queue after its call, so this
        # wait did not answer at once with it but waited for the second task.
        assert f"{second}: [completed]" in answers[0], answers

    served(ws, body=body)
    none_left(marker)


class Server:
    """`bgagent mcp` on pipes, read line by line with a deadline."""

    def __init__(self, ws: Path):
        self.proc = subprocess.Popen(
            [str(SCRIPT), "mcp", "--workdir", str(ws)],
            cwd=ws,
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pending = b""

    def send(self, line) -> None:
        data = line if isinstance(line, bytes) else json.dumps(line).encode()
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 60.0) -> dict:
        """The next line the server writes, as JSON."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            assert left > 0, f"no reply within {timeout:g} s; got {self.pending!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, f"the server closed stdout; got {self.pending!r}"
                self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def until_id(self, wanted) -> list[dict]:
        """Every reply up to and including the one with id `wanted`."""
        replies = []
        while not replies or replies[-1].get("id") != wanted:
            replies.append(self.read())
        return replies

    def initialize(self) -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "1"},
                },
            }
        )
        assert self.read()["result"]["serverInfo"]["name"] == "bgagent"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, id_, name: str, arguments: dict) -> None:
        params = {"name": name, "arguments": arguments}
        self.send({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params})

    def ended(self) -> int:
        return self.proc.wait(timeout=60)


def invalid(id_) -> dict:
    error = {"code": -32600, "message": "Invalid Request"}
    return {"jsonrpc": "2.0", "id": id_, "error": error}


def test_malformed_lines_are_dropped_or_refused_and_the_server_goes_on(tmp_path):
    marker = new_marker()
    server = Server(workspace(tmp_path, marker))
    server.initialize()
    server.send(b"this is not JSON")
    server.send(b'{"foo":1}')
    server.send(b"[]")
    server.send(b'{"foo":1,"id":41}')
    # A valid call, but longer than the filter takes: dropped without a reply.
    pad = "x" * (5 * 1024 * 1024)
    server.call(50, "list_background", {"pad": pad})
    server.call(60, "no_such_tool", {})
    server.send({"jsonrpc": "2.0", "id": 70, "method": "tools/list"})
    replies = server.until_id(70)
    tools = replies.pop()["result"]["tools"]
    assert [t["name"] for t in tools] == SIX
    unknown = [r for r in replies if r.get("id") == 60]
    assert unknown == [
        {
            "jsonrpc": "2.0",
            "id": 60,
            "result": {
                "content": [{"type": "text", "text": "Unknown tool: no_such_tool"}],
                "isError": True,
            },
        }
    ]
    assert [r for r in replies if r.get("id") != 60] == [invalid(None), invalid(None), invalid(41)]
    # Still served after all that; the oversize call never got an answer.
    server.call(80, "list_background", {})
    after = server.until_id(80)
    assert after == [
        {
            "jsonrpc": "2.0",
            "id": 80,
            "result": {
                "content": [{"type": "text", "text": "No background tasks."}],
                "isError": False,
            },
        }
    ], after
    server.proc.stdin.close()
    assert server.ended() == 0
    assert server.proc.stdout.read() == b""


def test_stdin_closing_interrupts_a_wait_and_kills_the_tasks(tmp_path):
    marker = new_marker()
    ws = workspace(tmp_path, marker)
    server = Server(ws)
    server.initialize()
    server.call(2, "background_run", {"command": held(marker, "never")})
    assert server.read()["id"] == 2
    task_runs(marker)
    # A wait that would block 50 s: the client leaves during it.
    server.call(3, "wait_background", {"cursor": 0, "timeout": 50})
    server.call(4, "list_background", {})
    assert server.read()["id"] == 4  # the wait is under way
    server.proc.stdin.close()
    interrupted = server.read()
    assert interrupted["id"] == 3
    assert interrupted["result"]["content"][0]["text"] == "Error: interrupted"
    assert server.ended() == 0
    none_left(marker)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_server_and_its_tasks(tmp_path, sig):
    marker = new_marker()
    server = Server(workspace(tmp_path, marker))
    server.initialize()
    server.call(2, "background_run", {"command": held(marker, "never")})
    assert server.read()["id"] == 2
    task_runs(marker)
    server.proc.send_signal(sig)
    assert server.ended() == 128 + sig
    none_left(marker)
    server.proc.stdin.close()


def test_a_server_killed_outright_leaves_no_task(tmp_path):
    # SIGKILL gives the server no chance to clean up: its supervisor ends the tasks.
    marker = new_marker()
    server = Server(workspace(tmp_path, marker))
    server.initialize()
    server.call(2, "background_run", {"command": held(marker, "never")})
    assert server.read()["id"] == 2
    task_runs(marker)
    server.proc.kill()
    assert server.ended() == -signal.SIGKILL
    none_left(marker)
    server.proc.stdin.close()
