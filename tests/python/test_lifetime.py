"""Nothing outlives its owner: a Python process that dies by a signal leaves no task behind."""

import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import new_marker, processes_with, wait_until


def owner(code: str) -> subprocess.Popen:
    """A child Python running `code`; its stdout is a pipe the test reads."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_an_owner_killed_by_a_signal_leaves_no_task_behind(sig):
    marker = new_marker()
    proc = owner(f"""
        import time, bgagent
        bg = bgagent.BackgroundManager()
        ids = [bg.start("sh -c 'sleep 600; :' {marker}" + str(i)) for i in range(3)]
        # A task with a pid is running, and its group is known to the supervisor.
        while not all(bg.info(i)["pid"] for i in ids):
            time.sleep(0.01)
        print("started", flush=True)
        time.sleep(600)
    """)
    assert proc.stdout.readline() == "started\n"
    shells = lambda: [p for p in processes_with(marker) if p.startswith("sh ")]
    try:
        wait_until(lambda: len(shells()) == 6, "the 3 tasks run")
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig
    finally:
        proc.kill()
        proc.wait()
    wait_until(lambda: not processes_with(marker), "the supervisor stops every task", timeout=60)
