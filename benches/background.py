"""bgagent.BackgroundManager beside a plain-Python peer with the same contract
(benches/python_peer.py), in one run. Prints a markdown table of ratios.

Run:  python benches/background.py [--quick]

Memory and thread figures come from a child process per measurement (peak RSS is per
process), started by this script with `--child`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from python_peer import PeerManager


def manager(impl: str):
    if impl == "ours":
        import bgagent

        return bgagent.BackgroundManager()
    return PeerManager()


def status(key: str) -> int:
    """A number from /proc/self/status (kB for sizes)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def collect(m, n: int) -> None:
    got = 0
    while got < n:
        got += len(m.wait_for_notifications(timeout=600))


def throughput(impl: str, n: int) -> float:
    """Tasks per second from the first start to the last notification."""
    m = manager(impl)
    began = time.perf_counter()
    for _ in range(n):
        m.start("true")
    collect(m, n)
    rate = n / (time.perf_counter() - began)
    m.shutdown()
    return rate


def raw_throughput(n: int) -> float:
    """The machine's limit: spawn `sh -c true` n times with no capture, then reap them all."""
    began = time.perf_counter()
    pids = [os.posix_spawn("/bin/sh", ["sh", "-c", "true"], os.environ) for _ in range(n)]
    for pid in pids:
        os.waitpid(pid, 0)
    return n / (time.perf_counter() - began)


def round_trips(impl: str, runs: int) -> list[float]:
    m = manager(impl)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        m.start("true")
        m.wait_for_notifications(timeout=60)
        times.append(time.perf_counter() - began)
    m.shutdown()
    return times


