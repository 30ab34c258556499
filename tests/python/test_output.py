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


def test_notifications_carry_the_duration_the_log_and_the_tail(bg, tmp_path):
    # The preview (500 characters) cuts 3000 lines: the tail has the end a test run's summary
    # would be at. A task whose result is its whole output has no tail.
    long = bg.start("seq 1 3000; echo summary: 3000 passed")
    short = bg.start("echo hi")
    killed = bg.start(f"echo before the kill; {RELEASED}")
    assert bg.read(killed, timeout=60)["text"] == "before the kill\n"
    bg.kill(killed)
    notes = {}
    deadline = time.monotonic() + 60
    while len(notes) < 3:
        assert time.monotonic() < deadline, notes
        notes.update((n["task_id"], n) for n in bg.wait_for_notifications(timeout=60))
    tail = notes[long]["tail"].split("\n")
    assert tail[-1] == "summary: 3000 passed" and tail[0] == "2982" and len(tail) == 20
    assert len(notes[long]["result"]) == 500
    assert notes[long]["log_path"] == str(bg.log_dir / f"{long}.log")
    assert notes[short]["tail"] == "" and notes[short]["result"] == "hi"
    # A killed task's result is a message; its output is in the tail.
    assert notes[killed]["result"] == "Error: Killed"
    assert notes[killed]["tail"] == "before the kill"
    for task_id, note in notes.items():
        # A small output that ended stays in memory: no file (info() says the same).
        assert note["log_path"] == bg.info(task_id)["log_path"]
        assert isinstance(note["duration"], float) and note["duration"] >= 0
        assert note["duration"] <= bg.info(task_id)["elapsed"]


def test_the_lessons_module_keeps_the_lessons_notification(tmp_path):
    with bgagent.BackgroundManager(tmp_path, notification_details=False) as bg:
        bg.start("seq 1 3000")
        [note] = bg.wait_for_notifications(timeout=60)
        assert note.keys() == {"task_id", "status", "command", "result", "exit_code"}

        async def main():
            bg.start("echo next")
            return await bg.wait_for_notifications_async(timeout=60)

        [note] = asyncio.run(main())
        assert note.keys() == {"task_id", "status", "command", "result", "exit_code"}
