"""What `await` costs beside the blocking calls, in one process run.

- `true` run to its answer: `bg.wait(id)` against `await bg.wait_async(id)` (p50 of N runs).
- A 10-turn scripted conversation over local HTTP: `agent.run(...)` against
  `await agent.run_async(...)` (p50 of N rounds); the fake server runs in its own process.

Run:  python benches/async_overhead.py [--runs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bgagent

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

from messages_server import MessagesServer, message, text, tool_use

TURNS = 10


def script() -> list[dict]:
    steps = [
        message([text(f"step {i}"), tool_use("check_background", {})], stop_reason="tool_use")
        for i in range(TURNS - 1)
    ]
    return [*steps, message([text("finished")])]


def serve(rounds: int, ready) -> None:
    with MessagesServer(script() * rounds) as server:
        ready.send(server.url)
        ready.recv()


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def waits(runs: int) -> tuple[float, float]:
    with bgagent.BackgroundManager(grace=0.3) as bg:
        blocking = []
        for _ in range(runs):
            t0 = time.perf_counter()
            bg.wait(bg.start("true"))
            blocking.append(time.perf_counter() - t0)

        async def awaited() -> list[float]:
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                await bg.wait_async(bg.start("true"))
                samples.append(time.perf_counter() - t0)
            return samples

        return p50_ms(blocking), p50_ms(asyncio.run(awaited()))


def loops(url: str, rounds: int) -> tuple[float, float]:
    workdir = tempfile.mkdtemp()
    client = bgagent.Client(base_url=url, api_key="bench", max_retries=0)

    def agent() -> bgagent.Agent:
        return bgagent.Agent(model="bench", client=client, workdir=workdir, mirror=True, echo=False)

    blocking = []
    for _ in range(rounds):
        a = agent()
        t0 = time.perf_counter()
        a.run("go")
        blocking.append(time.perf_counter() - t0)

    async def awaited() -> list[float]:
        samples = []
        for _ in range(rounds):
            a = agent()
            t0 = time.perf_counter()
            await a.run_async("go")
            samples.append(time.perf_counter() - t0)
        return samples

    return p50_ms(blocking), p50_ms(asyncio.run(awaited()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(2 * args.rounds, theirs), daemon=True)
    server.start()
    url = ours.recv()
    try:
        wait_ms, wait_async_ms = waits(args.runs)
        run_ms, run_async_ms = loops(url, args.rounds)
    finally:
        ours.send("done")
        server.join(timeout=10)
    print(f"bgagent {bgagent.__version__}, Python {sys.version.split()[0]}")
    print()
    print("| what | blocking p50 | awaited p50 | awaited / blocking |")
    print("| --- | --- | --- | --- |")
    print(
        f"| `true`, start to answer ({args.runs} runs) | {wait_ms:.2f} ms | "
        f"{wait_async_ms:.2f} ms | {wait_async_ms / wait_ms:.2f}x |"
    )
    print(
        f"| {TURNS}-turn loop over local HTTP ({args.rounds} rounds) | {run_ms:.1f} ms | "
        f"{run_async_ms:.1f} ms | {run_async_ms / run_ms:.2f}x |"
    )


if __name__ == "__main__":
    main()
