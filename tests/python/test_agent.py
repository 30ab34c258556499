"""The agent loop from Python against a real HTTP server speaking the Messages API."""

import re
import socket
import types

import anthropic
import bgagent
import pytest
from helpers import assert_valid, new_marker, processes_with, sigint_once_running, wait_until
from messages_server import after, close, error, malformed, message, stall, text, tool_use


def user_texts(request) -> list[str]:
    """The plain-text user messages of a recorded request."""
    return [
        m["content"]
        for m in request.body["messages"]
        if m["role"] == "user" and isinstance(m["content"], str)
    ]


def test_a_background_result_reaches_the_next_model_call(agent, server):
    def task_ended():
        wait_until(lambda: not agent.manager.has_running_tasks(), "the background task ends")

    server.add(
        message([tool_use("background_run", {"command": "echo built"})], stop_reason="tool_use"),
        # Held until the task has ended: its result is queued before the next model call.
        after(task_ended, message([tool_use("bash", {"command": "true"})], stop_reason="tool_use")),
        message([text("all done")]),
    )
    assert agent.run("build it") == "all done"
    third = server.requests[2]
    task_id = agent.manager.check().split(":")[0]
    # Production's line: exit code and duration (the output stayed in memory: no log file).
    pattern = rf"<background-results>\n\[bg:{task_id}\] completed \(exit 0, [0-9.]+s\): built\n"
    assert any(re.fullmatch(pattern + "</background-results>", t) for t in user_texts(third))
    body = server.requests[0].body
    assert body["model"] == "test-model" and body["max_tokens"] == 8000
    assert (
        body["system"]
        == f"You are a coding agent at {agent.workdir}. Use background_run for long-running commands."
    )
    assert [t["name"] for t in body["tools"]][-3:] == [
        "wait_background",
        "kill_background",
        "list_background",
    ]


def test_production_waits_at_end_turn_and_mirror_does_not(client, server, tmp_path):
    bg = bgagent.BackgroundManager(tmp_path)
    production = bgagent.Agent(model="m", client=client, workdir=tmp_path, manager=bg)
    # The task ends once the second model call is under way: still running at the end of turn.
    command = "until [ -e release ]; do sleep 0.01; done; exit 3"
    server.add(
        message([tool_use("background_run", {"command": command})], "tool_use"),
        after((tmp_path / "release").touch, message([text("started it")])),
        message([text("it failed with 3")]),
    )
    assert production.run("go") == "it failed with 3"
    task_id = bg.check().split(":")[0]
    injected = user_texts(server.requests[2])[-1]
    assert re.fullmatch(
        rf"<background-results>\n\[bg:{task_id}\] completed \(exit 3, [0-9.]+s\): \(no output\)"
        "\n</background-results>",
        injected,
    ), injected

    mirror = bgagent.Agent(model="m", client=client, workdir=tmp_path, manager=bg, mirror=True)
    server.add(
        message([tool_use("background_run", {"command": "sleep 600"})], "tool_use"),
        message([text("started it")]),
    )
    assert mirror.run("go") == "started it"
    assert bg.has_running_tasks(), "the lesson's loop returns while the task runs"
    assert len(server.requests) == 5
    assert [t["name"] for t in server.requests[3].body["tools"]][-1] == "check_background"
    bg.shutdown()


def test_max_wait_bounds_the_end_of_turn_wait(client, server, tmp_path):
    bg = bgagent.BackgroundManager(tmp_path, grace=0.2)
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, manager=bg, max_wait=0.3)
    server.add(message([tool_use("background_run", {"command": "sleep 30"})], "tool_use"))
    server.add(message([text("ok")]))
    assert agent.run("go") == "ok"
    assert bg.has_running_tasks()
    bg.shutdown()


def test_retries_honour_retry_after_then_succeed(agent, server):
    server.add(
        error(529, headers={"retry-after": "0"}),
        error(500, headers={"retry-after": "0"}),
        message([text("third time")]),
    )
    assert agent.run("hi") == "third time"
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, bgagent.BadRequestError),
        (401, bgagent.AuthenticationError),
        (403, bgagent.PermissionDeniedError),
        (404, bgagent.NotFoundError),
        (429, bgagent.RateLimitError),
        (500, bgagent.InternalServerError),
        (529, bgagent.InternalServerError),
    ],
)
def test_status_errors_raise_their_class_and_keep_messages(agent, server, status, exc):
    for _ in range(3):
        server.add(error(status, message=f"bad {status}", headers={"retry-after": "0"}))
    with pytest.raises(exc) as caught:
        agent.run("hi")
    assert isinstance(caught.value, bgagent.APIStatusError)
    assert caught.value.status_code == status
    assert f"bad {status}" in str(caught.value)
    assert agent.messages == [{"role": "user", "content": "hi"}]
    retried = status in (429, 500, 529)
    assert len(server.requests) == (3 if retried else 1)


