"""Files that are not what they seem: huge, not regular, outside a relative workspace."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
