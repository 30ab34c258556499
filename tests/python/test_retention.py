"""What a manager keeps of finished tasks, from Python: `keep_finished` (the `tasks` dict
follows what the core lets go), `forget`, `log_budget` and `info()["log_removed"]`; and
`wait_for_finished`, the wait that leaves the queue to its reader."""

import asyncio
from pathlib import Path

import bgagent
import pytest

# More than the 4 KiB a task keeps in memory: each finished task has a log file.
SIZE = 5096


def prints(char: str) -> str:
    return f"head -c {SIZE} /dev/zero | tr '\\0' {char}"


def run_to_end(bg: bgagent.BackgroundManager, command: str) -> str:
    task_id = bg.start(command)
    bg.wait(task_id, timeout=30)
    assert bg.info(task_id)["status"] == "completed", bg.info(task_id)
    return task_id


def four_kept_two(bg: bgagent.BackgroundManager) -> tuple[list[str], list[Path]]:
    ids, logs = [], []
    for char in "abcd":
        ids.append(run_to_end(bg, prints(char)))
        logs.append(Path(bg.info(ids[-1])["log_path"]))
        assert len(bg.drain_notifications()) == 1
    assert list(bg.tasks) == ids[2:]
    for task_id in ids[:2]:
        with pytest.raises(KeyError, match=f"Unknown task {task_id}"):
            bg.info(task_id)
        assert bg.check(task_id) == f"Error: Unknown task {task_id}"
    return ids, logs


def test_past_keep_finished_the_oldest_delivered_go_from_tasks_and_their_logs_with_them():
    with bgagent.BackgroundManager(keep_finished=2, max_running=None) as bg:
        ids, logs = four_kept_two(bg)
        assert [p.exists() for p in logs] == [False, False, True, True]
        assert len(list(bg.log_dir.iterdir())) == 2
        # An undelivered task is kept past the limit; once drained, the oldest goes.
        kept = run_to_end(bg, prints("e"))
        assert list(bg.tasks) == [ids[3], kept]
        assert bg.tasks[kept]["status"] == "completed"
        bg.drain_notifications()
        assert list(bg.tasks) == [ids[3], kept]  # two: nothing past the limit
        newest = run_to_end(bg, "true")
        bg.drain_notifications()
        assert list(bg.tasks) == [kept, newest]


def test_in_a_log_dir_of_yours_the_records_go_and_the_files_stay(tmp_path):
    with bgagent.BackgroundManager(keep_finished=2, log_dir=tmp_path) as bg:
        _, logs = four_kept_two(bg)
        assert all(p.exists() and p.parent == tmp_path for p in logs)
    assert len(list(tmp_path.iterdir())) == 4


def test_tasks_stays_bounded_without_being_read():
    with bgagent.BackgroundManager(keep_finished=3, max_running=None) as bg:
        for _ in range(10):
            bg.wait(bg.start("true"), timeout=30)
            bg.drain_notifications()
        # Each start takes the let-go entries out (the dict the property hands out).
        assert len(bg._tasks) <= 4
        assert len(bg.tasks) == 3


def test_forget_lets_a_delivered_task_go_and_refuses_the_others(tmp_path):
    with bgagent.BackgroundManager(tmp_path, max_running=1, keep_finished=None, grace=0.3) as bg:
        with pytest.raises(KeyError, match="Unknown task nope"):
            bg.forget("nope")
        done = run_to_end(bg, prints("x"))
        log = Path(bg.info(done)["log_path"])
        with pytest.raises(ValueError, match="notification not yet delivered"):
            bg.forget(done)
        running = bg.start("until [ -e go ]; do sleep 0.01; done")
        queued = bg.start("true")
        assert bg.tasks[queued]["status"] == "queued"
        with pytest.raises(ValueError, match=f"Task {running} is running: only a finished"):
            bg.forget(running)
        with pytest.raises(ValueError, match=f"Task {queued} is queued: only a finished"):
            bg.forget(queued)
        assert [n["task_id"] for n in bg.drain_notifications()] == [done]
        bg.forget(done)
        assert done not in bg.tasks and not log.exists()
        with pytest.raises(KeyError):
            bg.info(done)
        (tmp_path / "go").touch()
        bg.wait(queued, timeout=30)
        assert bg.wait_for_finished(timeout=30)
        bg.drain_notifications()
        bg.forget(running)
        bg.forget(queued)
        assert bg.tasks == {} and bg.check() == "No background tasks."


def test_past_the_log_budget_the_oldest_logs_go_first_and_info_says_so():
    with bgagent.BackgroundManager(log_budget=2 * SIZE + 10, keep_finished=None) as bg:
        ids = [run_to_end(bg, prints(c)) for c in "abc"]
        first, second, third = (bg.info(i) for i in ids)
        assert first["log_removed"] is True and first["log_path"] is None
        assert first["log_bytes"] == SIZE and len(first["result"]) == SIZE
        for kept in (second, third):
            assert kept["log_removed"] is False and Path(kept["log_path"]).exists()
        assert len(list(bg.log_dir.iterdir())) == 2


@pytest.mark.parametrize("make", ["s08", "agent"])
def test_the_mirror_keeps_every_finished_task(make, tmp_path):
    if make == "s08":
        from bgagent import s08

        bg = s08.BackgroundManager(tmp_path)
    else:
        bg = bgagent.Agent(model="m", workdir=tmp_path, mirror=True, echo=False).manager
    with bg:
        count = 1001  # one past production's keep_finished
        for _ in range(count):
            bg.start("true")
        bg.wait_for_finished(timeout=None)
        while bg.has_running_tasks():
            bg.wait_for_notifications()
        bg.drain_notifications()
        bg.run("true")
        assert len(bg.tasks) == count + 1


def test_wait_for_finished_leaves_the_queue_to_its_reader(tmp_path):
    with bgagent.BackgroundManager(tmp_path) as bg:
        task_id = bg.start("until [ -e go ]; do sleep 0.01; done; echo done")
        assert bg.wait_for_finished(timeout=0.05) is False  # it cannot end before `go`
        (tmp_path / "go").touch()
        assert bg.wait_for_finished() is True
        assert bg.wait_for_finished() is True  # still queued: it does not wait again
        notes = bg.drain_notifications()
        assert [(n["task_id"], n["result"]) for n in notes] == [(task_id, "done")]
        assert bg.wait_for_finished() is True  # nothing runs


def test_wait_for_finished_async_leaves_the_queue_to_its_reader(tmp_path):
    async def main() -> list:
        async with bgagent.BackgroundManager(tmp_path) as bg:
            bg.start("until [ -e go ]; do sleep 0.01; done; echo done")
            assert await bg.wait_for_finished_async(timeout=0.05) is False
            (tmp_path / "go").touch()
            assert await bg.wait_for_finished_async() is True
            return bg.drain_notifications()

    notes = asyncio.run(main())
    assert [n["result"] for n in notes] == ["done"]
