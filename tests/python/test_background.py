"""bgagent.BackgroundManager from Python: the lesson's contract, plus what production needs."""

import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import bgagent
import pytest
from helpers import new_marker, processes_with, sigint_once_blocked_in, wait_until


@pytest.fixture
def bg():
    with bgagent.BackgroundManager(grace=0.3) as manager:
        yield manager


def test_run_returns_the_lessons_line_and_does_not_block(bg):
    command = "sleep 5; echo " + "x" * 100
    line = bg.run(command)
    match = re.fullmatch(r"Background task ([0-9a-f]{8}) started: (.*)", line)
    assert match, line
    assert match.group(2) == command[:80]
    task_id = match.group(1)
    assert bg.check(task_id) == f"[running] {command[:60]}\n(running)"
    assert bg.tasks[task_id] == {"status": "running", "result": None, "command": command}
    assert bg.has_running_tasks()


def test_check_formats(bg):
    assert bg.check() == "No background tasks."
    assert bg.check("deadbeef") == "Error: Unknown task deadbeef"
    first = bg.start("echo one")
    second = bg.start("echo two >&2")
    bg.wait(first)
    bg.wait(second)
    assert bg.check() == f"{first}: [completed] echo one\n{second}: [completed] echo two >&2"
    assert bg.check(second) == "[completed] echo two >&2\ntwo"


def test_notifications_are_dicts_in_completion_order(tmp_path):
    # The slow task, started first, ends only once the fast one has ended and is released.
    slow_command = "until [ -e release ]; do sleep 0.01; done; echo slow"
    with bgagent.BackgroundManager(tmp_path, grace=0.3) as bg:
        slow = bg.start(slow_command)
        fast = bg.start("echo fast; exit 4")
        assert bg.wait(fast, timeout=30).startswith("[completed]")
        (tmp_path / "release").touch()
        assert bg.wait(slow, timeout=30).startswith("[completed]")
        got = bg.wait_for_notifications(timeout=30)
        assert bg.drain_notifications() == []
    # Production's details (their own test is in test_output.py): the order is the point here.
    for note in got:
        assert note.pop("duration") >= 0.0 and note.pop("tail") == ""
        assert note.pop("log_path") is None  # outputs this small stay in memory
    assert got == [
        {
            "task_id": fast,
            "status": "completed",
            "command": "echo fast; exit 4",
            "result": "fast",
            "exit_code": 4,
        },
        {
            "task_id": slow,
            "status": "completed",
            "command": slow_command,
            "result": "slow",
            "exit_code": 0,
        },
    ]


def test_result_and_preview_limits_count_characters():
    with bgagent.BackgroundManager(output_limit=7, preview_limit=3) as bg:
        task_id = bg.start("printf '  日本語のテキストです  '")
        bg.wait(task_id)
        assert bg.tasks[task_id]["result"] == "日本語のテキス"
        assert bg.drain_notifications()[0]["result"] == "日本語"


def test_timeout_result_and_status():
    with bgagent.BackgroundManager(timeout=0.5, grace=0.3) as bg:
        task_id = bg.start("sleep 30")
        assert bg.wait(task_id, timeout=30) == "[timeout] sleep 30\nError: Timeout (0.5s)"
        note = bg.drain_notifications()[0]
        assert (note["status"], note["exit_code"]) == ("timeout", None)


def test_kill_stops_the_group(bg):
    marker = new_marker()
    task_id = bg.start(f"trap '' TERM; sh -c 'sleep 600; :' {marker}; :")
    wait_until(lambda: len(processes_with(marker)) == 2, "the shell and its child run")
    assert bg.kill(task_id).endswith("\nError: Killed")
    assert bg.tasks[task_id]["status"] == "killed"
    assert processes_with(marker) == []
    assert bg.kill("nope") == "Error: Unknown task nope"


def test_invalid_utf8_output_is_decoded_lossily(bg):
    task_id = bg.start(r"printf 'a\377b\303'")
    bg.wait(task_id)
    assert bg.tasks[task_id]["result"] == "a\ufffdb\ufffd"


def test_line_breaks_are_read_like_python_text_mode(bg):
    task_id = bg.start(r"printf 'a\r\nb\rc\r'; printf 'd\r\n' >&2")
    bg.wait(task_id)
    assert bg.tasks[task_id]["result"] == "a\nb\nc\nd"


def test_nan_timeouts_are_refused(bg):
    with pytest.raises(ValueError, match="NaN"):
        bg.wait_for_notifications(float("nan"))
    assert bg.wait_for_notifications(float("inf")) == []


