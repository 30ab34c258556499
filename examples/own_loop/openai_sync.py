"""Background tasks in an OpenAI-style function-calling loop, on the official `openai` SDK:
offer `bg.tool_definitions("openai")`, answer each tool call with `bg.run_tool(call)`, and add
what finished as a user message. Needs OPENAI_API_KEY (and MODEL_ID, or the default below).

Run:  python examples/own_loop/openai_sync.py
"""

import os

import bgagent
import openai

client = openai.OpenAI()
MODEL = os.environ.get("MODEL_ID", "gpt-4.1")

with bgagent.BackgroundManager() as bg:
    messages: list = [{"role": "user", "content": "Run the test suite in the background."}]
    while True:
        reply = (
            client.chat.completions.create(
                model=MODEL, messages=messages, tools=bg.tool_definitions("openai")
            )
            .choices[0]
            .message
        )
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": bg.run_tool(call)})
        if not reply.tool_calls:
            bg.wait_for_finished()  # the model is done for now: wait while tasks run
        # What finished meanwhile goes to the model next, each task exactly once.
        if notes := bg.drain_notifications():
            messages.append({"role": "user", "content": bgagent.results_block(notes)})
        elif not reply.tool_calls:
            break
    print(reply.content)
