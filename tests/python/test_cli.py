"""The `bgagent` command that pip installs runs the same Rust CLI through the extension."""

import json
import os
import pty
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import run_clean
from messages_server import message, text, tool_use

SCRIPT = Path(sys.executable).parent / "bgagent"


def run(args, cwd, env_extra=None):
    return run_clean([SCRIPT, *args], cwd, env_extra)


def test_version_and_help(tmp_path):
    import bgagent

    assert run(["--version"], tmp_path).stdout == f"bgagent {bgagent.__version__}\n"
    assert "--demo" in run(["--help"], tmp_path).stdout


def test_one_shot_through_the_console_script(tmp_path, server):
    server.add(
        message([tool_use("bash", {"command": "echo from-bash"})], "tool_use"),
        message([text("bash said from-bash")]),
    )
    env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "k", "MODEL_ID": "m"}
    proc = run(["-p", "run it"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "bash said from-bash\n"
    assert "> bash:\nfrom-bash\n" in proc.stderr


def test_missing_model_exits_2(tmp_path):
    proc = run(["-p", "hi"], tmp_path, {"ANTHROPIC_API_KEY": "k"})
    assert proc.returncode == 2
    assert proc.stderr == "bgagent: no model name: set MODEL_ID or pass --model NAME\n"


class Terminal:
    """Reads what a program writes to a pseudo-terminal, in order."""

    def __init__(self, fd):
        self.fd = fd
        self.seen = b""
        self.pos = 0  # where the next `expect` starts looking

    def expect(self, needle: str, timeout: float = 30.0) -> str:
        """Reads until `needle` appears after the previous match; returns the text up to and
        including it. Fails if it does not appear within `timeout` seconds."""
        import select

        want = needle.encode()
        deadline = time.monotonic() + timeout
        while want not in self.seen[self.pos :]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} within {timeout:g} s; got {self.seen[self.pos :]!r}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"the terminal closed before {needle!r}; got {self.seen!r}"
                self.seen += chunk
        end = self.seen.index(want, self.pos) + len(want)
        text, self.pos = self.seen[self.pos : end], end
        return text.decode(errors="replace")


def open_repl(tmp_path, *flags):
    """`bgagent` on a pseudo-terminal in `tmp_path` (history there too, no colour): the
    process, the terminal's side of ours, and a Terminal reading it."""
    main, child = pty.openpty()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "NO_COLOR": "1"}
    args = [str(SCRIPT), *flags]
    proc = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, cwd=tmp_path, env=env)
    os.close(child)
    return proc, main, Terminal(main)


