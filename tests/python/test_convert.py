"""Python values to JSON and back, through the public API: what is sent, what is refused."""

import json
import math
import sys
import types

import anthropic
import bgagent
import pytest
from bgagent import s08
from helpers import run_clean
from messages_server import message, text, tool_use

TOO_DEEP = r"nested too deeply \(more than 256 levels\) or contains itself"


def create(client, messages):
    return client.messages.create(model="m", max_tokens=10, messages=messages)


def nested_lists(levels, leaf="bottom"):
    """`levels` lists, each inside the one before."""
    value = [leaf]
    for _ in range(levels - 1):
        value = [value]
    return value


def nested_dicts(levels):
    """`levels` dicts, each under the key "in" of the one before."""
    value = {"leaf": True}
    for _ in range(levels - 1):
        value = {"in": value}
    return value


def test_a_message_that_contains_itself_is_refused_and_the_loop_goes_on(agent, server):
    block = {"type": "text", "text": "loop"}
    block["again"] = block
    messages = [{"role": "user", "content": [block]}]
    with pytest.raises(ValueError, match=TOO_DEEP):
        agent.loop(messages)
    assert len(messages) == 1 and messages[0]["content"] == [block]
    assert server.requests == []

    cycle = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match=TOO_DEEP):
        agent.loop([{"role": "user", "content": cycle}])

    server.add(message([text("still here")]))
    assert agent.run("hello?") == "still here"


def test_a_self_containing_value_does_not_crash_the_interpreter(tmp_path):
    script = """
import bgagent
client = bgagent.Client(base_url="http://127.0.0.1:9", api_key="k", max_retries=0)
d = {"role": "user"}
d["content"] = [d]
try:
    client.messages.create(model="m", max_tokens=10, messages=[d])
except ValueError as e:
    print("ValueError:", e)
print("alive")
"""
    done = run_clean([sys.executable, "-c", script], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "nested too deeply" in done.stdout and done.stdout.endswith("alive\n")


def test_the_depth_limit_is_256_levels(client, server):
    server.add(message([text("a")]), message([text("b")]), message([text("c")]))
    deep = nested_lists(256)  # the messages list itself is the first level
    create(client, deep)
    assert server.requests[-1].body["messages"] == deep
    with pytest.raises(ValueError, match=TOO_DEEP):
        create(client, nested_lists(257))
    with pytest.raises(ValueError, match=TOO_DEEP):
        create(client, [{"role": "user", "content": [nested_dicts(300)]}])
    with pytest.raises(ValueError, match=TOO_DEEP):
        create(client, [{"role": "user", "content": nested_lists(300)}])
    assert len(server.requests) == 1

    content = [{"type": "text", "text": "x", "extra": nested_dicts(200)}]
    create(client, [{"role": "user", "content": content}])
    assert server.requests[-1].body["messages"][0]["content"] == content
    content = nested_lists(200)
    create(client, [{"role": "user", "content": content}])
    assert server.requests[-1].body["messages"][0]["content"] == content


def test_deep_sdk_objects_count_towards_the_limit(client, server):
    class Model:
        def __init__(self, inner):
            self.inner = inner

        def model_dump(self, **kwargs):
            return {"inner": self.inner}

    value = "leaf"
    for _ in range(300):
        value = Model(value)
    with pytest.raises(ValueError, match=TOO_DEEP):
        create(client, [{"role": "user", "content": [value]}])

    class Itself:
        def model_dump(self, **kwargs):
            return self

    with pytest.raises(ValueError, match=TOO_DEEP):
        create(client, [{"role": "user", "content": [Itself()]}])

    ns = types.SimpleNamespace(type="text")
    ns.me = ns
    with pytest.raises(ValueError, match=TOO_DEEP):
        create(client, [{"role": "user", "content": [ns]}])
    assert server.requests == []


def test_scalars_round_trip(client, server):
    server.add(message([text("ok")]))
    values = {
        "big": 2**64 - 1,
        "small": -(2**63),
        "float": 1.5,
        "whole_float": 2.0,
        "yes": True,
        "no": False,
        "none": None,
        "tuple": (1, "two"),
        "text": '日本\n"quoted"',
    }
    create(client, [{"role": "user", "content": [{"type": "text", "text": "x", **values}]}])
    sent = server.requests[0].body["messages"][0]["content"][0]
    assert sent == {"type": "text", "text": "x", **values, "tuple": [1, "two"]}
    assert isinstance(sent["whole_float"], float) and sent["yes"] is True
    assert b'"whole_float":2.0' in server.requests[0].raw.replace(b" ", b"")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_value_errors(client, server, bad):
    with pytest.raises(ValueError, match="cannot be sent as JSON"):
        create(client, [{"role": "user", "content": [{"type": "text", "n": bad}]}])
    assert server.requests == []


def test_unsendable_values_are_type_errors(client, server):
    with pytest.raises(TypeError, match="message keys must be strings, not int"):
        create(client, [{"role": "user", 1: "one"}])
    with pytest.raises(TypeError, match="cannot send a set to the model"):
        create(client, [{"role": "user", "content": {1, 2}}])
    with pytest.raises(TypeError, match="cannot send a bytes to the model"):
        create(client, [{"role": "user", "content": b"raw"}])
    with pytest.raises(OverflowError):
        create(client, [{"role": "user", "content": 2**64}])
    assert server.requests == []


def test_sdk_objects_and_plain_objects_nested_anywhere(client, server):
    server.add(message([text("ok")]))
    sdk_text = anthropic.types.TextBlock(type="text", text="from the sdk")
    sdk_tool = anthropic.types.ToolUseBlock(
        type="tool_use", id="toolu_1", name="bash", input={"command": "ls"}
    )
    plain = types.SimpleNamespace(type="text", text="plain", _hidden="not sent")
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [sdk_text, sdk_tool]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [plain]},
            ],
        },
    ]
    create(client, messages)
    sent = server.requests[0].body["messages"]
    assert sent[1]["content"] == [
        {"type": "text", "text": "from the sdk"},  # citations=None left out
        {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}},
    ]
    assert sent[2]["content"][0]["content"] == [{"type": "text", "text": "plain"}]


