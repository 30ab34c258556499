"""What a long session piles up: finished tasks (memory and disk per task) and the in-memory
trace (the cost of one more line as it grows). Prints markdown tables.

Run:  python benches/long_sessions.py [--tasks N] [--before PYTHON]

`--before` names the interpreter of an older build (for example another checkout's
`.venv/bin/python`): every figure is then measured with both, in this one run. Each figure
comes from a child process of its own (started with `--child`), so one does not inherit the
other's heap.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: 99 characters and a newline: 100 bytes of output.
ECHO = "echo " + "x" * 99


def memory_kib() -> tuple[int, int]:
    """This process's RSS and PSS, in KiB."""
    values = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    return values["Rss"], values["Pss"]


def children_rss_kib() -> int:
    """RSS of this process's children (the supervisor), in KiB."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


IDS = itertools.count()


def run_batch(m, command: str, n: int) -> None:
    for _ in range(n):
        if hasattr(m, "start"):
            m.start(command)
        else:  # the core object alone: ids are the caller's
            m.start_as(f"{next(IDS):08x}", command, None)
    got = 0
    while got < n:
        got += len(m.wait_for_notifications(timeout=600))


def child_finished(face: str, command: str, n: int) -> dict:
    """Memory and disk that `n` finished tasks keep, beyond a warmed-up manager."""
    import bgagent
    from bgagent import _core

    logs = Path(tempfile.mkdtemp(prefix="bgagent-bench-logs-"))
    make = bgagent.BackgroundManager if face == "python" else _core.BackgroundManager
    m = make(log_dir=str(logs), max_running=None)  # every task at once, as measured
    batch = 1000
    # Warm-up: the runtime, the supervisor and the allocator's arenas, counted out.
    run_batch(m, command, batch)
    if face == "python":
        m.tasks  # noqa: B018 - the lesson's dict, filled with the results
    gc.collect()
    rss0, pss0 = memory_kib()
    sup0 = children_rss_kib()
    warm = set(os.listdir(logs))
    began = time.perf_counter()
    for _ in range(n // batch):
        run_batch(m, command, batch)
    elapsed = time.perf_counter() - began
    if face == "python":
        m.tasks  # noqa: B018
    gc.collect()
    rss1, pss1 = memory_kib()
    sup1 = children_rss_kib()
    names = [name for name in os.listdir(logs) if name not in warm]
    sizes = [os.stat(logs / name) for name in names]
    result = {
        "tasks": n,
        "rss_per_task": (rss1 - rss0) * 1024 / n,
        "pss_per_task": (pss1 - pss0) * 1024 / n,
        "supervisor_per_task": (sup1 - sup0) * 1024 / n,
        "files": len(names),
        "bytes": sum(s.st_size for s in sizes),
        "disk": sum(s.st_blocks * 512 for s in sizes),
        "rate": n / elapsed,
    }
    m.shutdown()
    shutil.rmtree(logs, ignore_errors=True)
    return result


def child_trace(checkpoints: list[int], budget: float, trace: str | None) -> dict:
    """The cost of one more trace line when the trace holds about N lines: the median over
    five windows of turns right after N lines were recorded, per line they add. `trace`: a
    file to trace to instead of memory (a reference for what the loop costs by itself)."""
    import statistics

    import bgagent

    workdir = tempfile.mkdtemp(prefix="bgagent-bench-trace-")
    reply = {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"}

    def client() -> object:
        # A fresh client now and then: a scripted client keeps every request it answered.
        return bgagent.ScriptedClient([reply] * 100)

    agent = bgagent.Agent(model="bench", client=client(), workdir=workdir, echo=False, trace=trace)

    def turns(k: int) -> None:
        for _ in range(k):
            if agent.client.remaining == 0:
                agent.client = client()
            agent.loop([{"role": "user", "content": "go"}])

    per_turn = 4  # user_input, model_call, model_reply, turn_end
    turns(10)
    recorded = 1 + 10 * per_turn
    window, windows = 100, 5
    out: dict = {"lines_per_turn": per_turn, "at": {}}
    cost = None  # seconds per line, last measured
    for target in checkpoints:
        need = max(0, int((target - recorded) / per_turn))
        if cost is not None and need * per_turn * cost > budget:
            out["at"][target] = {"skipped": need * per_turn * cost}
            continue
        turns(need)
        recorded += need * per_turn
        costs = []
        for _ in range(windows):
            began = time.perf_counter()
            turns(window)
            costs.append((time.perf_counter() - began) / (window * per_turn))
        cost = statistics.median(costs)
        recorded += windows * window * per_turn
        out["at"][target] = {"us_per_line": cost * 1e6}
    began = time.perf_counter()
    lines = agent.tracer.lines() if trace is None else []
    out["kept"] = len(lines)
    out["recorded"] = int(recorded)
    out["read_ms"] = (time.perf_counter() - began) * 1e3
    out["rss_mib"] = memory_kib()[0] / 1024
    agent.manager.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)
    return out


def in_child(python: str, *args: str) -> dict:
    out = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if out.returncode != 0:
        raise SystemExit(f"{python} {' '.join(args)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--before", help="the interpreter of an older build, to compare")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per trace figure")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "finished":
            print(json.dumps(child_finished(rest[0], rest[1], int(rest[2]))))
        else:
            points = [int(p) for p in rest[0].split(",")]
            trace = rest[1] if len(rest) > 1 else None
            print(json.dumps(child_trace(points, args.budget, trace)))
        return

    builds = [("after", sys.executable)]
    if args.before:
        builds.insert(0, ("before", args.before))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print()
    print(f"Finished tasks ({args.tasks} after 1,000 to warm up, {ECHO[:8]}... = 100 bytes out)")
    print()
    print(
        "| build | face | command | RSS/task | PSS/task | supervisor RSS/task "
        "| log files | log bytes | on disk | tasks/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for face in ("python", "core"):
        for command, name in (("true", "true"), (ECHO, "echo (100 B)")):
            for build, python in builds:
                r = in_child(python, "finished", face, command, str(args.tasks))
                print(
                    f"| {build} | {face} | {name} | {r['rss_per_task']:.0f} B "
                    f"| {r['pss_per_task']:.0f} B | {r['supervisor_per_task']:.0f} B "
                    f"| {r['files']} | {r['bytes']} | {r['disk'] / 2**20:.1f} MiB "
                    f"| {r['rate']:.0f} |"
                )
    print()
    points = "10000,100000,200000"
    print("Trace: time per line (Agent turns of 4 lines, scripted client), median of 5x100 turns")
    print()
    print("| build | trace | at 10,000 lines | at 100,000 | at 200,000 | lines kept | lines() |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    runs = [(build, python, "memory") for build, python in builds]
    runs.append(("after", sys.executable, os.devnull))  # the loop without a trace in memory
    for build, python, where in runs:
        extra = [] if where == "memory" else [where]
        r = in_child(python, "trace", points, *extra, "--budget", str(args.budget))

        def cell(point: str, r: dict = r) -> str:
            at = r["at"][point]
            if "skipped" in at:
                return f"not reached (would take over {at['skipped']:.0f} s)"
            return f"{at['us_per_line']:.1f} µs"

        kept = f"{r['kept']} of {r['recorded']}" if where == "memory" else "(file)"
        print(
            f"| {build} | {where} | {cell('10000')} | {cell('100000')} | {cell('200000')} "
            f"| {kept} | {r['read_ms']:.0f} ms |"
        )


if __name__ == "__main__":
    main()
