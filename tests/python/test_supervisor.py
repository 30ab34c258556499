"""The supervisor as an attacker meets it: code planted where Python looks for modules, a task
that reads its parent's environment or memory, a task that kills it, descriptors a task should
not get, and an owner that dies without cleaning up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import bgagent
import pytest
from helpers import new_marker, processes_with, run_clean, wait_until
from messages_server import message, text, tool_use

KEY = "sk-ant-test-0123456789abcdef"


def owner(code: str, **popen) -> subprocess.Popen:
    """A child Python running `code` (dedented); stdout and stderr are pipes the test reads."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finished(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out, err


def die_while_running(command: str) -> str:
    """Owner code (at 8 spaces, as the owners here write theirs) that starts `command`, waits
    until it runs, then dies by SIGKILL: the supervisor (a new one, in these tests) must stop
    it."""
    return (
        f"bg.start({command!r})\n"
        "        while not bg.info(list(bg.tasks)[-1])['pid']:\n"
        "            time.sleep(0.01)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)"
    )


def plant(folder: Path, marks: Path) -> None:
    """Modules Python would import from `folder`, each leaving a file in `marks` if it runs."""
    leave = f"import os; open(os.path.join({str(marks)!r}, __name__ + '-' + str(os.getpid())), 'w')"
    for name in ("bgagent.py", "sitecustomize.py", "usercustomize.py", "_core.py"):
        (folder / name).write_text(leave + "\n")
    (folder / "bgagent").mkdir()
    (folder / "bgagent" / "__init__.py").write_text(leave + "\n")


def test_code_planted_in_the_working_directory_or_on_pythonpath_never_runs_in_the_supervisor(
    tmp_path,
):
    cwd, on_path, marks = tmp_path / "repo", tmp_path / "path", tmp_path / "marks"
    for folder in (cwd, on_path, marks):
        folder.mkdir()
    plant(cwd, marks)
    plant(on_path, marks)
    # The package is imported first (as a user's program would); the hostile places are in
    # force from then on: the supervisor starts with the manager.
    out, _ = finished(
        owner(f"""
        import os, bgagent
        os.chdir({str(cwd)!r})
        os.environ["PYTHONPATH"] = {str(on_path)!r}
        os.environ["PYTHONSTARTUP"] = {str(on_path / "bgagent.py")!r}
        bg = bgagent.BackgroundManager()
        print(bg.wait(bg.start("tr '\\\\0' ' ' < /proc/$PPID/cmdline"), timeout=60))
        """)
    )
    status, parent = out.splitlines()
    assert status.startswith("[completed]")
    assert "_supervise" in parent, "the task was not started by a supervisor"
    assert sorted(os.listdir(marks)) == []


