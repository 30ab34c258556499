"""The cost of drawing a trace (`bgagent.Timeline(...).html()`, what `bgagent view` does) for N
and for 4N background tasks in one run, each task polled by check_background: the page is
built in time linear in the trace when the 4N run takes about 4 times as long (16 would be
quadratic).

Run:  python benches/view.py [--n 500] [--repeat 3]

The trace is generated here, as a long production run looks: one model call starts each task,
which ends, is seen by a check_background call (whose answer lists the tasks so far, cut to
2,000 characters as the trace cuts every text), then drained and injected.
"""

from __future__ import annotations

import argparse
import json
import time

import bgagent

TEXT_LIMIT = 2000


def synthetic_trace(tasks: int) -> list[str]:
    events: list[dict] = [
        {"event": "header", "schema": "bgagent-trace", "version": 1, "mode": "production"},
        {"event": "user_input", "turn": 1, "text": "build every part"},
    ]
    # check_background lists every task in start order; the trace keeps its first characters.
    listing = ""
    for i in range(tasks):
        tid, call = f"{i:08x}", 2 * i + 1
        command = f"make part{i}"
        if len(listing) < TEXT_LIMIT:
            listing = (listing + f"\n{tid}: [completed] {command}").lstrip("\n")[:TEXT_LIMIT]
        events += [
            {"event": "model_call", "turn": 1, "call": call},
            {"event": "model_reply", "turn": 1, "call": call, "stop_reason": "tool_use"},
            {"event": "tool_call", "turn": 1, "call": call, "name": "background_run"},
            {"event": "task_queued", "task_id": tid, "command": command},
            {"event": "task_started", "task_id": tid, "pid": 1000 + i},
            {
                "event": "tool_result",
                "turn": 1,
                "call": call,
                "name": "background_run",
                "task_id": tid,
                "output": f"Background task {tid} started: {command}",
            },
            {"event": "task_progress", "task_id": tid, "stdout_bytes": 100, "stderr_bytes": 0},
            {"event": "task_finished", "task_id": tid, "status": "completed", "exit_code": 0},
            {"event": "model_call", "turn": 1, "call": call + 1},
            {"event": "model_reply", "turn": 1, "call": call + 1, "stop_reason": "tool_use"},
            {"event": "tool_call", "turn": 1, "call": call + 1, "name": "check_background"},
            {
                "event": "tool_result",
                "turn": 1,
                "call": call + 1,
                "name": "check_background",
                "output": listing,
            },
            {"event": "drain", "turn": 1, "call": call + 2, "task_ids": [tid]},
            {"event": "inject", "turn": 1, "call": call + 2, "task_ids": [tid], "text": "..."},
        ]
    events.append({"event": "turn_end", "turn": 1, "outcome": "done"})
    return [json.dumps({"t": round(i * 0.001, 6), **e}) for i, e in enumerate(events)]


def seconds_to_draw(lines: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        bgagent.Timeline(lines).html()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="tasks (and polls) in the small run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the best counts")
    args = parser.parse_args()
    times = []
    for tasks in (args.n, 4 * args.n):
        lines = synthetic_trace(tasks)
        size = sum(len(line) + 1 for line in lines) / 1e6
        seconds = seconds_to_draw(lines, args.repeat)
        times.append(seconds)
        print(f"{tasks:>7} tasks and polls, {len(lines):>7} lines, {size:6.1f} MB: {seconds:.3f} s")
    print(f"4N / N: {times[1] / times[0]:.1f} (linear: about 4; quadratic: about 16)")


if __name__ == "__main__":
    main()
