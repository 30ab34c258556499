"""Task control: the cap on running tasks (`max_running`) and reading a running task's output
(`read(..., timeout=...)`), in one run. Prints a markdown table, the command that made it first.

Run:  python benches/task_control.py [--quick] [--pueue BIN_DIR]

Rows:
- N `echo` tasks with `max_running=4` against the same with no cap: tasks/s from the first
  start to the last notification (best of three interleaved rounds; the machine is shared).
  Aim: capped >= 0.8 of uncapped.
- With the cap, the time from a slot freeing (a `finished` event) to the next queued task
  starting (its `started` event), p50 and p99, from the task events' times. The Python events
  carry no time, so each manager writes a trace (`trace=FILE`), whose `t` is the event's own
  time; both managers of a round write one, so both pay for it.
- The same N `echo` on pueue (a group with `parallel 4`, its own daemon in a temporary
  directory): tasks/s from `pueue start` to the last task's end by pueue's own timestamps
  (`pueue wait` polls every 2 s, so its return is also given), the tasks added while the group
  was paused; the time the N `pueue add` calls took is given beside it. pueue's binaries are
  looked for in `--pueue DIR`, then on PATH, then in /work/pueue-build/bin.
- A line printed by a running task reaching a waiting `read()`, p50 and p99 over L lines,
  beside the same line reaching a thread blocked in `readline()` on a plain pipe
  (`subprocess.Popen(stdout=PIPE)`). The task is one shell loop that echoes each line the
  benchmark writes to a FIFO; the clock runs from the write to the reader having the line.
  The lines come from a few tasks in turn; each task's first line, read by a reader that began
  waiting as the task started, is shown in a row of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ECHO = "echo hi"
CAP = 4
# Reads the FIFO on fd 3 (opened once) and prints each line it gets, at once.
ECHO_LOOP = 'exec 3<"$1"; while IFS= read -r line <&3; do echo "$line"; done'


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def dist_ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1e3:.2f} ms, p99 {pct(values, 0.99) * 1e3:.2f} ms"


# -- the cap ---------------------------------------------------------------------------------


def trace_lines(path: Path) -> list[dict]:
    lines = []
    with open(path) as f:
        for raw in f:
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass  # a line still being written
    return lines


def finished_trace(path: Path, n: int) -> list[dict]:
    """The trace once it holds `n` finished tasks (its writer is a thread of its own, which
    may lag the notifications)."""
    deadline = time.monotonic() + 120
    while True:
        lines = trace_lines(path)
        if sum(line["event"] == "task_finished" for line in lines) >= n:
            return lines
        if time.monotonic() > deadline:
            raise RuntimeError(f"the trace {path} never showed {n} finished tasks")
        time.sleep(0.05)


def slot_gaps(lines: list[dict]) -> list[float]:
    """For each task that waited for a slot: the time from the slot it took freeing to its
    start. Slots are handed out in the order they free (the line is first come, first
    started), so the k-th start takes the oldest slot not yet taken; the first `CAP` slots
    were free from the beginning and count for nothing."""
    free: list[float | None] = [None] * CAP
    gaps = []
    for line in lines:
        if line["event"] == "task_finished":
            free.append(line["t"])
        elif line["event"] == "task_started":
            freed = free.pop(0)
            if line.get("waited") is not None and freed is not None:
                gaps.append(line["t"] - freed)
    return gaps


def echo_round(cap: int | None, n: int, trace: Path) -> float:
    """Tasks per second from the first start to the last notification."""
    import bgagent

    m = bgagent.BackgroundManager(max_running=cap, trace=trace)
    m.start("true")  # not counted: the first task may wait for the supervisor to start
    m.wait_for_notifications(timeout=60)
    began = time.perf_counter()
    for _ in range(n):
        m.start(ECHO)
    got = 0
    while got < n:
        got += len(m.wait_for_notifications(timeout=600))
    rate = n / (time.perf_counter() - began)
    m.shutdown()
    return rate


def cap_rows(n: int, rounds: int, tmp: Path) -> list[tuple]:
    best = {"capped": 0.0, "uncapped": 0.0}
    gaps: list[float] = []
    for r in range(rounds):  # interleaved: both meet the same load from the rest of the machine
        for name, cap in (("capped", CAP), ("uncapped", None)):
            trace = tmp / f"{name}-{r}.jsonl"
            best[name] = max(best[name], echo_round(cap, n, trace))
            if cap is not None:
                gaps += slot_gaps(finished_trace(trace, n + 1))
    ratio = best["capped"] / best["uncapped"]
    return [
        (
            (
                f"{n} x `{ECHO}`, start to last notification (best of {rounds}):"
                f" `max_running={CAP}` against no cap"
            ),
            f"{best['capped']:.0f} tasks/s",
            f"{best['uncapped']:.0f} tasks/s",
            f"{ratio:.2f} of uncapped",
            ">= 0.8",
            ratio >= 0.8,
        ),
        (
            (
                f"with `max_running={CAP}`: slot freed (`finished`) to next queued task"
                f" `started`, {len(gaps)} starts over {rounds} rounds"
            ),
            dist_ms(gaps) + f", max {max(gaps) * 1e3:.2f} ms",
            "",
            "",
            "",
            None,
        ),
    ]


# -- pueue -----------------------------------------------------------------------------------


def find_pueue(given: str | None) -> Path | None:
    """The directory holding both `pueue` and `pueued`."""
    candidates = [Path(given)] if given else []
    on_path = shutil.which("pueue")
    if on_path:
        candidates.append(Path(on_path).parent)
    candidates.append(Path("/work/pueue-build/bin"))
    for d in candidates:
        if all(os.access(d / exe, os.X_OK) for exe in ("pueue", "pueued")):
            return d
    return None


class Pueue:
    """A pueue daemon of its own in `home`: its config, state, logs and socket all there."""

    def __init__(self, bins: Path, home: Path) -> None:
        self.bins, self.config = bins, home / "pueue.yml"
        self.config.write_text(
            "shared:\n"
            f"  pueue_directory: {home / 'data'}\n"
            f"  runtime_directory: {home / 'run'}\n"
            "  use_unix_socket: true\n"
            f"  unix_socket_path: {home / 'run' / 'pueue.socket'}\n"
            "daemon:\n"
            "  default_parallel_tasks: 1\n"
        )
        (home / "data").mkdir()
        (home / "run").mkdir()
        self.log = open(home / "pueued.log", "w")  # noqa: SIM115 - closed in close()
        self.daemon = subprocess.Popen(
            [str(bins / "pueued"), "-c", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while self.client("status", check=False).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pueued did not come up (see {home / 'pueued.log'})")
            time.sleep(0.05)

    def client(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bins / "pueue"), "-c", str(self.config), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=900)

    def close(self) -> None:
        self.client("shutdown", check=False)
        try:
            self.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
        self.log.close()


def stamp(iso: str) -> float:
    """A pueue time (`2026-01-02T03:04:05.123456789Z`) as Unix seconds."""
    whole, _, frac = iso.rstrip("Z").partition(".")
    at = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc).timestamp()
    return at + float("0." + (frac or "0"))


def pueue_round(bins: Path, n: int, tmp: Path) -> tuple[float, float, float]:
    """(tasks/s from `pueue start` to the last task's end by pueue's own times, the same to
    `pueue wait` returning, seconds the n adds took)."""
    home = Path(tempfile.mkdtemp(prefix="pueue-", dir=tmp))
    daemon = Pueue(bins, home)
    try:
        daemon.client("group", "add", "bench", "--parallel", str(CAP))
        daemon.client("pause", "--group", "bench")
        began = time.perf_counter()
        for _ in range(n):
            daemon.client("add", "--group", "bench", "--", *shlex.split(ECHO))
        adding = time.perf_counter() - began
        began, wall = time.perf_counter(), time.time()
        daemon.client("start", "--group", "bench")
        daemon.client("wait", "--quiet", "--group", "bench")
        waited = time.perf_counter() - began
        state = json.loads(daemon.client("status", "--json").stdout)
        done = [
            t["status"]["Done"]
            for t in state["tasks"].values()
            if t["group"] == "bench" and "Done" in t["status"]
        ]
        if len(done) != n or any(d["result"] != "Success" for d in done):
            raise RuntimeError(f"pueue: {len(done)} of {n} tasks done, not all succeeded")
        last = max(stamp(d["end"]) for d in done)
        return n / (last - wall), n / waited, adding
    finally:
        daemon.close()


def pueue_row(given: str | None, n: int, rounds: int, tmp: Path, ours: float) -> tuple:
    name = f"pueue, {n} x `{ECHO}` in a group with `parallel {CAP}` (best of {rounds})"
    bins = find_pueue(given)
    if bins is None:
        why = "not run: no `pueue`/`pueued` in --pueue, on PATH or in /work/pueue-build/bin"
        return (name, "", why, "", "", None)
    version = subprocess.run(
        [str(bins / "pueued"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        runs = [pueue_round(bins, n, tmp) for _ in range(rounds)]
    except (OSError, RuntimeError, subprocess.SubprocessError, ValueError, KeyError) as e:
        return (name, "", f"{version}: could not run: {e}", "", "", None)
    rate = max(r[0] for r in runs)
    to_wait = max(r[1] for r in runs)
    adding = min(r[2] for r in runs)
    return (
        name,
        f"{ours:.0f} tasks/s (`max_running={CAP}`, above)",
        (
            f"{version}: {rate:.0f} tasks/s to the last task's end ({to_wait:.0f}/s to `pueue"
            f" wait` returning; added while the group was paused, the {n} `pueue add` took"
            f" {adding:.1f} s)"
        ),
        f"{ours / rate:.1f}x pueue",
        "",
        None,
    )


# -- a line reaching a reader ----------------------------------------------------------------


def line_latencies(n: int, fifo: Path, reader: str) -> list[float]:
    """Seconds from writing line i to the FIFO to the reader holding it, one line at a time;
    each write waits until the reader has the line before and has had a moment to block
    again (so that the reader is waiting when the line comes)."""
    import bgagent

    os.mkfifo(fifo)
    got: list[float] = []
    have = threading.Semaphore(0)
    failure: list[BaseException] = []

    if reader == "read":
        m = bgagent.BackgroundManager(max_running=None)
        task = m.start(f"sh -c {shlex.quote(ECHO_LOOP)} sh {shlex.quote(str(fifo))}")

        def pull() -> None:
            after, pending = 0, ""
            try:
                while len(got) < n:
                    r = m.read(task, after=after, timeout=60)
                    now = time.perf_counter()
                    after, pending = r["next"], pending + r["text"]
                    while "\n" in pending:
                        pending = pending.split("\n", 1)[1]
                        got.append(now)
                        have.release()
                    if not r["running"] and len(got) < n:
                        raise RuntimeError("the task ended early")
            except Exception as e:  # noqa: BLE001 - handed to the main thread
                failure.append(e)
                have.release()

    else:
        proc = subprocess.Popen(["sh", "-c", ECHO_LOOP, "sh", str(fifo)], stdout=subprocess.PIPE)

        def pull() -> None:
            try:
                while len(got) < n:
                    if not proc.stdout.readline():
                        raise RuntimeError("the process ended early")
                    got.append(time.perf_counter())
                    have.release()
            except Exception as e:  # noqa: BLE001 - handed to the main thread
                failure.append(e)
                have.release()

    thread = threading.Thread(target=pull, daemon=True)
    thread.start()
    times = []
    with open(fifo, "w") as w:  # opens once the task has its end open
        for i in range(n):
            time.sleep(0.005)  # the reader blocks again (pacing, not synchronisation)
            began = time.perf_counter()
            w.write(f"{i}\n")
            w.flush()
            have.acquire(timeout=60)
            if failure:
                raise RuntimeError(f"{reader}: {failure[0]}")
            times.append(got[i] - began)
    thread.join(timeout=60)
    if reader == "read":
        m.shutdown()
    else:
        proc.wait(timeout=60)
    return times


def line_row(n: int, blocks: int, tmp: Path) -> list[tuple]:
    """Each block is a fresh task whose reader starts waiting as the task starts: its first
    line is shown apart (the read may begin before the task has its log)."""
    steady: dict[str, list[float]] = {"read": [], "pipe": []}
    first: dict[str, list[float]] = {"read": [], "pipe": []}
    for b in range(blocks):  # alternating blocks: both meet the same load
        for reader in steady:
            got = line_latencies(n // blocks, tmp / f"fifo-{reader}-{b}", reader)
            first[reader].append(got[0])
            steady[reader] += got[1:]

    def ratio(p: float) -> str:
        return f"{pct(steady['read'], p) / pct(steady['pipe'], p):.1f}x"

    def worst(v: list[float]) -> str:
        return f"max {max(v) * 1e3:.2f} ms"

    return [
        (
            (
                f"a running task's line reaching a waiting reader, {len(steady['read'])} lines"
                f" ({blocks} tasks, each one's first line left out)"
            ),
            f"`read(timeout=60)`: {dist_ms(steady['read'])}",
            f"pipe `readline()`: {dist_ms(steady['pipe'])}",
            f"p50 {ratio(0.5)} pipe, p99 {ratio(0.99)} pipe",
            "",
            None,
        ),
        (
            f"the first line of each of those {blocks} tasks (the reader waiting since the start)",
            worst(first["read"]),
            worst(first["pipe"]),
            "",
            "",
            None,
        ),
    ]


# -- report ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--pueue", help="the directory holding `pueue` and `pueued`")
    args = parser.parse_args()

    import bgagent

    tasks, rounds, lines, blocks = (100, 1, 40, 2) if args.quick else (500, 3, 200, 4)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bgbench-") as scratch:
        tmp = Path(scratch)
        rows += cap_rows(tasks, rounds, tmp)
        capped = float(rows[0][1].split()[0])
        rows.append(pueue_row(args.pueue, tasks, rounds, tmp, capped))
        rows += line_row(lines, blocks, tmp)

    print("$ " + shlex.join([sys.executable, *sys.argv]))
    print()
    print(f"bgagent {bgagent.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print()
    print("| scenario | bgagent | other | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, ours, other, ratio, target, met in rows:
        verdict = "" if met is None else ("yes" if met else "NO")
        print(f"| {name} | {ours} | {other} | {ratio} | {target} | {verdict} |")


if __name__ == "__main__":
    main()
