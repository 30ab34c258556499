"""Nothing outlives its owner or its task: owners that die by a signal, processes that leave
their task's group or session, tasks that read the terminal, fork(), and thousands of tasks."""

from __future__ import annotations

import json
import multiprocessing
import os
import pty
import resource
import signal
import subprocess
import sys
import textwrap

import bgagent
import pytest
from helpers import new_marker, processes_with, wait_until


def owner(code: str) -> subprocess.Popen:
    """A child Python running `code`; its stdout is a pipe the test reads."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )


def escapes(marker: str, ready_dir) -> str:
    """Shell lines that start two processes outside the task's group: one in a session of its
    own (setsid), one in a group of its own (setpgid before exec). Each touches a file in
    `ready_dir` once it has escaped; their command lines hold `marker`."""
    setpgid = (
        "import os, sys; os.setpgid(0, 0); open(sys.argv[1], 'w').close(); "
        "os.execvp('sh', ['sh', '-c', 'sleep 600; :', sys.argv[2]])"
    )
    return (
        f"setsid sh -c 'touch {ready_dir}/setsid; sleep 600; :' {marker}s >/dev/null 2>&1 & "
        f'{sys.executable} -c "{setpgid}" {ready_dir}/setpgid {marker}p >/dev/null 2>&1 & '
    )


def both_escaped(ready_dir) -> bool:
    return (ready_dir / "setsid").exists() and (ready_dir / "setpgid").exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_an_owner_killed_by_a_signal_leaves_no_task_behind(sig, tmp_path):
    marker = new_marker()
    proc = owner(f"""
        import pathlib, time, bgagent
        bg = bgagent.BackgroundManager()
        ids = [bg.start("sh -c 'sleep 600; :' {marker}" + str(i)) for i in range(3)]
        ids.append(bg.start({escapes(marker, tmp_path)!r} + "sleep 600"))
        ready = [pathlib.Path({str(tmp_path)!r}) / name for name in ("setsid", "setpgid")]
        while not all(bg.info(i)["pid"] for i in ids) or not all(p.exists() for p in ready):
            time.sleep(0.01)
        print("started", flush=True)
        time.sleep(600)
    """)
    assert proc.stdout.readline() == "started\n"
    try:
        wait_until(lambda: len(processes_with(marker)) >= 8, "the tasks and the escapes run")
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig
    finally:
        proc.kill()
        proc.wait()
    wait_until(lambda: not processes_with(marker), "the supervisor stops every task", timeout=60)


@pytest.mark.parametrize("end", ["exit", "kill", "shutdown", "timeout"])
def test_processes_that_left_the_group_end_with_their_task(end, tmp_path):
    marker = new_marker()
    bg = bgagent.BackgroundManager(timeout=3 if end == "timeout" else 300, grace=0.3)
    # The task waits until both have escaped, then ends by itself or waits to be stopped.
    wait = f"while [ ! -e {tmp_path}/setsid ] || [ ! -e {tmp_path}/setpgid ]; do sleep 0.01; done"
    tail = "; echo escaped" if end == "exit" else "; sleep 600"
    if end == "timeout":
        escape_first = f"setsid sh -c 'touch {tmp_path}/setsid; sleep 600; :' {marker}s "
        command = escape_first + f">/dev/null 2>&1 & sleep 600; touch {tmp_path}/setpgid"
    else:
        command = escapes(marker, tmp_path) + wait + tail
    task = bg.start(command)
    if end == "kill":
        wait_until(lambda: both_escaped(tmp_path), "both processes escaped")
        assert bg.kill(task).startswith("[killed]")
    elif end == "shutdown":
        wait_until(lambda: both_escaped(tmp_path), "both processes escaped")
        bg.shutdown()
    else:
        bg.wait(task, timeout=60)
    status = {"exit": "completed", "kill": "killed", "shutdown": "killed", "timeout": "timeout"}
    assert bg.check(task).startswith(f"[{status[end]}]")
    assert (tmp_path / "setsid").exists(), "the escape ran"
    wait_until(lambda: not processes_with(marker), "the escaped processes are gone", timeout=10)
    bg.shutdown()


def test_a_task_has_no_controlling_terminal():
    # The owner runs with a terminal of its own; a task that reads the terminal must fail at
    # once instead of stopping (SIGTTIN) until its timeout.
    code = textwrap.dedent("""
        import os, bgagent
        os.close(os.open("/dev/tty", os.O_RDWR))
        print("owner has a terminal", flush=True)
        bg = bgagent.BackgroundManager(timeout=60)
        print(bg.wait(bg.start("cat /dev/tty; echo status=$?"), timeout=120), flush=True)
    """)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", code])
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "owner has a terminal" in text
    assert "[completed] cat /dev/tty; echo status=$?" in text
    assert "status=1" in text and "No such device or address" in text


def _fork_worker(queue) -> None:
    bg = bgagent.BackgroundManager()
    queue.put(bg.wait(bg.start("echo from the worker"), timeout=60))
    bg.shutdown()


def test_a_multiprocessing_fork_worker_runs_its_own_tasks():
    used = bgagent.BackgroundManager()
    assert used.wait(used.start("echo parent"), timeout=60).endswith("parent")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_fork_worker, args=(queue,))
    worker.start()
    try:
        assert queue.get(timeout=120) == "[completed] echo from the worker\nfrom the worker"
    finally:
        worker.join(timeout=60)
        used.shutdown()
    assert worker.exitcode == 0


def test_a_manager_inherited_through_fork_works_in_the_child_and_leaves_the_parents_tasks():
    marker = new_marker()
    bg = bgagent.BackgroundManager(grace=0.3)
    parents = bg.start(f"sh -c 'sleep 600; :' {marker}")
    wait_until(lambda: processes_with(marker), "the parent's task runs")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from bgagent import s08

            report = {
                "run": bg.wait(bg.start("echo child"), timeout=60),
                "inherited": bg.check(parents),
                "running": bg.has_running_tasks(),
                "notes": [n["task_id"] for n in bg.drain_notifications()],
                "s08": s08.BG.run("echo lesson"),
            }
            s08_note = s08.BG.wait_for_notifications(timeout=60)
            report["s08_note"] = [n["result"] for n in s08_note]
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert report["run"] == "[completed] echo child\nchild"
    assert report["inherited"].startswith(f"[error] sh -c 'sleep 600; :' {marker}\nError: started")
    assert report["running"] is False
    assert len(report["notes"]) == 1, "only the child's own task is notified in the child"
    assert report["s08"].startswith("Background task ")
    assert report["s08_note"] == ["lesson"]
    # The child neither stopped nor took over the parent's task.
    assert bg.check(parents).startswith("[running]")
    assert processes_with(marker)
    bg.kill(parents)
    assert not processes_with(marker)


def _room_for(tasks: int) -> str | None:
    """Why this machine cannot hold `tasks` sleeping tasks at once, or None if it can."""
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    procs = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    if files != resource.RLIM_INFINITY and files < 2 * tasks + 1000:
        return f"the open-file hard limit ({files}) is below two pipes per task"
    if procs != resource.RLIM_INFINITY and procs < 2 * tasks + 1000:
        return f"the process limit ({procs}) is below two processes per task"
    if pid_max < 2 * tasks + 1000:
        return f"pid_max ({pid_max}) is below two processes per task"
    return None


def test_shutdown_of_2000_running_tasks_returns_when_all_are_gone():
    if reason := _room_for(2000):
        pytest.skip(reason)
    marker = new_marker()
    bg = bgagent.BackgroundManager(grace=1.0, max_running=None)
    ids = [bg.start(f"sh -c 'sleep 600; :' {marker}") for _ in range(2000)]
    wait_until(lambda: all(bg.info(i)["pid"] for i in ids), "all 2000 run", timeout=120)
    bg.shutdown()
    assert not bg.has_running_tasks()
    assert processes_with(marker) == []
    assert len(bg.drain_notifications()) == 2000


def test_5000_sleeping_tasks_all_complete_with_few_threads_and_little_memory():
    if reason := _room_for(5000):
        pytest.skip(reason)
    proc = owner("""
        import json, bgagent
        def status(key):
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith(key))
        bg = bgagent.BackgroundManager(max_running=None)
        for _ in range(5000):
            bg.start("sleep 5")
        threads, notes = status("Threads:"), []
        while len(notes) < 5000:
            notes += bg.wait_for_notifications(timeout=120)
            threads = max(threads, status("Threads:"))
        completed = sum(n["status"] == "completed" for n in notes)
        print(json.dumps({"completed": completed, "threads": threads,
                          "peak_mib": status("VmHWM:") / 1024}), flush=True)
    """)
    out, _ = proc.communicate(timeout=600)
    result = json.loads(out)
    assert result["completed"] == 5000
    assert result["threads"] <= 64
    assert result["peak_mib"] < 100


def python_with_open_file_limit(code: str, soft: int, timeout: float):
    """Runs `code` in a child Python whose soft open-file limit is `soft` (hard one kept)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        preexec_fn=lower,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_tasks_get_the_owners_open_file_limit_not_the_raised_one():
    # bgagent raises its own soft limit to the hard one; tasks get the user's back. The
    # owner starts with a soft limit below the hard one, so the two differ.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room below it")
    code = """
        import resource, bgagent
        bg = bgagent.BackgroundManager()
        print(bg.wait(bg.start("ulimit -n"), timeout=60).splitlines()[-1])
        print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    """
    proc = python_with_open_file_limit(code, 512, timeout=120)
    assert proc.returncode == 0, proc.stderr
    task_limit, own_limit = proc.stdout.split()
    assert task_limit == "512"
    assert own_limit == str(hard) if hard != resource.RLIM_INFINITY else own_limit != "512"