def test_repl_on_a_terminal_announces_and_auto_resumes(tmp_path):
    # The task ends only once the user is back at the prompt and has typed half a line.
    release = tmp_path / "release"
    command = f"until [ -e {release} ]; do sleep 0.01; done; echo finished"
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([
            {"content": [{"type": "tool_use", "id": "a", "name": "background_run",
                          "input": {"command": command}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Started."}], "stop_reason": "end_turn"},
            {"content": [{"type": "text", "text": "Saw it."}], "stop_reason": "end_turn"},
        ])
    )  # fmt: skip
    proc, main, terminal = open_repl(tmp_path, "--script", str(script), "--mirror", "--auto-resume")
    try:
        terminal.expect("s08 >> ")
        os.write(main, b"go\r")
        terminal.expect("Started.")
        terminal.expect("s08 >> ")  # back at the prompt
        os.write(main, b"half-typed")
        terminal.expect("half-typed")
        release.touch()
        after = terminal.expect("Saw it.")
        assert "completed" in after and "<background-results>" in after
        os.write(main, b"\x15q\r")  # Ctrl-U clears the half-typed line, then q quits
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(main)
    assert (tmp_path / "bgagent" / "history").read_text().splitlines()[-2:] == ["go", "q"]


def test_the_prompt_counts_running_and_queued_tasks_and_tasks_shows_time_and_place(tmp_path):
    import re

    waits = [f"echo warm{k}; until [ -e go{k} ]; do sleep 0.01; done; echo task{k}" for k in (1, 2)]
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([
            {"content": [{"type": "tool_use", "id": f"t{k}", "name": "background_run",
                          "input": {"command": command}} for k, command in enumerate(waits)],
             "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Started."}], "stop_reason": "end_turn"},
        ])
    )  # fmt: skip
    proc, main, terminal = open_repl(
        tmp_path, "--script", str(script), "--max-running", "1", "--max-wait", "0"
    )
    try:
        terminal.expect("s08 >> ")  # nothing runs yet: the lesson's prompt
        os.write(main, b"go\r")
        terminal.expect("Started.")
        terminal.expect("s08 [1 running, 1 queued] >> ")
        os.write(main, b"/tasks\r")
        listed = terminal.expect("s08 [1 running, 1 queued] >> ")
        running = re.search(
            r"\w{8}: \[running\] echo warm1; until \[ -e go1 \]\S* .*\((\d+)s\)", listed
        )
        assert running, listed
        assert re.search(r"\w{8}: \[queued\] echo warm2; until .*\(1st in line\)", listed)
        # A running task's line ends with its last line of output, once the task has printed it.
        deadline = time.monotonic() + 30
        while not re.search(r"\[running\] echo warm1.*\(\d+s\)  > warm1", listed):
            assert time.monotonic() < deadline, listed
            os.write(main, b"/tasks\r")
            listed = terminal.expect("s08 [1 running, 1 queued] >> ")
        # /tail of the running task: its output so far, under the line typed.
        task_id = re.search(r"(\w{8}): \[running\] echo warm1", listed).group(1)
        os.write(main, f"/tail {task_id} 5\r".encode())
        tailed = terminal.expect("s08 [1 running, 1 queued] >> ")
        assert "warm1\r\n" in tailed.split(f"/tail {task_id} 5")[-1], tailed
        os.write(main, b"/tail nope\r")
        assert "Error: Unknown task nope" in terminal.expect("s08 [1 running, 1 queued] >> ")
        (tmp_path / "go1").touch()
        terminal.expect("completed")  # announced above the prompt; the second task starts
        os.write(main, b"/help\r")
        terminal.expect("this list")
        terminal.expect("s08 [1 running] >> ")
        (tmp_path / "go2").touch()
        terminal.expect("completed")
        os.write(main, b"/help\r")
        terminal.expect("this list")
        terminal.expect("s08 >> ")  # nothing runs: the lesson's prompt again
        os.write(main, b"q\r")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(main)


