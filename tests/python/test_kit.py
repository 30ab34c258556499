"""The kit for a loop of one's own, from Python: the six tools' definitions in both formats,
`run_tool` with every form a tool use comes in, its awaitable twin, the injected block, and
the examples run on the real `anthropic` SDK against the local Messages server."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import anthropic
import bgagent
import pytest
from bgagent import _core
from helpers import SIX
from messages_server import after, message, text, tool_use

EXAMPLES = Path(__file__).parents[2] / "examples" / "own_loop"
HELD = "until [ -e go ]; do sleep 0.01; done"


@pytest.fixture
def bg(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3) as manager:
        yield manager


def test_the_definitions_are_what_bgagents_own_loop_offers(bg):
    anthropic_tools = bg.tool_definitions()
    assert [t["name"] for t in anthropic_tools] == SIX
    own = {t["name"]: t for t in _core.tool_schemas(True)}
    assert all(t == own[t["name"]] for t in anthropic_tools)
    openai_tools = bg.tool_definitions("openai")
    for o, a in zip(openai_tools, anthropic_tools, strict=True):
        assert o == {
            "type": "function",
            "function": {
                "name": a["name"],
                "description": a["description"],
                "parameters": a["input_schema"],
            },
        }
    # The shape the openai SDK's own types give a Chat Completions function tool (strictly:
    # no key they do not name).
    import pydantic
    from openai.types.chat import ChatCompletionFunctionToolParam
    from openai.types.shared_params import FunctionDefinition

    for o in openai_tools:
        for shape, value in [
            (ChatCompletionFunctionToolParam, o),
            (FunctionDefinition, o["function"]),
        ]:
            pydantic.TypeAdapter(shape).validate_python(value)
            assert shape.__required_keys__ <= value.keys() <= shape.__annotations__.keys()
    with pytest.raises(ValueError, match="format must be 'anthropic' or 'openai'"):
        bg.tool_definitions("gemini")  # type: ignore[arg-type]


def test_run_tool_takes_every_form_a_tool_use_comes_in(bg):
    started = bg.run_tool("background_run", {"command": "echo one"})
    task_id = started.split()[2]
    assert started == f"Background task {task_id} started: echo one"
    done = "[completed] echo one\none"
    wait = {"task_id": task_id, "timeout": 60}
    assert bg.run_tool("wait_background", json.dumps(wait)) == done
    block = {"type": "tool_use", "id": "t1", "name": "check_background", "input": wait}
    assert bg.run_tool({**block, "input": {"task_id": task_id}}) == done
    sdk_block = anthropic.types.ToolUseBlock(
        id="t2", name="check_background", input={"task_id": task_id}, type="tool_use"
    )
    assert bg.run_tool(sdk_block) == done
    call = {"id": "c1", "type": "function", "function": {"name": "check_background",
            "arguments": json.dumps({"task_id": task_id})}}  # fmt: skip
    assert bg.run_tool(call) == done
    # The task started through the kit is one of the manager's like any other.
    assert bg.tasks[task_id]["status"] == "completed"
    assert bg.run_tool("list_background").startswith(f"{task_id}: [completed] echo one")
    # Problems the model made are answers for the model; the caller's are exceptions.
    assert bg.run_tool("bash", {"command": "id"}) == "Unknown tool: bash"
    assert bg.run_tool("check_background", "{").startswith(
        "Error: the arguments of check_background are not JSON"
    )
    assert bg.run_tool("kill_background", {}) == (
        "Error: kill_background needs the argument 'task_id'"
    )
    with pytest.raises(TypeError, match="a tool use is a tool name"):
        bg.run_tool(42)
    with pytest.raises(TypeError, match="arguments go with a tool name"):
        bg.run_tool(block, {"task_id": task_id})


def test_a_cursor_follows_what_finished_and_the_block_injects_it(bg, tmp_path):
    task_id = bg.start(f"{HELD}; echo 3 passed")
    nothing = bg.run_tool("wait_background", {"cursor": 0, "timeout": 0})
    assert nothing == "No task finished since cursor 0.\n[cursor: 0; 1 running, 0 queued]"
    (tmp_path / "go").touch()
    got = bg.run_tool("wait_background", {"cursor": 0, "timeout": 60})
    assert got.startswith(f"[bg:{task_id}] completed (exit 0, ")
    assert got.endswith("): 3 passed\n[cursor: 1; 0 running, 0 queued]")
    notes = bg.drain_notifications()
    assert bgagent.results_block(notes, lesson=True) == (
        f"<background-results>\n[bg:{task_id}] completed: 3 passed\n</background-results>"
    )
    production = bgagent.results_block(notes)
    assert production.startswith(f"<background-results>\n[bg:{task_id}] completed (exit 0, ")
    with pytest.raises(KeyError):
        bgagent.results_block([{"task_id": "x"}])


def test_run_tool_async_waits_without_blocking_and_cancelling_stops_it(bg, tmp_path):
    task_id = bg.start(f"{HELD}; echo late")

    async def main():
        wait = asyncio.create_task(bg.run_tool_async("wait_background", {"task_id": task_id}))
        # The event loop runs on while the tool waits: it is free to release the task.
        (tmp_path / "go").touch()
        assert await wait == "[completed] " + bg.tasks[task_id]["command"][:60] + "\nlate"
        other = bg.start(HELD.replace("go", "never"))
        stuck = asyncio.create_task(bg.run_tool_async("wait_background", {"task_id": other}))
        await asyncio.sleep(0)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        return other

    other = asyncio.run(main())
    assert bg.kill(other).startswith("[killed]")


@pytest.mark.parametrize("example", ["anthropic_sync.py", "anthropic_async.py"])
def test_the_examples_loop_on_the_sdk_and_inject_a_result_once(example, server, tmp_path):
    go = tmp_path / "go"
    command = f"until [ -e {go} ]; do sleep 0.01; done; echo 3 passed"
    server.add(
        message([tool_use("background_run", {"command": command})], "tool_use"),
        # The task ends only once the model has ended its turn: the example waits for it.
        after(go.touch, message([text("Started it.")])),
        message([text("All 3 tests passed.")]),
    )
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": "test-key",
        "MODEL_ID": "test-model",
    }
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "All 3 tests passed."
    first, _, last = (r.body for r in server.requests)
    assert [t["name"] for t in first["tools"]] == SIX
    injected = json.dumps(last["messages"])
    assert injected.count("<background-results>") == 1 and injected.count("): 3 passed") == 1
    assert last["messages"][-1]["content"][-1]["text"].startswith("<background-results>\n[bg:")


def test_the_openai_example_loops_on_the_real_sdk(tmp_path):
    from chat_server import ChatServer, answer, tool_calls

    go = tmp_path / "go"
    command = f"until [ -e {go} ]; do sleep 0.01; done; echo 3 passed"
    replies = [tool_calls(("background_run", {"command": command})), answer("Started it.")]
    with ChatServer([*replies, answer("All 3 tests passed.")]) as server:
        server.before(1, go.touch)  # the task ends once the model has answered the tool call
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "test-key"}
        out = subprocess.run(
            [sys.executable, str(EXAMPLES / "openai_sync.py")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "All 3 tests passed."
    first, second, last = server.requests
    assert [t["function"]["name"] for t in first["tools"]] == SIX
    assert all(t["type"] == "function" for t in first["tools"])
    tool_answer = second["messages"][-1]
    assert tool_answer["role"] == "tool" and tool_answer["tool_call_id"] == "call_0"
    assert tool_answer["content"].startswith("Background task ")
    injected = json.dumps(last["messages"])
    assert injected.count("<background-results>") == 1 and injected.count("): 3 passed") == 1