def test_an_owner_killed_right_after_starting_tasks_leaves_none():
    # No waiting for the tasks to run: the supervisor starts them, so it knows each one, even
    # one it starts after the owner is already dead.
    marker = new_marker()
    proc = owner(f"""
        import os, signal, bgagent
        bg = bgagent.BackgroundManager(max_running=None)
        for i in range(20):
            bg.start("sh -c 'sleep 600; :' {marker}" + str(i))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    wait_until(lambda: not processes_with(marker), "no task is left", timeout=30)


def test_a_killed_supervisor_ends_its_tasks_and_later_tasks_still_run():
    marker = new_marker()
    proc = owner(f"""
        import os, signal, time, bgagent
        bg = bgagent.BackgroundManager()
        task = bg.start("sh -c 'sleep 600; :' {marker}")
        while not bg.info(task)["pid"]:
            time.sleep(0.01)
        me = str(os.getpid())
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                    supervisor = b"_supervise" in f.read()
                with open(f"/proc/{{pid}}/stat") as f:
                    parent = f.read().rsplit(")", 1)[1].split()[1]
            except OSError:
                continue
            if supervisor and parent == me:
                os.kill(int(pid), signal.SIGKILL)
        print(bg.wait(task, timeout=60).splitlines()[0].split()[0], flush=True)
        print(bg.wait(bg.start("echo still works"), timeout=60), flush=True)
    """)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    ended, *rest = out.splitlines()
    assert ended != "[running]"
    assert rest == ["[completed] echo still works", "still works"]
    wait_until(lambda: not processes_with(marker), "the task's processes are gone", timeout=30)


def test_many_queued_starts_under_a_low_open_file_limit_all_run():
    # The owner's soft limit is low; the supervisor (started with it) must not run out of
    # descriptors for the pipes of queued starts and the pidfds of running tasks.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room above 256")
    code = """
        import bgagent
        bg = bgagent.BackgroundManager(max_running=None)
        ids = [bg.start("sleep 1") for _ in range(600)]
        notes = []
        while len(notes) < 600:
            got = bg.wait_for_notifications(timeout=120)
            assert got, "no notification within 120 s"
            notes += got
        print(sum(n["status"] == "completed" for n in notes))
    """
    proc = python_with_open_file_limit(code, 256, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["600"]