def raw_round_trips(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        os.waitpid(os.posix_spawn("/bin/sh", ["sh", "-c", "true"], os.environ), 0)
        times.append(time.perf_counter() - began)
    return times


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


# -- child-process measurements ------------------------------------------------------------


def child_big_output(impl: str, size: int) -> dict:
    m = manager(impl)
    began = time.perf_counter()
    m.start(f"yes | head -c {size}")
    collect(m, 1)
    return {"seconds": time.perf_counter() - began, "peak_kib": status("VmHWM:")}


def child_many_sleeps(impl: str, n: int) -> dict:
    m = manager(impl)
    peak_threads = [status("Threads:")]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak_threads.append(status("Threads:"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(n):
        m.start("sleep 2")
    collect(m, n)
    done.set()
    sampler.join()
    # The sampler is ours, not the manager's: leave it out of the count.
    return {"peak_threads": max(peak_threads) - 1, "peak_kib": status("VmHWM:")}


def with_marker(marker: str) -> list[int]:
    """Pids of the task shells (`sh -c sleep ...`) whose command line holds `marker`."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in line and line.startswith("sh -c sleep"):
            pids.append(int(pid))
    return pids


def owner_death(impl: str, n: int) -> int:
    """Task processes still running 5 s after their owner, holding n running tasks, is killed
    by SIGKILL (no atexit, no destructor)."""
    marker = f"bgbench{os.getpid()}{impl}"
    code = f"""
import sys, time
sys.path.insert(0, {str(HERE)!r})
from background import manager
m = manager({impl!r})
ids = [m.start("sh -c 'sleep 600; :' {marker}") for _ in range({n})]
# Ours reports a pid once the task runs (and its group is known to the supervisor).
while {impl!r} == "ours" and not all(m.info(i)["pid"] for i in ids):
    time.sleep(0.01)
print("ready", flush=True)
time.sleep(600)
"""
    # Its own session: whatever the peer's tasks leave in its group can be cleaned up below.
    owner = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert owner.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 60
    while len(with_marker(marker)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 5
    while with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = with_marker(marker)
    # Leave the machine as it was: the peer's tasks share the dead owner's group, ours each
    # lead their own.
    for group in {owner.pid, *survivors}:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    return len(survivors)


def in_child(scenario: str, impl: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", scenario, "--impl", impl, "--size", str(size)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure = {"big": child_big_output, "sleeps": child_many_sleeps}[args.child]
        print(json.dumps(measure(args.impl, args.size)))
        return

    import bgagent

    tasks, out_size, runs, sleeps = (
        (100, 64 << 20, 50, 200) if args.quick else (500, 1 << 30, 200, 1000)
    )
    rows = []

    best = {"ours": 0.0, "peer": 0.0, "raw": 0.0}
    for _ in range(3):  # interleaved, best of three: the machine is shared
        best["raw"] = max(best["raw"], raw_throughput(tasks))
        best["ours"] = max(best["ours"], throughput("ours", tasks))
        best["peer"] = max(best["peer"], throughput("peer", tasks))
    rows.append(
        (
            f"{tasks} x `true`, start to last notification",
            f"{best['ours']:.0f} tasks/s ({best['ours'] / best['raw']:.2f} of raw {best['raw']:.0f}/s)",
            f"{best['peer']:.0f} tasks/s",
            f"{best['ours'] / best['peer']:.2f}x peer",
            ">= 1.6x peer, >= 0.8 raw",
            best["ours"] / best["peer"] >= 1.6 and best["ours"] / best["raw"] >= 0.8,
        )
    )

    ours_rt, peer_rt, raw_rt = (
        round_trips("ours", runs),
        round_trips("peer", runs),
        raw_round_trips(runs),
    )
    p50 = {
        k: statistics.median(v) * 1e3
        for k, v in (("ours", ours_rt), ("peer", peer_rt), ("raw", raw_rt))
    }
    p99 = {
        k: pct(v, 0.99) * 1e3 for k, v in (("ours", ours_rt), ("peer", peer_rt), ("raw", raw_rt))
    }
    rows.append(
        (
            f"`true` run-to-notification, {runs} runs",
            f"p50 {p50['ours']:.2f} ms, p99 {p99['ours']:.2f} ms (raw p50 {p50['raw']:.2f} ms)",
            f"p50 {p50['peer']:.2f} ms, p99 {p99['peer']:.2f} ms",
            f"{p50['ours'] / p50['raw']:.2f}x raw p50, {p50['peer'] / p50['ours']:.2f}x faster than peer",
            "p50 <= 1.5x raw",
            p50["ours"] / p50["raw"] <= 1.5,
        )
    )

    big_ours, big_peer = in_child("big", "ours", out_size), in_child("big", "peer", out_size)
    rows.append(
        (
            f"one task printing {out_size >> 20} MiB: peak RSS",
            f"{big_ours['peak_kib'] / 1024:.1f} MiB ({big_ours['seconds']:.1f} s)",
            f"{big_peer['peak_kib'] / 1024:.1f} MiB ({big_peer['seconds']:.1f} s)",
            f"{big_peer['peak_kib'] / big_ours['peak_kib']:.1f}x less memory",
            "< 40 MiB",
            big_ours["peak_kib"] < 40 * 1024,
        )
    )

    many_ours, many_peer = in_child("sleeps", "ours", sleeps), in_child("sleeps", "peer", sleeps)
    rows.append(
        (
            f"{sleeps} concurrent `sleep 2`: threads, peak RSS",
            f"{many_ours['peak_threads']} threads, {many_ours['peak_kib'] / 1024:.1f} MiB",
            f"{many_peer['peak_threads']} threads, {many_peer['peak_kib'] / 1024:.1f} MiB",
            f"{many_peer['peak_threads'] / many_ours['peak_threads']:.0f}x fewer threads",
            "<= 64 threads, < 60 MiB",
            many_ours["peak_threads"] <= 64 and many_ours["peak_kib"] < 60 * 1024,
        )
    )

    owned = 50
    left_ours, left_peer = owner_death("ours", owned), owner_death("peer", owned)
    rows.append(
        (
            f"owner of {owned} running tasks killed by SIGKILL: survivors after 5 s",
            f"{left_ours}",
            f"{left_peer}",
            "",
            "0",
            left_ours == 0,
        )
    )

    print(f"bgagent {bgagent.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print()
    print("| scenario | bgagent | python peer | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, ours, peer, ratio, target, met in rows:
        print(f"| {name} | {ours} | {peer} | {ratio} | {target} | {'yes' if met else 'NO'} |")


if __name__ == "__main__":
    main()