def test_info_knows_the_log_file(tmp_path):
    with bgagent.BackgroundManager(log_dir=tmp_path, log_limit=1000) as bg:
        task_id = bg.start("seq 1 1000; echo oops >&2")
        bg.wait(task_id)
        info = bg.info(task_id)
    assert info["stdout_bytes"] == sum(len(f"{i}\n") for i in range(1, 1001))
    assert info["stderr_bytes"] == 5
    # Every byte is counted; past the limit the log keeps the newest (at least half of it),
    # the older part in `.log.1`.
    assert info["log_bytes"] == info["stdout_bytes"] + info["stderr_bytes"]
    assert info["log_cut"] is True
    assert info["log_path"] == str(tmp_path / f"{task_id}.log")
    kept = (tmp_path / f"{task_id}.log.1").read_text() + (tmp_path / f"{task_id}.log").read_text()
    assert 500 <= len(kept) <= 1000 and "1000\n" in kept
    with pytest.raises(KeyError, match="Unknown task nope"):
        bg.info("nope")


def test_a_short_output_gets_no_log_file_and_info_says_so(tmp_path):
    with bgagent.BackgroundManager(log_dir=tmp_path) as bg:
        short = bg.start("echo " + "x" * 99)  # 100 bytes: the result shows them all
        long = bg.start("head -c 5000 /dev/zero | tr '\\0' y")
        bg.wait(short)
        bg.wait(long)
        short_info, long_info = bg.info(short), bg.info(long)
    assert short_info["result"] == "x" * 99
    assert short_info["log_path"] is None and short_info["log_bytes"] == 100
    assert long_info["log_path"] == str(tmp_path / f"{long}.log")
    assert long_info["log_bytes"] == 5000
    assert [p.name for p in tmp_path.iterdir()] == [f"{long}.log"]
    assert (tmp_path / f"{long}.log").read_text() == "y" * 5000


