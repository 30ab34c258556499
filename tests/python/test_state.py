"""Durable task records from Python (`BackgroundManager(state=..., adopt=...)`): a result
outlives its manager, a killed process's task ends `killed` once and its notification goes to
the manager that adopts it, and files that are not bgagent's are refused untouched."""

import os
import signal
import subprocess
import sys
import textwrap

import bgagent
import pytest
from helpers import new_marker, processes_with, wait_until


def test_a_finished_task_outlives_its_manager(tmp_path):
    state = tmp_path / "state" / "bg.db"
    first = bgagent.BackgroundManager(tmp_path, state=state)
    task_id = first.start("echo kept")
    first.wait(task_id, timeout=60)
    owner = first.owner_id
    assert owner and first.stored()[0]["owner_alive"] is True
    del first  # the owner ends with its manager
    with bgagent.BackgroundManager(tmp_path, state=state) as second:
        [task] = second.stored()
        assert task.keys() == bgagent.StoredTask.__annotations__.keys()
        assert (task["id"], task["owner"], task["owner_alive"]) == (task_id, owner, False)
        assert (task["status"], task["result"], task["exit_code"]) == ("completed", "kept", 0)
        # Listed, not taken: it was not this manager's, and it was not adopted.
        assert second.drain_notifications() == [] and second.tasks == {}
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    assert oct(state.parent.stat().st_mode & 0o777) == "0o700"


CHILD = textwrap.dedent(
    """
    import sys, bgagent
    bg = bgagent.BackgroundManager(sys.argv[1], state=sys.argv[2])
    bg.start(sys.argv[3])
    print(bg.owner_id, flush=True)
    sys.stdin.read()  # held until killed
    """
)


def test_a_killed_processs_task_ends_killed_and_goes_to_its_adopter_once(tmp_path):
    state, marker = tmp_path / "bg.db", new_marker()
    ran = tmp_path / "ran"
    command = f"echo {marker} >> {ran}; until [ -e never ]; do sleep 0.01; done"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(state), command],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        owner = child.stdout.readline().strip()
        wait_until(lambda: ran.exists() and processes_with(marker), "the task runs")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        child.kill()
    # Its supervisor ends the task when the process dies.
    wait_until(lambda: not processes_with(marker), "the task is killed with its owner", 60)
    with bgagent.BackgroundManager(tmp_path, state=state) as bystander:
        [task] = bystander.stored()
        assert (task["owner"], task["owner_alive"], task["status"]) == (owner, False, "killed")
        assert bystander.drain_notifications() == []
    with bgagent.BackgroundManager(tmp_path, state=state, adopt=owner) as adopter:
        [note] = adopter.drain_notifications()
        assert note["status"] == "killed"
        assert note["result"].startswith(
            f"Error: Killed: the process that ran this task (owner {owner})"
        )
        assert adopter.tasks[note["task_id"]]["status"] == "killed"
        assert adopter.drain_notifications() == []
    with pytest.raises(ValueError, match=f"cannot adopt owner {owner}"):
        bgagent.BackgroundManager(tmp_path, state=state, adopt=owner)
    assert ran.read_text().split() == [marker], "the command ran once"


def test_what_is_not_a_state_file_is_refused_untouched(tmp_path):
    with pytest.raises(ValueError, match="adopt needs a state file"):
        bgagent.BackgroundManager(tmp_path, adopt="abc")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="is not a bgagent state file"):
        bgagent.BackgroundManager(tmp_path, state=junk)
    assert junk.read_bytes() == b"not sqlite at all" * 100
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="cannot use the state file"):
        bgagent.BackgroundManager(tmp_path, state=tmp_path / "file" / "bg.db")