def test_a_dead_server_is_a_connection_error_naming_the_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = bgagent.Client(base_url=url, api_key="k", max_retries=0)
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path)
    with pytest.raises(bgagent.APIConnectionError, match=f"127.0.0.1:{port}.*ANTHROPIC_BASE_URL"):
        agent.run("hi")


def test_stall_close_and_malformed_replies(server, tmp_path):
    client = bgagent.Client(base_url=server.url, api_key="k", max_retries=0, timeout=0.5)
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path)
    server.add(stall(600))  # ended when the server stops
    with pytest.raises(bgagent.APITimeoutError):
        agent.run("hi")
    # Without the short timeout: a busy machine must not turn these into timeouts.
    agent.client = bgagent.Client(base_url=server.url, api_key="k", max_retries=0)
    server.add(close())
    with pytest.raises(bgagent.APIConnectionError):
        agent.run("hi")
    server.add(malformed())
    with pytest.raises(bgagent.APIResponseValidationError, match="not JSON"):
        agent.run("hi")
    assert all(m["role"] == "user" for m in agent.messages)


def test_missing_model_and_key_say_what_to_set(server, tmp_path, monkeypatch):
    agent = bgagent.Agent(model="", client=bgagent.Client(base_url=server.url, api_key="k"))
    with pytest.raises(bgagent.ConfigError, match="MODEL_ID"):
        agent.run("hi")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    agent = bgagent.Agent(model="m", client=bgagent.Client(base_url=server.url), workdir=tmp_path)
    with pytest.raises(bgagent.ConfigError, match="ANTHROPIC_API_KEY"):
        agent.run("hi")
    assert server.requests == []


def test_auth_headers(server, tmp_path):
    server.add(message([text("a")]), message([text("b")]))
    for kwargs in ({"api_key": "sk-1"}, {"auth_token": "tok-2"}):
        client = bgagent.Client(base_url=server.url, **kwargs)
        client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    first, second = server.requests
    assert first.headers["x-api-key"] == "sk-1" and "authorization" not in first.headers
    assert second.headers["authorization"] == "Bearer tok-2" and "x-api-key" not in second.headers
    assert first.headers["anthropic-version"] == "2023-06-01"