def test_wrong_types_and_values_are_refused(tmp_path):
    bg = bgagent.BackgroundManager()
    with pytest.raises(TypeError, match="command must be a str, not int"):
        bg.run(123)
    assert bg.tasks == {}  # nothing started, nothing recorded
    # check() looks the id up in `tasks`, as the lesson's does, whatever its type.
    assert bg.check(5) == "Error: Unknown task 5"
    with pytest.raises(TypeError, match="unhashable"):
        bg.check(["x"])
    with pytest.raises(ValueError, match="no-such-dir"):
        bgagent.BackgroundManager(tmp_path / "no-such-dir")
    with pytest.raises(ValueError, match="timeout"):
        bgagent.BackgroundManager(timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        bgagent.BackgroundManager(timeout=-1.5)
    with pytest.raises(TypeError):
        bgagent.BackgroundManager(timeout="soon")
    with pytest.raises(ValueError, match="log_dir must name a directory"):
        bgagent.BackgroundManager(log_dir="")


def test_commands_run_in_the_given_workdir(tmp_path):
    with bgagent.BackgroundManager(tmp_path) as bg:
        task_id = bg.start("pwd")
        bg.wait(task_id)
        assert bg.tasks[task_id]["result"] == str(tmp_path.resolve())
        assert bg.workdir == tmp_path.resolve()


def test_wait_for_notifications_returns_when_nothing_runs(bg):
    assert bg.wait_for_notifications() == []
    bg.start("sleep 30")
    assert bg.wait_for_notifications(timeout=0.1) == []


def test_threads_share_a_manager_without_loss_or_duplicates(bg):
    started, received = [], []
    lock = threading.Lock()

    def worker(n):
        for i in range(50):
            task_id = bg.start(f"echo {n}-{i}")
            with lock:
                started.append(task_id)
        while True:
            batch = bg.wait_for_notifications(timeout=30)
            if not batch:
                return
            with lock:
                received.extend(batch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    received += bg.drain_notifications()
    assert sorted(n["task_id"] for n in received) == sorted(started)
    assert len(received) == 200


def test_ctrl_c_interrupts_a_wait_promptly(bg, sigint_raises):
    bg.start("sleep 30")
    sender = sigint_once_blocked_in("bg.wait_for_notifications()")
    with pytest.raises(KeyboardInterrupt):
        bg.wait_for_notifications()
    sender.join()
    # The task runs for 30 s: the wait ending while it still runs means the interrupt was seen.
    assert bg.has_running_tasks()


def run_script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("holder", ["module global", "daemon thread"])
def test_interpreter_exit_leaves_no_process_behind(holder):
    # A manager held by a daemon thread is never freed at exit: only the atexit hook stops it.
    marker = new_marker()
    proc = run_script(f"""
        import os, threading, time, bgagent
        started = threading.Event()
        def running():
            # The task's shell and its two children (this script's own command line has the
            # marker too).
            count = 0
            for pid in os.listdir("/proc"):
                try:
                    with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                        line = f.read()
                except OSError:
                    continue
                if pid != str(os.getpid()) and b"{marker}" in line:
                    count += 1
            return count >= 3
        def start():
            bg = bgagent.BackgroundManager(grace=0.5)
            bg.start("trap '' TERM; sh -c 'sleep 600; :' {marker} & sh -c 'sleep 600; :' {marker}; :")
            print(bg.log_dir, flush=True)
            deadline = time.monotonic() + 60
            while not running():
                if time.monotonic() > deadline:
                    raise SystemExit("the task's processes did not start within 60 s")
                time.sleep(0.01)
            started.set()
            return bg
        def hold():
            bg = start()
            time.sleep(600)
        if {holder!r} == "module global":
            bg = start()
        else:
            threading.Thread(target=hold, daemon=True).start()
        if not started.wait(90):
            raise SystemExit("the manager's thread did not start the task within 90 s")
    """)
    assert proc.returncode == 0, proc.stderr
    log_dir = Path(proc.stdout.strip())
    assert log_dir.name.startswith("bgagent-")
    assert not log_dir.exists(), "the temporary log directory is removed at exit"
    assert processes_with(marker) == []


def test_memory_stays_bounded_for_huge_output(tmp_path):
    size = 256 * 1024 * 1024
    proc = run_script(f"""
        import bgagent
        def rss_kib(key):
            for line in open("/proc/self/status"):
                if line.startswith(key):
                    return int(line.split()[1])
        bg = bgagent.BackgroundManager(log_dir={str(tmp_path)!r})
        bg.wait(bg.start("echo warm-up"))
        before = rss_kib("VmRSS:")
        task_id = bg.start("yes | head -c {size}")
        bg.wait(task_id, timeout=500)
        info = bg.info(task_id)
        print(rss_kib("VmHWM:") - before, info["stdout_bytes"], info["log_bytes"],
              info["log_cut"], len(info["result"]), info["status"])
    """)
    assert proc.returncode == 0, proc.stderr
    growth_kib, out_bytes, log_bytes, cut, result_len, status = proc.stdout.split()
    assert status == "completed"
    assert int(out_bytes) == size
    assert int(log_bytes) == size and cut == "True"
    assert int(result_len) == 50000
    assert int(growth_kib) < 8 * 1024, f"grew by {growth_kib} KiB"


def test_the_default_log_dir_goes_away_with_the_manager():
    bg = bgagent.BackgroundManager()
    bg.wait(bg.start("yes logged | head -n 1000"))  # more than stays in memory: a file
    log_dir = bg.log_dir
    assert (log_dir / f"{bg.tasks.popitem()[0]}.log").read_text() == "logged\n" * 1000
    del bg
    wait_until(lambda: not log_dir.exists(), f"{log_dir} is removed")


def test_other_threads_run_while_a_dropped_manager_removes_its_log_dir():
    bg = bgagent.BackgroundManager()
    log_dir = bg.log_dir
    (log_dir / "0.log").touch()
    for i in range(1, 20_000):
        os.link(log_dir / "0.log", log_dir / f"{i}.log")  # far quicker to make than files
    # The removal reads the directory in this order: these go first, the directory last.
    first = [log_dir / name for name in os.listdir(log_dir)[:10]]
    owner = [bg]
    del bg
    dropped = threading.Event()

    def drop():
        owner.clear()  # the last reference: the manager is dropped here
        dropped.set()

    dropper = threading.Thread(target=drop)
    seen_midway = False
    dropper.start()
    # This thread keeps running during the removal only if the GIL is released meanwhile:
    # it then sees files gone while the directory is still there.
    while not dropped.is_set():
        if log_dir.exists() and not all(f.exists() for f in first):
            seen_midway = True
    dropper.join()
    assert not log_dir.exists(), "the log directory is removed before the drop returns"
    assert seen_midway, "no other thread ran while the log directory was being removed"


def test_a_temporary_log_directory_that_cannot_be_made_fails_the_task_that_needs_it(tmp_path):
    # The directory is made with the first task, so that task is the one that says why.
    missing = tmp_path / "missing"
    code = """
        import bgagent
        bg = bgagent.BackgroundManager()
        print(bg.wait(bg.start("echo never"), timeout=60))
        print(bg.log_dir)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "TMPDIR": str(missing)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    status, reason, log_dir = proc.stdout.splitlines()
    assert status == "[error] echo never"
    assert reason.startswith(f"Error: cannot create a log directory in {missing}: ")
    assert log_dir == "None"


def test_each_task_gets_the_environment_as_it_is_when_it_starts(bg, monkeypatch):
    # Tasks are started by the supervisor, a process of its own: the environment goes with
    # each start (os.environ may change after the supervisor began).
    results = []
    for value in ["first", "second", "second", None]:
        if value is None:
            monkeypatch.delenv("BGAGENT_TEST_VALUE", raising=False)
        else:
            monkeypatch.setenv("BGAGENT_TEST_VALUE", value)
        task = bg.start('echo "[${BGAGENT_TEST_VALUE-unset}]"')
        results.append(bg.wait(task, timeout=60).splitlines()[-1])
    assert results == ["[first]", "[second]", "[second]", "[unset]"]


def test_tasks_is_one_dict_kept_current_in_place(bg):
    tasks = bg.tasks
    assert bg.tasks is tasks
    task_id = bg.start("echo done")
    entry = tasks[task_id]
    assert entry == {"status": "running", "result": None, "command": "echo done"}
    bg.wait(task_id, timeout=30)
    assert bg.tasks[task_id] is entry  # the same entry, changed in place
    assert entry == {"status": "completed", "result": "done", "command": "echo done"}


def test_planted_entries_show_in_check_and_are_never_notified_or_reused(bg, monkeypatch):
    bg.tasks["0000aaaa"] = {"status": "completed", "result": "planted", "command": "echo p"}
    assert bg.check("0000aaaa") == "[completed] echo p\nplanted"
    # The next draws name the planted id, then a finished task's id deleted from `tasks`:
    # neither is taken again.
    finished = bg.start("true")
    bg.wait(finished, timeout=30)
    del bg.tasks[finished]
    draws = iter(["0000aaaa", finished, "0000bbbb"])
    # The draw is the core's (`_core.new_task_id`, the lesson's `uuid4().hex[:8]`).
    monkeypatch.setattr(bgagent.background._core, "new_task_id", lambda: next(draws))
    assert bg.start("echo new") == "0000bbbb"
    bg.wait("0000bbbb", timeout=30)
    notes = bg.drain_notifications()
    assert [n["task_id"] for n in notes] == [finished, "0000bbbb"]
    assert bg.tasks["0000aaaa"]["result"] == "planted"
    assert bg.info(finished)["command"] == "true"  # the core's record is intact
    assert bg.check() == "0000aaaa: [completed] echo p\n0000bbbb: [completed] echo new"


def test_the_manager_can_be_subclassed(tmp_path):
    class Logged(bgagent.BackgroundManager):
        def __init__(self) -> None:
            super().__init__(tmp_path, grace=0.3)
            self.started: list[str] = []

        def run(self, command: str, workdir=None) -> str:
            self.started.append(command)
            return super().run(command, workdir)

    with Logged() as bg:
        line = bg.run("pwd")
        task_id = line.split()[2]
        assert bg.wait(task_id, timeout=30) == f"[completed] pwd\n{tmp_path}"
        assert bg.started == ["pwd"]
        assert isinstance(bg, bgagent.BackgroundManager)
        agent = bgagent.Agent(model="m", client=object(), workdir=tmp_path, manager=bg)
        assert agent.manager is bg
    with pytest.raises(TypeError, match="manager must be a bgagent.BackgroundManager, not object"):
        bgagent.Agent(model="m", client=object(), workdir=tmp_path, manager=object())


def test_the_core_has_one_wait_that_every_python_wait_calls(tmp_path):
    core = bgagent._core.BackgroundManager(tmp_path)
    assert core.wait("idle") is True
    assert core.wait("next") is None  # nothing queued, nothing runs: the end
    with pytest.raises(ValueError, match="until must be"):
        core.wait("soon")
    with pytest.raises(ValueError, match="needs a task_id"):
        core.wait("ended")
    with pytest.raises(ValueError, match="takes no task_id"):
        core.wait("idle", task_id="x")
    go = tmp_path / "go"
    assert core.start_as("t1", f"while [ ! -e {go} ]; do sleep 0.01; done; echo t1")
    assert core.wait("ended", 0.05, "t1") is False
    assert core.wait("finished", 0.05) is False
    with pytest.raises(TimeoutError, match="no notification within 0.05 s"):
        core.wait("next", 0.05)
    go.touch()
    assert core.wait("ended", 60, "t1") is True
    assert core.wait("finished") is True
    note = core.wait("next", 60)
    assert note is not None and (note["task_id"], note["result"]) == ("t1", "t1")
    core.shutdown()
