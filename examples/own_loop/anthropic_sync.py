"""Background tasks in an agent loop of your own, on the official `anthropic` SDK.

Three additions to a plain tool loop: offer `bg.tool_definitions()` beside your tools, answer
their calls with `bg.run_tool(block)`, and let what finished ride along with the next user
message as `bgagent.results_block(...)`. Needs ANTHROPIC_API_KEY (and MODEL_ID, or the default
below).

Run:  python examples/own_loop/anthropic_sync.py
"""

import os

import anthropic
import bgagent

client = anthropic.Anthropic()
MODEL = os.environ.get("MODEL_ID", "claude-sonnet-4-5")

with bgagent.BackgroundManager() as bg:
    messages: list = [{"role": "user", "content": "Run the test suite in the background."}]
    while True:
        reply = client.messages.create(
            model=MODEL, max_tokens=1024, tools=bg.tool_definitions(), messages=messages
        )
        messages.append({"role": "assistant", "content": reply.content})
        if reply.stop_reason == "tool_use":
            content = [
                {"type": "tool_result", "tool_use_id": block.id, "content": bg.run_tool(block)}
                for block in reply.content
                if block.type == "tool_use"
            ]
        else:
            # The model is done for now: while tasks run, wait until one has finished.
            bg.wait_for_finished()
            content = []
        # What finished meanwhile goes with the next user message, each task exactly once.
        if notes := bg.drain_notifications():
            content.append({"type": "text", "text": bgagent.results_block(notes)})
        if not content:
            break  # nothing to answer and nothing runs: the model's last reply stands
        messages.append({"role": "user", "content": content})
    print(reply.content[-1].text)