def test_streaming_assembles_the_same_blocks(server):
    reply = message(
        [text("Let me look. " * 5), tool_use("read_file", {"path": "日本/a.txt", "limit": 3})],
        stop_reason="tool_use",
    )
    server.add(reply, reply)
    plain = bgagent.Client(base_url=server.url, api_key="k")
    streaming = bgagent.Client(base_url=server.url, api_key="k", stream=True)
    ask = {"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}
    a = plain.messages.create(**ask)
    b = streaming.messages.create(**ask)
    assert server.requests[1].body["stream"] is True
    assert a.content == b.content == reply["content"]
    assert a.stop_reason == b.stop_reason == "tool_use"
    assert b.content[1].input == {"path": "日本/a.txt", "limit": 3}


def test_tool_errors_and_path_escapes_come_back_as_text(agent, server):
    server.add(
        message(
            [
                tool_use("read_file", {"path": "../secret"}),
                tool_use("write_file", {"path": "x.txt"}),
                tool_use("nope", {}),
            ],
            "tool_use",
        ),
        message([text("ok")]),
    )
    agent.run("try")
    results = [b["content"] for b in agent.messages[2]["content"]]
    assert results == [
        "Error: Path escapes workspace: ../secret",
        "Error: write_file needs the argument 'content'",
        "Unknown tool: nope",
    ]


def test_ctrl_c_during_a_tool_leaves_a_valid_conversation(agent, server, sigint_raises):
    marker = new_marker()
    command = f"sleep 30; : {marker}"
    server.add(
        message(
            [tool_use("bash", {"command": command}), tool_use("bash", {"command": "echo 2"})],
            "tool_use",
        )
    )
    sender = sigint_once_running(marker)  # Ctrl-C once the 30 s command runs
    with pytest.raises(KeyboardInterrupt):
        agent.run("sleep")
    sender.join()
    assert_valid(agent.messages)
    results = [b["content"] for b in agent.messages[-1]["content"]]
    assert results[0] == "Error: Interrupted by the user", "the 30 s command was stopped"
    assert processes_with(marker) == []
    assert "Interrupted" in results[1]
    server.add(message([text("fine")]))
    assert agent.run("still there?") == "fine"


def test_the_lessons_repl_code_works_on_appended_blocks(agent, server):
    server.add(message([text("hello"), tool_use("check_background", {})], "tool_use"))
    server.add(message([text("bye")]))
    agent.run("hi")
    block = agent.messages[1]["content"][0]
    assert block.text == block["text"] == "hello" and block.type == "text"
    tool = agent.messages[1]["content"][1]
    assert not hasattr(tool, "text") and tool.name == "check_background" and tool.input == {}
    printed = [b.text for b in agent.messages[-1]["content"] if hasattr(b, "text")]
    assert printed == ["bye"]


def test_a_plain_fake_client_object_works(tmp_path):
    calls = []

    def create(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            block = types.SimpleNamespace(
                type="tool_use", id="t1", name="bash", input={"command": "echo hi"}
            )
            return types.SimpleNamespace(stop_reason="tool_use", content=[block])
        return {"stop_reason": "end_turn", "content": [{"type": "text", "text": "done"}]}

    fake = types.SimpleNamespace(messages=types.SimpleNamespace(create=create))
    agent = bgagent.Agent(model="m", client=fake, workdir=tmp_path, echo=False)
    assert agent.run("go") == "done"
    assert calls[1]["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": "hi",
    }


def test_a_python_client_error_is_raised_as_itself(tmp_path):
    class Boom(Exception):
        pass

    def create(**kwargs):
        raise Boom("no luck")

    fake = types.SimpleNamespace(messages=types.SimpleNamespace(create=create))
    agent = bgagent.Agent(model="m", client=fake, workdir=tmp_path)
    with pytest.raises(Boom, match="no luck"):
        agent.run("go")
    assert agent.messages == [{"role": "user", "content": "go"}]


def test_the_official_sdk_as_client(server, tmp_path):
    sdk = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    agent = bgagent.Agent(model="m", client=sdk, workdir=tmp_path, echo=False)
    server.add(
        message(
            [text("writing"), tool_use("write_file", {"path": "a.txt", "content": "hi"})],
            "tool_use",
        ),
        message([text("wrote it")]),
    )
    assert agent.run("write") == "wrote it"
    assert (tmp_path / "a.txt").read_text() == "hi"
    sent = server.requests[1].body["messages"]
    assert sent[1]["content"][1]["name"] == "write_file"
    assert sent[2]["content"][0]["content"] == "Wrote 2 bytes"
    # SDK objects in the conversation are accepted too.
    server.add(message([text("sdk says hi")]))
    reply = sdk.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    agent.messages.append({"role": "assistant", "content": reply.content})
    agent.messages.append({"role": "user", "content": "and?"})
    server.add(message([text("and so on")]))
    agent.loop(agent.messages)
    assert server.requests[-1].body["messages"][-2]["content"][0]["text"] == "sdk says hi"


def test_a_run_override_gets_the_models_timeout_when_it_takes_one(server, client, tmp_path):
    class WithTimeout(bgagent.BackgroundManager):
        def run(self, command, workdir=None, *, timeout=None):
            self.got = timeout
            return super().run(command, workdir, timeout=timeout)

    class CommandOnly(bgagent.BackgroundManager):
        def run(self, command, workdir=None):
            self.got = "command only"
            return super().run(command, workdir)

    for kind, want in [(WithTimeout, 0.5), (CommandOnly, "command only")]:
        bg = kind(tmp_path, timeout=60, grace=0.3)
        # max_wait=0: the turn ends without waiting for the task.
        agent = bgagent.Agent(
            model="m", client=client, workdir=tmp_path, manager=bg, echo=False, max_wait=0
        )
        call = {"command": "sleep 30", "timeout": 0.5}
        server.add(
            message([tool_use("background_run", call)], "tool_use"),
            message([text("started")]),
        )
        assert agent.run("go") == "started"
        assert bg.got == want
        [task_id] = bg.tasks
        if kind is WithTimeout:  # the task's own timeout stopped it
            assert bg.wait(task_id, timeout=60) == "[timeout] sleep 30\nError: Timeout (0.5s)"
        else:
            assert bg.kill(task_id) == "[killed] sleep 30\nError: Killed"
        bg.shutdown()


def test_an_agent_calls_the_methods_a_manager_subclass_overrides(server, client, tmp_path):
    class Audited(bgagent.BackgroundManager):
        def __init__(self) -> None:
            super().__init__(tmp_path, timeout=5, grace=0.3)
            self.calls: list[str] = []

        def run(self, command, workdir=None):
            self.calls.append(f"run {command}")
            return super().run(command, workdir)

        def check(self, task_id=None):
            self.calls.append("check")
            return "checked: " + super().check(task_id)

        def drain_notifications(self):
            notes = super().drain_notifications()
            self.calls.append(f"drain {len(notes)}")
            return [{**n, "result": n["result"].upper()} for n in notes]

    bg = Audited()
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, manager=bg, echo=False)

    def task_ended():
        wait_until(lambda: not bg.has_running_tasks(), "the background task ends")

    server.add(
        message([tool_use("background_run", {"command": "echo quiet"})], "tool_use"),
        after(task_ended, message([tool_use("check_background", {})], "tool_use")),
        message([text("done")]),
    )
    assert agent.run("go") == "done"
    assert bg.calls[:2] == ["drain 0", "run echo quiet"]
    assert "check" in bg.calls
    sent = server.requests[2].body["messages"]
    results = [
        b.get("content") for m in sent if isinstance(m["content"], list) for b in m["content"]
    ]
    assert any(str(r).startswith("checked: ") for r in results)
    injected = [
        m["content"] for m in sent if isinstance(m["content"], str) and "bg:" in m["content"]
    ]
    assert len(injected) == 1 and injected[0].endswith(": QUIET\n</background-results>")
    assert bg.kill("nope") == "Error: Unknown task nope"
