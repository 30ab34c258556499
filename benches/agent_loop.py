"""Overhead of the agent loop: a 50-turn scripted conversation over local HTTP.

Ours: `bgagent.Agent` in mirror mode with the built-in Rust client and tools.
Peer: the lesson's loop in plain Python with the official `anthropic` SDK.
The fake Messages API server runs in a separate process, so it shares no GIL with either.

Run:  python benches/agent_loop.py [--turns N] [--rounds N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

from messages_server import MessagesServer, message, text, tool_use


def script(turns: int) -> list[dict]:
    """`turns - 1` tool calls (cheap ones), then a final answer."""
    replies = [
        message([text(f"step {i}"), tool_use("check_background", {})], stop_reason="tool_use")
        for i in range(turns - 1)
    ]
    return [*replies, message([text("finished")])]


def serve(turns: int, rounds: int, ready) -> None:
    with MessagesServer(script(turns) * rounds) as server:
        ready.send(server.url)
        ready.recv()  # wait until the benchmark is done


def peer_loop(client, messages: list, workdir: Path) -> None:
    """The lesson's loop shape: call, append, run tools, append results."""
    tasks: dict = {}

    def check(task_id=None):
        return "No background tasks." if not tasks else "\n".join(tasks)

    def bash(command):
        r = subprocess.run(
            command, shell=True, cwd=workdir, capture_output=True, text=True, check=False
        )
        return (r.stdout + r.stderr).strip() or "(no output)"

    handlers = {"check_background": lambda **kw: check(kw.get("task_id")), "bash": bash}
    tools = [{"name": n, "description": n, "input_schema": {"type": "object"}} for n in handlers]
    while True:
        response = client.messages.create(
            model="bench", system="bench", messages=messages, tools=tools, max_tokens=8000
        )
        messages.append({"role": "assistant", "content": response.content})
        if response.stop_reason != "tool_use":
            return
        results = []
        for block in response.content:
            if block.type == "tool_use":
                output = handlers[block.name](**block.input)
                results.append(
                    {"type": "tool_result", "tool_use_id": block.id, "content": str(output)}
                )
        messages.append({"role": "user", "content": results})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import anthropic
    import bgagent

    here, there = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.turns, 2 * args.rounds, there))
    server.start()
    url = here.recv()
    workdir = Path(tempfile.mkdtemp(prefix="bgagent-bench-"))  # removed at the end
    sdk = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0)
    ours_client = bgagent.Client(base_url=url, api_key="bench", max_retries=0)
    agent = bgagent.Agent(
        model="bench", client=ours_client, workdir=workdir, mirror=True, echo=False
    )

    ours, peer = [], []
    for _ in range(args.rounds):  # interleaved, so drift hits both alike
        began = time.perf_counter()
        agent.loop([{"role": "user", "content": "go"}])
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        peer_loop(sdk, [{"role": "user", "content": "go"}], workdir)
        peer.append(time.perf_counter() - began)
    here.send("done")
    server.join()
    shutil.rmtree(workdir, ignore_errors=True)

    o, p = statistics.median(ours), statistics.median(peer)
    print(f"python {sys.version.split()[0]}, anthropic {anthropic.__version__}, {args.turns} turns")
    print()
    print("| scenario | bgagent | python peer (SDK) | peer / bgagent |")
    print("| --- | --- | --- | --- |")
    print(
        f"| {args.turns}-turn loop, median of {args.rounds} | {o * 1e3:.1f} ms "
        f"({o / args.turns * 1e3:.2f} ms/turn) | {p * 1e3:.1f} ms "
        f"({p / args.turns * 1e3:.2f} ms/turn) | {p / o:.2f}x |"
    )


if __name__ == "__main__":
    main()
