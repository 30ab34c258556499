"""Agent.run_async against a real HTTP server speaking the Messages API: the built-in client,
the official AsyncAnthropic client and plain objects; cancellation; several agents at once."""

import asyncio
import threading
import types

import anthropic
import bgagent
import pytest
from helpers import assert_valid, new_marker, processes_with, wait_until
from messages_server import MessagesServer, after, message, text, tool_use


def test_run_async_answers_as_run_does(agent, server, tmp_path):
    server.add(
        message(
            [text("writing"), tool_use("write_file", {"path": "a.txt", "content": "hi"})],
            "tool_use",
        ),
        message([text("wrote it")]),
    )

    async def main():
        return await agent.run_async("write")

    assert asyncio.run(main()) == "wrote it"
    assert (tmp_path / "a.txt").read_text() == "hi"
    assert server.requests[1].body["messages"][2]["content"][0]["content"] == "Wrote 2 bytes"
    assert_valid(agent.messages)


def test_run_async_awaits_an_async_sdk_client_on_the_callers_loop(server, tmp_path):
    server.add(
        message([tool_use("bash", {"command": "echo from-bash"})], "tool_use"),
        message([text("done")]),
    )

    async def main():
        sdk = anthropic.AsyncAnthropic(base_url=server.url, api_key="k", max_retries=0)
        async with bgagent.Agent(model="m", client=sdk, workdir=tmp_path, echo=False) as agent:
            return await agent.run_async("go"), agent.messages

    answer, messages = asyncio.run(main())
    assert answer == "done"
    assert server.requests[1].body["messages"][2]["content"][0]["content"] == "from-bash"
    assert_valid(messages)


def test_run_async_with_a_plain_object_whose_create_is_a_coroutine_function(tmp_path):
    loops = []

    async def create(**kwargs):
        loops.append(asyncio.get_running_loop())
        return {"stop_reason": "end_turn", "content": [{"type": "text", "text": "async hi"}]}

    fake = types.SimpleNamespace(messages=types.SimpleNamespace(create=create))

    async def main():
        agent = bgagent.Agent(model="m", client=fake, workdir=tmp_path, echo=False)
        return await agent.run_async("hi"), asyncio.get_running_loop()

    answer, caller_loop = asyncio.run(main())
    assert answer == "async hi"
    assert loops == [caller_loop]


def test_cancelling_run_async_during_a_tool_stops_it_and_answers_every_tool_use(agent, server):
    marker = new_marker()
    server.add(
        message(
            [
                tool_use("bash", {"command": f"sleep 300 # {marker}"}),
                tool_use("bash", {"command": "echo never"}),
            ],
            "tool_use",
        )
    )

    async def main():
        run = asyncio.ensure_future(agent.run_async("go"))
        while not processes_with(marker):
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert_valid(agent.messages)
    answers = [b["content"] for b in agent.messages[-1]["content"]]
    assert answers == [
        "Error: Interrupted by the user",
        "Error: Interrupted by the user before this tool ran",
    ]
    wait_until(lambda: not processes_with(marker), "the interrupted command is gone")
    assert len(server.requests) == 1


def test_cancelling_run_async_during_an_async_model_call(server, tmp_path):
    arrived, release = threading.Event(), threading.Event()

    def hold():
        arrived.set()
        release.wait(60)

    server.add(after(hold, message([text("too late")])))

    async def main():
        sdk = anthropic.AsyncAnthropic(base_url=server.url, api_key="k", max_retries=0)
        agent = bgagent.Agent(model="m", client=sdk, workdir=tmp_path, echo=False)
        run = asyncio.ensure_future(agent.run_async("go"))
        while not arrived.is_set():
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        return agent

    try:
        agent = asyncio.run(main())
    finally:
        release.set()
    assert agent.messages == [{"role": "user", "content": "go"}]


def test_agents_awaited_together_do_not_wait_for_each_other(tmp_path):
    """Agent A's model call is held until agent B has finished its whole run: run one after the
    other, they would never end."""
    b_done = threading.Event()
    with MessagesServer() as slow, MessagesServer() as fast:
        slow.add(after(lambda: b_done.wait(60), message([text("a")])))
        fast.add(message([text("b")]))

        async def main():
            agents = [
                bgagent.Agent(
                    model="m", client=bgagent.Client(base_url=s.url, api_key="k"), workdir=tmp_path
                )
                for s in (slow, fast)
            ]
            a = asyncio.ensure_future(agents[0].run_async("x"))
            b = await agents[1].run_async("y")
            b_done.set()
            return await a, b

        assert asyncio.run(main()) == ("a", "b")
