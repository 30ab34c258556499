"""Background tasks in an asyncio agent loop of your own, on the official `anthropic` SDK:
the loop of anthropic_sync.py with `AsyncAnthropic`, `run_tool_async` and
`wait_for_finished_async`, so no wait blocks the event loop.

Run:  python examples/own_loop/anthropic_async.py
"""

import asyncio
import os

import anthropic
import bgagent

MODEL = os.environ.get("MODEL_ID", "claude-sonnet-4-5")


async def main() -> None:
    client = anthropic.AsyncAnthropic()
    with bgagent.BackgroundManager() as bg:
        messages: list = [{"role": "user", "content": "Run the test suite in the background."}]
        while True:
            reply = await client.messages.create(
                model=MODEL, max_tokens=1024, tools=bg.tool_definitions(), messages=messages
            )
            messages.append({"role": "assistant", "content": reply.content})
            if reply.stop_reason == "tool_use":
                content = [
                    {
                        "type": "tool_result",
                        "tool_use_id": block.id,
                        "content": await bg.run_tool_async(block),
                    }
                    for block in reply.content
                    if block.type == "tool_use"
                ]
            else:
                await bg.wait_for_finished_async()
                content = []
            if notes := bg.drain_notifications():
                content.append({"type": "text", "text": bgagent.results_block(notes)})
            if not content:
                break
            messages.append({"role": "user", "content": content})
        print(reply.content[-1].text)


asyncio.run(main())
