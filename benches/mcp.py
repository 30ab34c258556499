"""`bgagent mcp` beside the Python API: a start-to-result round trip of `true`, in one run.
Prints a markdown table, the command that made it first.

Run:  python benches/mcp.py [--runs N]

- MCP: through `bgagent mcp` (the console script next to this interpreter) with the official
  Python client (`mcp`): `background_run` of `true`, then `wait_background` with the cursor
  the last answer gave, until the answer holds the task. The time includes both JSON-RPC
  round trips, the client's own work (pydantic models, anyio streams) and the server's.
- API: `BackgroundManager.start("true")`, then `wait(task_id)`, in this process.

Each side starts one untimed task first (the first task may wait for the supervisor to start);
the two sides alternate run by run, so a busy moment of the shared machine falls on both.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

# This file is named mcp.py: its directory, first on the path, would hide the mcp package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import anyio
import bgagent
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

SCRIPT = Path(sys.executable).parent / "bgagent"
CURSOR = re.compile(r"\[cursor: (\d+);")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def text_of(session: ClientSession, name: str, arguments: dict) -> str:
    result = await session.call_tool(name, arguments)
    text = "".join(block.text for block in result.content)
    if result.is_error or text.startswith("Error"):
        raise RuntimeError(f"{name}: {text}")
    return text


class McpSide:
    """One `bgagent mcp` session; `round_trip` runs one task and waits for its result."""

    def __init__(self, session: ClientSession):
        self.session = session
        self.cursor = 0

    async def round_trip(self) -> float:
        began = time.perf_counter()
        started = await text_of(self.session, "background_run", {"command": "true"})
        task = started.split()[2]
        while True:
            args = {"cursor": self.cursor, "timeout": 50}
            answer = await text_of(self.session, "wait_background", args)
            self.cursor = int(CURSOR.findall(answer)[-1])
            if f"[bg:{task}]" in answer:
                return time.perf_counter() - began


def api_round_trip(m: bgagent.BackgroundManager) -> float:
    began = time.perf_counter()
    task = m.start("true")
    m.wait(task, timeout=60)
    took = time.perf_counter() - began
    m.drain_notifications()  # as the server does after each call; not timed
    return took


async def measure(runs: int, workdir: str) -> tuple[list[float], list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}
    params = StdioServerParameters(
        command=str(SCRIPT), args=["mcp", "--workdir", workdir], env=env, cwd=workdir
    )
    m = bgagent.BackgroundManager(workdir)
    via_mcp, via_api = [], []
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, read_timeout_seconds=120) as session,
    ):
        await session.initialize()
        side = McpSide(session)
        await side.round_trip()  # untimed: the server's supervisor starts
        api_round_trip(m)  # untimed: this process's supervisor starts
        for _ in range(runs):
            via_mcp.append(await side.round_trip())
            via_api.append(api_round_trip(m))
    m.shutdown()
    return via_mcp, via_api


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bgagent-bench-mcp-") as workdir:
        via_mcp, via_api = anyio.run(measure, args.runs, workdir)
    version = _distribution_version("mcp")
    print(f"$ python benches/mcp.py --runs {args.runs}")
    print(f"bgagent {bgagent.__version__}, mcp {version}, Python {sys.version.split()[0]}")
    print()
    print(f"| `true`, start to result ({args.runs} runs) | p50 | p99 |")
    print("| --- | --- | --- |")
    for name, values in (("Python API (start + wait)", via_api), ("bgagent mcp", via_mcp)):
        print(f"| {name} | {pct(values, 0.5) * 1e3:.2f} ms | {pct(values, 0.99) * 1e3:.2f} ms |")
    ratio = [pct(via_mcp, p) / pct(via_api, p) for p in (0.5, 0.99)]
    print(f"| mcp / API | {ratio[0]:.2f}x | {ratio[1]:.2f}x |")


def _distribution_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