def test_a_python_client_gets_plain_dicts_and_lists_in_order(tmp_path):
    calls = []

    def fake_create(**kwargs):
        calls.append(kwargs)
        return {"stop_reason": "end_turn", "content": [{"type": "text", "text": "done"}]}

    fake = types.SimpleNamespace(messages=types.SimpleNamespace(create=fake_create))
    agent = bgagent.Agent(model="m", client=fake, workdir=tmp_path, echo=False)
    block = {"type": "text", "text": "hi", "zeta": {"b": 1, "a": [1, 2.5, None, True]}, "alpha": 0}
    agent.loop([{"role": "user", "content": [block]}])
    (kwargs,) = calls
    messages, tools = kwargs["messages"], kwargs["tools"]
    assert type(messages) is list and type(messages[0]) is dict
    got = messages[0]["content"][0]
    assert type(got) is dict and got == block
    assert list(got) == ["type", "text", "zeta", "alpha"] and list(got["zeta"]) == ["b", "a"]
    assert type(got["zeta"]["a"]) is list
    assert type(tools) is list and all(type(t) is dict for t in tools)
    assert all(type(t["input_schema"]) is dict for t in tools)


def test_responses_are_blocks_with_plain_values_inside(client, server):
    server.add(message([text("hi"), {"type": "tool_use", "id": "t", "name": "x", "input": {}}]))
    reply = create(client, [{"role": "user", "content": "x"}])
    assert isinstance(reply, bgagent.Block) and type(reply.content) is list
    assert all(isinstance(b, bgagent.Block) for b in reply.content)
    assert type(reply.content[1].input) is dict and type(reply.usage) is dict