def test_the_mirror_keeps_the_lessons_prompt_while_tasks_run(tmp_path):
    script = tmp_path / "script.json"
    command = "until [ -e go ]; do sleep 0.01; done"
    script.write_text(
        json.dumps([
            {"content": [{"type": "tool_use", "id": "a", "name": "background_run",
                          "input": {"command": command}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Started."}], "stop_reason": "end_turn"},
        ])
    )  # fmt: skip
    proc, main, terminal = open_repl(tmp_path, "--script", str(script), "--mirror")
    try:
        terminal.expect("s08 >> ")
        os.write(main, b"go\r")
        terminal.expect("Started.")
        terminal.expect("s08 >> ")
        os.write(main, b"/tasks\r")
        listed = terminal.expect("s08 >> ")  # the task runs, and the prompt is the lesson's
        assert "[running] until [ -e go ]" in listed and "running," not in listed, listed
        (tmp_path / "go").touch()
        terminal.expect("completed")
        os.write(main, b"q\r")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(main)


# Run by a task: waits (at most 30 s) for the test to write the CLI's pid, then reads that
# process's /proc/PID/environ and /proc/PID/mem; output, stderr and exit status go to files.
READ_THE_CLI = (
    "n=0; until [ -s cli.pid ] || [ $n -ge 3000 ]; do sleep 0.01; n=$((n+1)); done; "
    "cli=$(cat cli.pid); "
    "cat /proc/$cli/environ > environ.out 2> environ.err; echo $? > environ.rc; "
    "head -c 4096 /proc/$cli/mem > mem.out 2> mem.err; echo $? > mem.rc"
)


def test_a_task_cannot_read_the_key_from_the_cli_in_its_python_process():
    """The console script runs the CLI inside Python: that process holds the key, so it is the
    one made non-dumpable. As root the CLI runs as user 65534 (root may read any process)."""
    key = "sk-held-by-the-python-cli-0123456789"
    work = Path(tempfile.mkdtemp(prefix="bgagent-dumpable-"))  # not under root's 0700 tmp
    try:
        work.chmod(0o777)
        uses = [
            {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": READ_THE_CLI}}
        ]
        script = work / "script.json"
        script.write_text(
            json.dumps([
                {"content": uses, "stop_reason": "tool_use"},
                {"content": [{"type": "text", "text": "read"}], "stop_reason": "end_turn"},
            ])
        )  # fmt: skip
        argv = [str(SCRIPT), "-p", "go", "--script", str(script)]
        if os.geteuid() == 0:
            argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}
        env["ANTHROPIC_API_KEY"] = key
        proc = subprocess.Popen(
            argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # setpriv and the script's interpreter line exec in place: the CLI keeps this pid.
        (work / "cli.pid.new").write_text(str(proc.pid))
        (work / "cli.pid.new").rename(work / "cli.pid")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

        def read(name: str) -> str:
            path = work / name
            return path.read_text() if path.exists() else ""

        assert read("environ.rc"), "the task ran"
        assert key not in read("environ.out")
        assert read("environ.rc").strip() != "0"
        assert "Permission denied" in read("environ.err")
        assert "Permission denied" in read("mem.err")
        assert read("mem.out") == ""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_two_repls_in_one_directory_both_keep_their_history(tmp_path):
    script = tmp_path / "script.json"
    script.write_text("[]")  # the commands typed here never call the model
    repls = []
    try:
        for _ in range(2):
            repls.append(open_repl(tmp_path, "--script", str(script)))
            repls[-1][2].expect("s08 >> ")
        (a, a_fd, a_term), (b, b_fd, b_term) = repls
        # Each has read the history as it was at its start: nothing yet.
        os.write(a_fd, b"/help\r")
        a_term.expect("this list")
        a_term.expect("s08 >> ")
        os.write(b_fd, b"/tasks\r")
        b_term.expect("No background tasks.")
        b_term.expect("s08 >> ")
        os.write(a_fd, b"q\r")
        assert a.wait(timeout=60) == 0
        os.write(b_fd, b"exit\r")
        assert b.wait(timeout=60) == 0
    finally:
        for proc, main, _ in repls:
            proc.kill()
            os.close(main)
    history = (tmp_path / "bgagent" / "history").read_text().splitlines()
    assert [line for line in history if not line.startswith("#")] == [
        "/help",
        "/tasks",
        "q",
        "exit",
    ]
    assert (tmp_path / "bgagent" / "history").stat().st_mode & 0o777 == 0o600


def test_a_closed_terminal_ends_the_cli_like_sighup_and_kills_every_task(tmp_path):
    from helpers import new_marker, processes_with, wait_until

    marker = new_marker()
    background = f"sh -c 'sleep 600; :' {marker}bg"
    foreground = f"sh -c 'sleep 600; :' {marker}fg"
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([
            {"content": [{"type": "tool_use", "id": "a", "name": "background_run",
                          "input": {"command": background}}], "stop_reason": "tool_use"},
            {"content": [{"type": "tool_use", "id": "b", "name": "bash",
                          "input": {"command": foreground}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "never reached"}], "stop_reason": "end_turn"},
        ])
    )  # fmt: skip
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "NO_COLOR": "1"}
    # pty.fork makes the terminal the CLI's controlling terminal, so closing it hangs it up.
    pid, main = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execve(str(SCRIPT), [str(SCRIPT), "--script", str(script)], env)
    terminal = Terminal(main)
    try:
        terminal.expect("s08 >> ")
        os.write(main, b"go\r")
        wait_until(lambda: len(processes_with(marker)) >= 4, "both commands run")
    finally:
        os.close(main)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 129
    wait_until(lambda: not processes_with(marker), "every task is gone", timeout=10)
