"""The cap on running tasks (`max_running`) from Python: real processes that mark themselves
while they run, held open by a file each until the test lets them go."""

import re
import time

import bgagent
import pytest
from bgagent import s08
from helpers import wait_until


def held(k: int) -> str:
    """Marks itself running (`run.K`), notes how many are marked, waits for `go.K`, unmarks."""
    return (
        f"touch run.{k}; ls | grep -c '^run\\.' >> counts; "
        f"until [ -e go.{k} ]; do sleep 0.01; done; rm run.{k}"
    )


@pytest.fixture
def capped(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3, max_running=2) as bg:
        yield bg


def lifecycle(events):
    """Every event waiting on the subscription, progress left out: (task_id, event, dict)."""
    got = []
    while (e := events.next(timeout=0)) is not None:
        if e["event"] != "progress":
            got.append(e)
    return got


def test_at_most_the_cap_run_and_the_line_is_first_come_first_started(capped, tmp_path):
    events = capped._core.subscribe()
    since = time.monotonic()
    ids = [capped.start(held(k)) for k in range(5)]
    wait_until(lambda: (tmp_path / "run.0").exists() and (tmp_path / "run.1").exists(), "two run")
    assert [capped.tasks[i]["status"] for i in ids] == ["running"] * 2 + ["queued"] * 3
    assert capped.info(ids[2])["status"] == "queued"
    assert capped.info(ids[2])["pid"] is None
    assert capped.check(ids[3]) == f"[queued] {held(3)[:60]}\n(queued: 2nd in line, 2 running)"
    assert f"{ids[4]}: [queued] " in capped.check()
    started = []
    for k in range(5):
        (tmp_path / f"go.{k}").touch()
        assert capped.wait(ids[k], timeout=60).startswith("[completed]")
        if k + 2 < 5:
            mark = tmp_path / f"run.{k + 2}"
            wait_until(mark.exists, f"task {k + 2} runs")
    seen = lifecycle(events)
    # Each event carries its time, on time.monotonic()'s clock, in order.
    times = [e["time"] for e in seen]
    assert since <= times[0] and times == sorted(times) and times[-1] <= time.monotonic()
    started = [e["task_id"] for e in seen if e["event"] == "started"]
    # The first two start at once, each on its own runtime thread: either may report first.
    assert sorted(started[:2]) == sorted(ids[:2]), seen
    assert started[2:] == ids[2:], "first come, first started"
    running = 0
    for e in seen:
        running += {"started": 1, "finished": -1}.get(e["event"], 0)
        assert running <= 2, seen
    queued = {e["task_id"]: e.get("place") for e in seen if e["event"] == "queued"}
    assert [queued[i] for i in ids] == [None, None, 1, 2, 3]
    waited = {e["task_id"]: e.get("waited") for e in seen if e["event"] == "started"}
    assert waited[ids[0]] is None and waited[ids[4]] >= 0.0
    counts = [int(n) for n in (tmp_path / "counts").read_text().split()]
    assert len(counts) == 5 and max(counts) <= 2, counts
    assert capped.info(ids[4])["waited"] > 0.0


def test_run_says_where_a_queued_task_waits(capped, tmp_path):
    assert re.fullmatch(r"Background task [0-9a-f]{8} started: .*", capped.run(held(0)))
    capped.run(held(1))
    line = capped.run("echo three")
    match = re.fullmatch(
        r"Background task ([0-9a-f]{8}) queued \(1st in line, 2 running\): echo three", line
    )
    assert match, line
    assert capped.tasks[match.group(1)]["status"] == "queued"
    (tmp_path / "go.0").touch()
    (tmp_path / "go.1").touch()
    assert capped.wait(match.group(1), timeout=60) == "[completed] echo three\nthree"


def test_kill_and_shutdown_take_queued_tasks_out_of_the_line(tmp_path):
    bg = bgagent.BackgroundManager(tmp_path, grace=0.3, max_running=1)
    blocker = bg.start(held(0))
    first, second = bg.start(held(1)), bg.start(held(2))
    assert bg.kill(first) == f"[killed] {held(1)[:60]}\nError: Killed (never started)"
    info = bg.info(first)
    assert (info["status"], info["exit_code"], info["pid"]) == ("killed", None, None)
    assert bg.drain_notifications() == [
        {
            "task_id": first,
            "status": "killed",
            "command": held(1)[:80],
            "result": "Error: Killed (never started)",
            "exit_code": None,
            "duration": 0.0,
            "log_path": None,
            "tail": "",
        }
    ]
    assert bg.check(second).endswith("(queued: 1st in line, 1 running)")
    bg.shutdown()
    notes = {n["task_id"]: (n["status"], n["result"]) for n in bg.drain_notifications()}
    assert notes == {
        second: ("killed", "Error: Killed (never started)"),
        blocker: ("killed", "Error: Killed"),
    }
    assert bg.tasks[second]["status"] == "killed"
    assert not (tmp_path / "run.1").exists() and not (tmp_path / "run.2").exists()


def test_start_now_and_a_timeout_from_the_start(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3, max_running=1) as bg:
        bg.start(held(0))
        quick = bg.start("touch ran; sleep 60", timeout=0.3)
        # It waits longer than its own timeout, and still runs once started.
        wait_until(lambda: bg.info(quick)["waited"] > 0.6, "it waited past its timeout")
        assert bg.tasks[quick]["status"] == "queued"
        now = bg.start(held(1))
        assert bg.start_now(now).startswith("[running] ")
        assert bg.start_now(now) == f"Error: Task {now} is not queued (running)"
        assert bg.start_now("nosuch") == "Error: Unknown task nosuch"
        wait_until(lambda: (tmp_path / "run.1").exists(), "the forced task runs")
        assert bg.tasks[quick]["status"] == "queued", "it stays in line"
        (tmp_path / "go.0").touch()
        (tmp_path / "go.1").touch()
        assert bg.wait(quick, timeout=60) == "[timeout] touch ran; sleep 60\nError: Timeout (0.3s)"
        assert (tmp_path / "ran").exists()
        assert bg.info(quick)["elapsed"] >= 0.3


def test_defaults_the_mirror_and_bad_caps(tmp_path):
    cap = bgagent._core.DEFAULTS["max_running"]
    assert cap >= 4
    assert bgagent.BackgroundManager(tmp_path).max_running == cap
    assert bgagent.BackgroundManager(tmp_path, max_running=None).max_running is None
    assert s08.BackgroundManager(tmp_path).max_running is None
    assert bgagent.Agent(model="m", workdir=tmp_path, mirror=True).manager.max_running is None
    assert bgagent.Agent(model="m", workdir=tmp_path, max_running=3).manager.max_running == 3
    with pytest.raises(ValueError):
        bgagent.BackgroundManager(tmp_path, max_running=0)
    with pytest.raises(ValueError):
        bgagent.BackgroundManager(tmp_path).start("true", timeout=0)


def test_the_live_table_shows_queued_tasks(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3, max_running=1) as bg:
        bg.start(held(0))
        waiting = bg.start("echo later")
        text = bgagent._views.tasks_text(bg)
        row = next(line for line in text.splitlines() if line.startswith(waiting))
        assert "queued" in row and "waiting for a slot" in row
        assert "1 running, 1 queued" in bgagent._views.tasks_html(bg)
        (tmp_path / "go.0").touch()
