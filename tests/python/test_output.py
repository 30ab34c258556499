"""Reading a task's output from Python: read (waiting, after the end), follow, tail, sync and
async, and an unknown id."""

import asyncio
import time

import bgagent
import pytest
from helpers import sigint_once_blocked_in

RELEASED = "while [ ! -e go ]; do sleep 0.01; done"


@pytest.fixture
def bg(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3) as manager:
        yield manager


def test_read_waits_for_output_and_reads_after_the_end(bg, tmp_path):
    task_id = bg.start(f"echo one; {RELEASED}; echo two; exit 4")
    first = bg.read(task_id, timeout=60)
    assert first == {"text": "one\n", "next": 4, "dropped": 0, "running": True, "exit_code": None}
    # While it runs, info() counts what the log holds. The stream's count follows the log's a
    # moment later (the executor stores the bytes, then reports them), so it is polled.
    deadline = time.monotonic() + 60
    while (info := bg.info(task_id))["stdout_bytes"] < 4:
        assert time.monotonic() < deadline, info
        time.sleep(0.005)
    assert (info["status"], info["log_bytes"], info["stdout_bytes"]) == ("running", 4, 4)
    assert info["log_dropped"] == 0
    assert bg.read(task_id, after=4)["text"] == ""
    (tmp_path / "go").touch()
    rest = ""
    after = 4
    while not rest.endswith("two\n"):
        got = bg.read(task_id, after=after, timeout=60)
        rest, after = rest + got["text"], got["next"]
    bg.wait(task_id)
    done = bg.read(task_id)
    assert done == {"text": "one\ntwo\n", "next": 8, "dropped": 0, "running": False, "exit_code": 4}
    assert bg.read(task_id, after=8, timeout=None)["running"] is False
    assert bg.tail(task_id, 1) == "two\n"
    assert bg.tail(task_id) == "one\ntwo\n"


def test_follow_yields_lines_as_they_come_and_the_last_partial_one(bg, tmp_path):
    task_id = bg.start(f"echo one; {RELEASED}; printf 'two\\nend'")
    lines = bg.follow(task_id)
    assert next(lines) == "one"
    (tmp_path / "go").touch()
    assert list(lines) == ["two", "end"]


def test_async_read_and_follow(bg, tmp_path):
    task_id = bg.start(f"echo a; {RELEASED}; echo b")

    async def main():
        first = await bg.read_async(task_id, timeout=60)
        assert first["text"] == "a\n"
        (tmp_path / "go").touch()
        return [line async for line in bg.follow_async(task_id)]

    assert asyncio.run(main()) == ["a", "b"]


def test_an_unknown_task_is_a_key_error(bg):
    with pytest.raises(KeyError, match="Unknown task nope"):
        bg.read("nope")
    with pytest.raises(KeyError, match="Unknown task nope"):
        bg.tail("nope")
    with pytest.raises(KeyError, match="Unknown task nope"):
        asyncio.run(bg.read_async("nope"))


def test_ctrl_c_interrupts_a_read(bg, sigint_raises):
    task_id = bg.start("sleep 30")
    sender = sigint_once_blocked_in("bg.read(task_id, timeout=None)")
    with pytest.raises(KeyboardInterrupt):
        bg.read(task_id, timeout=None)
    sender.join()
    assert bg.has_running_tasks()