def test_tool_handlers_get_plain_keyword_arguments(tmp_path, monkeypatch):
    seen = []
    tool = types.SimpleNamespace(
        type="tool_use", id="t1", name="probe", input={"opts": {"deep": [1, {"x": 2}]}}
    )
    replies = [
        types.SimpleNamespace(stop_reason="tool_use", content=[tool]),
        {"stop_reason": "end_turn", "content": [{"type": "text", "text": "done"}]},
    ]
    fake = types.SimpleNamespace(messages=types.SimpleNamespace(create=lambda **kw: replies.pop(0)))
    monkeypatch.setattr(s08, "client", fake)
    monkeypatch.setattr(s08, "MODEL", "m")
    monkeypatch.setattr(s08, "WORKDIR", tmp_path)
    monkeypatch.setattr(s08, "TOOL_HANDLERS", {"probe": lambda **kw: seen.append(kw) or "ok"})
    assert type(s08.TOOLS) is list and type(s08.TOOLS[0]) is dict
    messages = [{"role": "user", "content": "go"}]
    s08.agent_loop(messages)
    assert seen == [{"opts": {"deep": [1, {"x": 2}]}}]
    assert type(seen[0]["opts"]) is dict and type(seen[0]["opts"]["deep"]) is list
    assert messages[2]["content"][0]["content"] == "ok"


def test_each_model_call_sends_the_conversation_as_it_is_then(tmp_path):
    # Messages unchanged since the last call are not converted again: whatever is changed, in
    # place or not, between runs or during one, is sent as it is at the call.
    reply = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    client = bgagent.ScriptedClient([reply] * 20, keep_requests=None)
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, echo=False)

    def run_and_check(prompt):
        expected = json.loads(json.dumps([*agent.messages, {"role": "user", "content": prompt}]))
        agent.run(prompt)
        assert client.requests[-1]["messages"] == expected

    run_and_check("one")
    run_and_check("two")
    m = agent.messages
    m[0]["content"] = "one, edited"
    run_and_check("three")
    m[1]["content"][0]["text"] = "edited reply"  # a Block the loop made, changed in place
    run_and_check("four")
    m[1]["content"].append({"type": "text", "text": "more"})
    run_and_check("five")
    block = m[1]["content"][0]
    block["type"] = block.pop("type")  # the same keys and values, in another order
    run_and_check("six")
    shared = {"type": "text", "text": "twice"}
    m[2]["content"] = (shared, [shared])
    run_and_check("seven")
    shared["text"] = "changed in both places"
    run_and_check("eight")
    m[2]["content"][1].append("inside a tuple's list")
    run_and_check("nine")
    sdk_text = anthropic.types.TextBlock(type="text", text="from the sdk")
    m[3]["content"] = [sdk_text]
    count = len(m)
    agent.run("ten")
    assert client.requests[-1]["messages"][3]["content"] == [
        {"type": "text", "text": "from the sdk"}
    ]
    sdk_text.text = "the sdk object changed"
    agent.run("eleven")
    assert client.requests[-1]["messages"][3]["content"][0]["text"] == "the sdk object changed"
    assert len(client.requests[-1]["messages"]) == count + 3
    m[3]["content"] = "plain again"
    del m[4:8]
    m.insert(0, {"role": "user", "content": "inserted first"})
    run_and_check("twelve")
    agent.messages = [
        {"role": "user", "content": "a new list"},
        {"role": "assistant", "content": "k"},
    ]
    run_and_check("thirteen")


def test_a_message_changed_during_a_run_is_sent_changed(tmp_path):
    class Editing(bgagent.BackgroundManager):
        def check(self, task_id=None):
            agent.messages[0]["content"][0]["text"] = "edited by a tool"
            return super().check(task_id)

    client = bgagent.ScriptedClient(
        [
            message([tool_use("check_background", {})], stop_reason="tool_use"),
            message([text("done")]),
        ]
    )
    with Editing(tmp_path) as manager:
        agent = bgagent.Agent(model="m", client=client, manager=manager, echo=False)
        agent.messages.append({"role": "user", "content": [{"type": "text", "text": "go"}]})
        agent.loop(agent.messages)
    first, second = client.requests
    assert first["messages"][0]["content"][0]["text"] == "go"
    assert second["messages"][0]["content"][0]["text"] == "edited by a tool"