def test_code_planted_in_the_working_directory_never_runs_under_the_pip_command(tmp_path, server):
    marks = tmp_path / "marks"
    marks.mkdir()
    plant(tmp_path, marks)
    server.add(
        message([tool_use("bash", {"command": "tr '\\0' ' ' < /proc/$PPID/cmdline"})], "tool_use"),
        message([text("done")]),
    )
    env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "k", "MODEL_ID": "m"}
    proc = run_clean([Path(sys.executable).parent / "bgagent", "-p", "go"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert "python -I -S -c" in proc.stderr, "the command was not run by a supervisor"
    assert sorted(os.listdir(marks)) == []


def test_the_supervisor_holds_no_credentials_and_runs_in_the_root_directory(tmp_path):
    out, _ = finished(
        owner(
            """
            import bgagent
            bg = bgagent.BackgroundManager()
            print(bg.wait(bg.start("tr '\\\\0' '\\\\n' < /proc/$PPID/environ; readlink /proc/$PPID/cwd"), timeout=60))
            """,
            cwd=tmp_path,
            env={**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_AUTH_TOKEN": KEY + "x"},
        )
    )
    status, *environ, cwd = out.splitlines()
    assert status.startswith("[completed]")
    assert [line.split("=")[0] for line in environ] == ["BGAGENT_SUPERVISOR"]
    assert cwd == "/"
    assert KEY not in out


def test_a_task_of_the_same_user_cannot_read_the_supervisors_environment_or_memory():
    setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
    if os.getuid() != 0 or setpriv is None or not os.access(python, os.X_OK):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run as an unprivileged user")
    # The distribution's interpreter (the one under test may sit in root's home, out of the
    # user's reach) with this package on its path, in a directory the user may work in.
    package = str(Path(bgagent.__file__).parent.parent)
    work = Path(tempfile.mkdtemp(prefix="bgagent-nobody-"))
    work.chmod(0o777)
    try:
        read = (
            "tr '\\0' ' ' < /proc/$PPID/cmdline; echo; "
            "cat /proc/$PPID/environ >/dev/null 2>&1 && echo environ-read || echo environ-refused; "
            "(exec 3</proc/$PPID/mem) 2>/dev/null && echo mem-opened || echo mem-refused; "
            "cat /proc/$PPID/environ"
        )
        code = textwrap.dedent(f"""
            import os, bgagent
            assert os.getuid() == 65534
            bg = bgagent.BackgroundManager({str(work)!r})
            print(bg.wait(bg.start({read!r}), timeout=60))
        """)
        proc = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", code],
            cwd=work,
            env={"PYTHONPATH": package, "ANTHROPIC_API_KEY": KEY, "HOME": str(work)}
            | {"TMPDIR": str(work), "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    _, parent, *checks = proc.stdout.splitlines()
    assert "_supervise" in parent, "the task was not started by a supervisor"
    assert checks[:2] == ["environ-refused", "mem-refused"]
    assert KEY not in proc.stdout


def test_a_task_gets_only_standard_input_output_and_error():
    read_end, write_end = os.pipe()  # inherited by the owner, as a user's shell can leave one
    try:
        out, _ = finished(
            owner(
                """
                import os, bgagent
                os.set_inheritable(os.pipe()[1], True)  # and one the owner makes itself
                bg = bgagent.BackgroundManager()
                print(bg.wait(bg.start("ls /proc/$$/fd"), timeout=60))
                """,
                pass_fds=(write_end,),
            )
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert out.splitlines()[1:] == ["0", "1", "2"]


def test_an_empty_packet_on_the_owners_socket_does_not_stop_the_supervisor():
    out, err = finished(
        owner("""
        import os, socket, bgagent
        bg = bgagent.BackgroundManager()
        parent = "tr '\\\\0' ' ' < /proc/$PPID/stat | cut -d' ' -f1"
        before = bg.wait(bg.start(parent), timeout=60).splitlines()[1]
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                s = socket.socket(fileno=fd)
            except OSError:
                continue
            if s.type == socket.SOCK_SEQPACKET:
                s.send(b"")
            s.detach()
        print(before, bg.wait(bg.start(parent), timeout=60).splitlines()[1])
        """)
    )
    before, after = out.split()
    assert before == after, "a new supervisor had to be started"
    assert "supervisor" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGHUP, signal.SIGINT])
def test_the_temporary_log_directory_goes_with_an_owner_killed_by(sig):
    proc = owner("""
        import os, time, bgagent
        bg = bgagent.BackgroundManager()
        bg.wait(bg.start("yes | head -n 5000"), timeout=60)  # too much to stay in memory
        print(bg.log_dir, oct(os.stat(bg.log_dir).st_mode & 0o777), flush=True)
        time.sleep(600)
    """)
    log_dir, mode = proc.stdout.readline().split()
    assert mode == "0o700"
    assert os.listdir(log_dir), "the task's log was not written"
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig
    wait_until(lambda: not os.path.exists(log_dir), f"{log_dir} is removed", timeout=30)


def test_a_task_that_kills_the_supervisor_ends_its_tasks_honestly_and_a_new_one_takes_over(
    tmp_path,
):
    marker, later = new_marker(), new_marker()
    ready = tmp_path / "ready"
    proc = owner(f"""
        import os, signal, time, bgagent
        bg = bgagent.BackgroundManager()
        victim = bg.start("setsid sh -c 'sleep 600; :' {marker}s & touch {ready}; sleep 600")
        while not os.path.exists({str(ready)!r}):
            time.sleep(0.01)
        killer = bg.start("kill -9 $PPID")
        for task in (victim, killer):
            bg.wait(task, timeout=60)
            info = bg.info(task)
            print(info["status"], info["exit_code"], bg.tasks[task]["result"], sep="|", flush=True)
        print(bg.wait(bg.start("echo still works"), timeout=60), flush=True)
        {die_while_running(f"sh -c 'sleep 600; :' {later}")}
    """)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    victim, killer, *rest = out.splitlines()
    # The killer may die before its start is reported: then it is the start that was lost.
    for line in (victim, killer):
        status, code, result = line.split("|")
        assert (status, code) == ("error", "None")
        assert result.startswith("Error: bgagent's supervisor died"), result
    assert rest == ["[completed] echo still works", "still works"]
    assert "warning: the supervisor" in err and "a new supervisor" in err
    wait_until(lambda: not processes_with(marker), "the escaped process is gone", timeout=30)
    wait_until(lambda: not processes_with(later), "the later task is gone", timeout=30)


# Pids of the supervisors whose parent is this process (run in a child Python).
_SUPERVISORS = """
def supervisors():
    found = []
    for child in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                supervisor = b"_supervise" in f.read()
            with open(f"/proc/{child}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if supervisor and parent == os.getpid():
            found.append(child)
    return found
"""


@pytest.mark.parametrize(
    ("make", "model_id"),
    [
        ("import bgagent.s08 as s08; bg = s08.BG", None),
        ("import bgagent.s08 as s08; bg = s08.BG", "claude-test-model"),
        ("import bgagent; bg = bgagent.BackgroundManager()", None),
    ],
)
def test_no_supervisor_starts_before_the_first_task(make, model_id, tmp_path):
    # The lesson's module makes its manager as it is imported: that costs no process and no
    # directory; the first task starts the supervisor, which starts the task.
    code = (
        "import os\n"
        + _SUPERVISORS
        + textwrap.dedent(f"""
        {make}
        print(len(supervisors()), flush=True)
        print(bg.wait(bg.start("tr '\\\\0' ' ' < /proc/$PPID/cmdline"), timeout=60), flush=True)
        print(len(supervisors()), bg.log_dir.is_dir(), flush=True)
    """)
    )
    env = {"MODEL_ID": model_id} if model_id else {}
    proc = run_clean([sys.executable, "-c", code], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    before, status, parent, after = proc.stdout.splitlines()
    assert before == "0", "a supervisor started before any task"
    assert status.startswith("[completed]")
    assert "_supervise" in parent, "the task was not started by a supervisor"
    assert after == "1 True"


def test_a_forked_childs_supervisor_leaves_the_parents_log_directory_alone():
    out, _ = finished(
        owner("""
        import os, time, bgagent
        bg = bgagent.BackgroundManager()
        bg.wait(bg.start("echo parent"), timeout=60)
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:
            # The inherited manager runs tasks here, under this process's own supervisor.
            task = bg.start("echo $PPID")
            bg.wait(task, timeout=60)
            os.write(writer, bg.tasks[task]["result"].encode())
            os._exit(0)
        os.close(writer)
        supervisor = os.read(reader, 64).decode()
        os.waitpid(child, 0)
        # Once the child's supervisor is gone, it has done what it does at its owner's end.
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{supervisor}") and time.monotonic() < deadline:
            time.sleep(0.01)
        print(not os.path.exists(f"/proc/{supervisor}"), os.path.isdir(bg.log_dir))
        """)
    )
    assert out.split() == ["True", "True"], "the child's supervisor removed the parent's logs"


def test_a_first_task_that_kills_the_supervisor_at_once_does_not_end_supervision():
    marker = new_marker()
    proc = owner(f"""
        import os, signal, time, bgagent
        bg = bgagent.BackgroundManager(max_running=None)
        bg.wait(bg.start("kill -9 $PPID"), timeout=60)
        # Started by a new supervisor (a shell started in the instant before a supervisor dies,
        # and not yet reported, is out of reach: see the README).
        for _ in range(5):
            bg.start("sleep 600 # {marker}a")
        print(bg.wait(bg.start("tr '\\\\0' ' ' < /proc/$PPID/cmdline"), timeout=60), flush=True)
        {die_while_running(f"sh -c 'sleep 600; :' {marker}b")}
    """)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert "_supervise" in out, out + err
    assert "tasks are started by this process instead" not in err
    wait_until(lambda: not processes_with(marker), "no task is left", timeout=30)
