"""Files that are not what they seem: huge, not regular, outside a relative workspace."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import bgagent
import pytest
from bgagent import s08


def test_reading_a_huge_sparse_file_with_a_limit_keeps_memory_small(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(b"a\nb\nc\nd\n")
        f.truncate(512 << 20)  # one more line: half a gigabyte of NUL characters
    code = textwrap.dedent(f"""
        import json
        from bgagent import _core
        result = _core.run_read({str(tmp_path)!r}, "big.bin", 3)
        with open("/proc/self/status") as f:
            peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        print(json.dumps({{"result": result, "peak_mib": peak / 1024}}))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    report = json.loads(out.stdout)
    assert report["result"] == "a\nb\nc\n... (2 more)"
    assert report["peak_mib"] < 64, report["peak_mib"]


def test_a_fifo_is_refused_at_once(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "pipe")
    monkeypatch.setattr(s08, "WORKDIR", tmp_path)
    assert s08.run_read("pipe") == f"Error: {tmp_path / 'pipe'}: is not a regular file"


def test_a_relative_workdir_refuses_every_path_like_the_lesson(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for relative in [Path("."), Path("sub")]:
        monkeypatch.setattr(s08, "WORKDIR", relative)
        assert s08.run_read("/etc/hostname") == "Error: Path escapes workspace: /etc/hostname"
        assert s08.run_write("x.txt", "data") == "Error: Path escapes workspace: x.txt"
    assert not Path("/sub/x.txt").exists()
    assert list(tmp_path.iterdir()) == []


SECRET = "sk-test-0123456789abcdef"


def in_child(code: str, **env: str) -> str:
    """Runs `code` in a fresh interpreter with ANTHROPIC_API_KEY set; returns its stdout."""
    full = {**os.environ, "ANTHROPIC_API_KEY": SECRET, **env}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


def test_production_tasks_do_not_get_the_api_key_and_its_value_is_redacted(tmp_path):
    (tmp_path / "key.txt").write_text(SECRET)
    out = in_child(f"""
        import bgagent
        see = 'echo "[${{ANTHROPIC_API_KEY-unset}}]"; cat key.txt'
        for bg in [bgagent.BackgroundManager({str(tmp_path)!r}),
                   bgagent.BackgroundManager({str(tmp_path)!r}, pass_api_key=True)]:
            print(bg.wait(bg.start(see), timeout=60).splitlines()[1:])
    """)
    production, opted_in = out.splitlines()
    assert production == "['[unset]', '[redacted]']"
    assert opted_in == f"['[{SECRET}]', '{SECRET}']"


def test_the_cli_hides_the_key_from_commands_outputs_and_the_trace(tmp_path):
    (tmp_path / "key.txt").write_text(SECRET)
    script = tmp_path / "script.json"
    command = 'echo "[${ANTHROPIC_API_KEY-unset}]"; cat key.txt'
    script.write_text(
        json.dumps([
            {"content": [{"type": "tool_use", "id": "a", "name": "bash",
                          "input": {"command": command}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"},
        ])
    )  # fmt: skip
    cli = Path(sys.executable).parent / "bgagent"
    env = {**os.environ, "ANTHROPIC_API_KEY": SECRET, "NO_COLOR": "1"}
    args = [str(cli), "--script", str(script), "-p", "go", "--trace", "trace.jsonl"]
    proc = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "[unset]\n[redacted]" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert SECRET not in (tmp_path / "trace.jsonl").read_text()


def test_every_messages_api_field_reaches_the_server(client, server):
    from messages_server import message, text

    server.add(message([text("hi")]))
    extra = {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        "a_field_from_the_future": [1, 2],
    }
    reply = client.messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}], **extra
    )
    assert reply.content[0].text == "hi"
    body = server.requests[-1].body
    assert {k: body[k] for k in extra} == extra


def test_a_streamed_reply_reaches_the_caller_piece_by_piece(client, server):
    from messages_server import error, message, text

    server.add(message([text("one two three four")]), error(400, "bad request"))
    kwargs = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    with client.messages.stream(**kwargs) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1, pieces
    assert "".join(pieces) == "one two three four" == final.content[0].text
    assert server.requests[-1].body["stream"] is True
    failing = client.messages.stream(**kwargs)
    with failing, pytest.raises(bgagent.BadRequestError, match="bad request"):
        failing.get_final_message()
