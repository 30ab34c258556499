"""What a manager keeps over a long session with `keep_finished`: N finished tasks run in
batches and drained, as an agent drains them, under production's `keep_finished=1000`. Prints
the owner's RSS growth past a warmed-up manager, the records kept, and the files in the log
directory (the most seen after any batch, and at the end). Each row runs in a fresh process.

Run:  python benches/retention.py [--tasks N] [--keep K]

Rows: `echo $i` (its output stays in memory: no file) and a 5,000-byte output (a log file
each, removed with the record). Aim: RSS grows by under 20 MiB over 100,000 `echo $i` tasks
and the directory never holds more than K files.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

COMMANDS = {
    "echo $i": "echo {i}",
    "5,000-byte output": "head -c 5000 /dev/zero | tr '\\0' x; echo {i}",
}
BATCH = 1000


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def row(command: str, n: int, keep: int) -> dict:
    import bgagent

    bg = bgagent.BackgroundManager(keep_finished=keep, max_running=None)
    counter = iter(range(10**9))

    def batch(k: int) -> None:
        for _ in range(k):
            bg.start(command.format(i=next(counter)))
        while bg.has_running_tasks():
            bg.wait_for_notifications(timeout=600)
        bg.drain_notifications()

    # Warm-up past the limit: the runtime, the supervisor, the allocator's arenas and a full
    # table of kept records, counted out.
    for _ in range(max(1, (keep + BATCH - 1) // BATCH) + 1):
        batch(BATCH)
    gc.collect()
    rss0 = rss_kib()
    most_files = 0
    began = time.perf_counter()
    done = 0
    while done < n:
        k = min(BATCH, n - done)
        batch(k)
        done += k
        most_files = max(most_files, len(os.listdir(bg.log_dir)))
    elapsed = time.perf_counter() - began
    gc.collect()
    result = {
        "tasks": n,
        "rss_growth_mib": (rss_kib() - rss0) / 1024,
        "kept": len(bg.tasks),
        "most_files": most_files,
        "files_at_end": len(os.listdir(bg.log_dir)),
        "rate": n / elapsed,
    }
    bg.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--keep", type=int, default=1000)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row is not None:
        print(json.dumps(row(COMMANDS[args.row], args.tasks, args.keep)))
        return
    print(f"{args.tasks:,} finished tasks, keep_finished={args.keep:,}, drained per batch\n")
    print("| command | RSS growth | records kept | most files | files at end | tasks/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in COMMANDS:
        argv = [sys.executable, __file__, "--row", name, "--tasks", str(args.tasks)]
        out = subprocess.run(argv + ["--keep", str(args.keep)], check=True, capture_output=True)
        r = json.loads(out.stdout)
        print(
            f"| {name} | {r['rss_growth_mib']:.1f} MiB | {r['kept']:,} | {r['most_files']:,} "
            f"| {r['files_at_end']:,} | {r['rate']:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
