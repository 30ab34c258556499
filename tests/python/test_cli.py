"""The `bgagent` command that pip installs runs the same Rust CLI through the extension."""

import json
import os
import pty
import subprocess
import sys
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


def read_until(fd, needle: str, timeout: float = 30.0) -> str:
    """Reads a pseudo-terminal until `needle` appears (or the time is up)."""
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen.decode(errors="replace")


def test_repl_on_a_terminal_announces_and_auto_resumes(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps([
            {"content": [{"type": "tool_use", "id": "a", "name": "background_run",
                          "input": {"command": "sleep 1; echo finished"}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Started."}], "stop_reason": "end_turn"},
            {"content": [{"type": "text", "text": "Saw it."}], "stop_reason": "end_turn"},
        ])
    )  # fmt: skip
    main, child = pty.openpty()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "NO_COLOR": "1"}
    args = [str(SCRIPT), "--script", str(script), "--mirror", "--auto-resume"]
    proc = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, cwd=tmp_path, env=env)
    os.close(child)
    try:
        assert "s08 >> " in read_until(main, "s08 >> ")
        os.write(main, b"go\r")
        assert "Started." in read_until(main, "Started.")
        os.write(main, b"half-typed")
        after = read_until(main, "Saw it.")
        assert "completed" in after and "<background-results>" in after and "Saw it." in after
        os.write(main, b"\x15q\r")  # Ctrl-U clears the half-typed line, then q quits
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        os.close(main)
    assert (tmp_path / "bgagent" / "history").read_text().splitlines()[-2:] == ["go", "q"]
