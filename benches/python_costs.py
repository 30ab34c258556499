"""What the Python face costs where it should stay flat, in one run, with the figures of another
build beside ours when `--before PYTHON` names an interpreter that has it installed.

- `import bgagent` and `import bgagent.s08`: median of 5 fresh interpreters (and which of
  asyncio, concurrent.futures and inspect the import loaded).
- Dropping a manager with N finished tasks (a small log file each): how long another Python thread
  is kept from running (the longest gap between two of its steps, one a millisecond, while
  `del` runs; beside it the longest gap while the GIL is free, which is the scheduler's), and
  how long `del` takes on the dropping thread.
- An `Agent` over a `ScriptedClient`, one model call per turn, the conversation growing:
  the cost of turn 10 and of turn 1,000 (median of the 11 turns around each), and how much
  the process grew over the 1,000 turns (with the client's default bound on the requests it
  keeps, and keeping none, where the build has that parameter).

Each figure comes from a child process of its own (`--child`), started with this interpreter
and, with `--before`, with the other one.

Run:  python benches/python_costs.py [--before /path/to/old/python] [--tasks N] [--turns N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HEAVY = ("asyncio", "concurrent.futures", "inspect")


def child_import(module: str) -> dict:
    began = time.perf_counter()
    __import__(module)
    took = time.perf_counter() - began
    return {"ms": took * 1e3, "heavy": [m for m in HEAVY if m in sys.modules]}


def child_drop(tasks: int) -> dict:
    import bgagent

    # Output longer than the result keeps (100 characters here) goes to a log file: 201
    # bytes a task, a file each, as longer output (over 4 KiB) gets by default.
    bg = bgagent.BackgroundManager(output_limit=100)
    started = 0
    while started < tasks:
        batch = min(500, tasks - started)
        for _ in range(batch):
            bg.start("printf '%200s\\n' done")
        started += batch
        while bg.has_running_tasks():
            bg.wait_for_notifications(timeout=60)
    bg.drain_notifications()
    files = len(os.listdir(bg.log_dir))

    log_dir = bg.log_dir
    holder = [bg]
    del bg
    # The same wait with the GIL free, for the scheduler's own delays on a loaded machine.
    _, idle = stalls(lambda: time.sleep(0.5))
    took, stalled = stalls(holder.clear)  # drops the manager
    return {
        "files": files,
        "blocked_ms": stalled * 1e3,
        "idle_ms": idle * 1e3,
        "drop_ms": took * 1e3,
        "removed": not os.path.exists(log_dir),
    }


def stalls(action) -> tuple[float, float]:
    """Runs `action` while another thread steps once a millisecond: how long the action took,
    and the longest gap between two steps (how long the interpreter was held up)."""
    ready, stop = threading.Event(), threading.Event()
    gaps = [0.0]

    def step() -> None:
        last = time.perf_counter()
        ready.set()
        while not stop.is_set():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            time.sleep(0.001)

    other = threading.Thread(target=step)
    other.start()
    ready.wait()
    began = time.perf_counter()
    action()
    took = time.perf_counter() - began
    stop.set()
    other.join()
    return took, max(gaps)


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise KeyError("VmRSS")


def child_turns(turns: int, keep: str) -> dict:
    import bgagent

    reply = {
        "content": [{"type": "text", "text": "Done: " + "the work of this turn is done. " * 6}],
        "stop_reason": "end_turn",
    }
    options = {} if keep == "default" else {"keep_requests": int(keep)}
    try:
        client = bgagent.ScriptedClient([reply] * turns, **options)
    except TypeError:
        return {"unsupported": True}  # a build without keep_requests
    workdir = tempfile.mkdtemp(prefix="bgagent-bench-")
    agent = bgagent.Agent(model="bench", client=client, workdir=workdir, echo=False)
    rss_before = rss_kib()
    took = []
    for i in range(turns):
        began = time.perf_counter()
        agent.run(f"Turn {i}: look at the next file and say what it does, briefly.")
        took.append(time.perf_counter() - began)
    grown = rss_kib() - rss_before

    def window(turn: int) -> list[float]:
        return sorted(t * 1e6 for t in took[max(0, turn - 6) : turn + 5])

    agent.manager.shutdown()
    return {
        "turn10_us": statistics.median(window(10)),
        "last_us": statistics.median(window(turns)),
        "windows": [window(10), window(turns)],
        "messages": len(agent.messages),
        "grown_mib": grown / 1024,
    }


def run_child(python: str, *args: str) -> dict:
    # In an empty directory, so that s08 finds no .env and nothing here is imported.
    with tempfile.TemporaryDirectory(prefix="bgagent-bench-") as cwd:
        out = subprocess.run(
            [python, os.path.abspath(__file__), "--child", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def imports(python: str, module: str) -> tuple[float, list[str], list[float]]:
    runs = [run_child(python, "import", module) for _ in range(5)]
    times = sorted(r["ms"] for r in runs)
    return statistics.median(times), runs[0]["heavy"], times


def row(name: str, before: float | None, after: float, unit: str) -> str:
    if before is None:
        return f"| {name} | | {after:.1f} {unit} | |"
    ratio = before / after if after else float("inf")
    return f"| {name} | {before:.1f} {unit} | {after:.1f} {unit} | {ratio:.1f}x |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="an interpreter with the other build installed")
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "import":
            print(json.dumps(child_import(rest[0])))
        elif kind == "drop":
            print(json.dumps(child_drop(int(rest[0]))))
        else:
            print(json.dumps(child_turns(int(rest[0]), rest[1])))
        return

    builds = {"after": sys.executable}
    if args.before:
        builds["before"] = args.before
    figures: dict[str, dict] = {name: {} for name in builds}
    for name, python in builds.items():
        f = figures[name]
        for module in ("bgagent", "bgagent.s08"):
            f[module] = imports(python, module)
        f["drop"] = run_child(python, "drop", str(args.tasks))
        for keep in ("default", "0"):
            f[f"turns-{keep}"] = run_child(python, "turns", str(args.turns), keep)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print()
    print("| figure | before | after | before / after |")
    print("| --- | --- | --- | --- |")
    before, after = figures.get("before"), figures["after"]

    def pick(f: dict | None, *keys: str) -> float | None:
        value = f
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value  # type: ignore[return-value]

    for module in ("bgagent", "bgagent.s08"):
        b = before[module][0] if before else None
        print(row(f"`import {module}`, median of 5", b, after[module][0], "ms"))
    drop = after["drop"]
    print(
        row(
            f"drop a manager ({drop['files']} log files): longest stall of another thread",
            pick(before, "drop", "blocked_ms"),
            drop["blocked_ms"],
            "ms",
        )
    )
    print(
        row(
            "the same thread's longest gap while the GIL is free (scheduler noise)",
            pick(before, "drop", "idle_ms"),
            drop["idle_ms"],
            "ms",
        )
    )
    print(
        row(
            "drop a manager: time in `del` on the dropping thread",
            pick(before, "drop", "drop_ms"),
            drop["drop_ms"],
            "ms",
        )
    )
    turns = after["turns-default"]
    for key, label in (("turn10_us", "turn 10"), ("last_us", f"turn {args.turns}")):
        print(
            row(
                f"Agent + ScriptedClient, {label}",
                pick(before, "turns-default", key),
                turns[key],
                "µs",
            )
        )
    print(
        row(
            f"process growth over {args.turns} turns ({turns['messages']} messages)",
            pick(before, "turns-default", "grown_mib"),
            turns["grown_mib"],
            "MiB",
        )
    )
    zero = after["turns-0"]
    if not zero.get("unsupported"):
        print(row(f"the same, keep_requests=0: turn {args.turns}", None, zero["last_us"], "µs"))
        print(row("the same, keep_requests=0: process growth", None, zero["grown_mib"], "MiB"))
    print()
    for name, f in figures.items():
        print(f"{name}:")
        for module in ("bgagent", "bgagent.s08"):
            times = ", ".join(f"{t:.1f}" for t in f[module][2])
            print(f"- `import {module}`: {times} ms; loaded {f[module][1] or 'none'} of {HEAVY}")
        print(f"- the log directory was removed by the drop: {f['drop']['removed']}")
        for keep in ("default", "0"):
            t = f[f"turns-{keep}"]
            if not t.get("unsupported"):
                spread = " / ".join(f"{w[0]:.0f}-{w[-1]:.0f}" for w in t["windows"])
                print(
                    f"- turns, keep_requests={keep}: min-max around turn 10 / the last: {spread} µs"
                )


if __name__ == "__main__":
    main()
