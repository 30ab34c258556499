"""The `bgagent` command that pip installs runs the same Rust CLI through the extension."""

import os
import subprocess
import sys
from pathlib import Path

from messages_server import message, text, tool_use

SCRIPT = Path(sys.executable).parent / "bgagent"


def run(args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}
    env.update(env_extra or {})
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
