"""The asyncio face of BackgroundManager: awaitables that hold no thread, cancel at once, and
work in any running loop (a fork worker's too)."""

import asyncio
import multiprocessing
import signal
import subprocess
import sys

import bgagent
import pytest
from helpers import new_marker, processes_with, wait_until


def gated(tmp_path, name: str) -> str:
    """A command that ends (printing `name`) once the test opens its gate, a file in the
    manager's work directory, `tmp_path`."""
    return f"until [ -e gate-{name} ]; do sleep 0.01; done; echo {name}"


def open_gate(tmp_path, name: str) -> None:
    (tmp_path / f"gate-{name}").touch()


def test_awaited_answers_are_the_blocking_ones(tmp_path):
    async def main():
        async with bgagent.BackgroundManager(tmp_path, grace=0.3) as bg:
            task = bg.start("echo out; exit 3")
            answer = await bg.wait_async(task, timeout=60)
            assert answer == bg.wait(task) == "[completed] echo out; exit 3\nout"
            assert await bg.wait_async("nope") == "Error: Unknown task nope"
            notes = await bg.wait_for_notifications_async(timeout=60)
            assert [(n["task_id"], n["exit_code"]) for n in notes] == [(task, 3)]
            running = bg.start(gated(tmp_path, "late"))
            # Timed out: the blocking calls' answers for a task still running.
            assert await bg.wait_async(running, timeout=0.05) == bg.check(running)
            assert await bg.wait_for_notifications_async(timeout=0.05) == []
            assert (
                await bg.kill_async(running) == f"[killed] {gated(tmp_path, 'late')}\nError: Killed"
            )
            assert await bg.kill_async(running) == f"Error: Task {running} is not running (killed)"
            return bg

    bg = asyncio.run(main())
    assert not bg.has_running_tasks()


def test_many_awaited_waits_do_not_queue_behind_each_other(tmp_path):
    """Twelve waits at once, on three managers; the tasks end in reverse order, and each wait
    must end as its task does (a pool of a few threads would hold the later ones back)."""
    names = [f"t{i}" for i in range(12)]

    async def main():
        managers = [bgagent.BackgroundManager(tmp_path, grace=0.3) for _ in range(3)]
        ids = {n: managers[i % 3].start(gated(tmp_path, n)) for i, n in enumerate(names)}
        waits = {
            n: asyncio.ensure_future(managers[i % 3].wait_async(ids[n], timeout=120))
            for i, n in enumerate(names)
        }
        order = []
        for n in reversed(names):
            open_gate(tmp_path, n)
            answer = await waits[n]
            order.append(n)
            assert answer == f"[completed] {gated(tmp_path, n)}\n{n}"
            assert not any(waits[m].done() for m in names if m not in order)
        return order

    assert asyncio.run(main()) == list(reversed(names))


def test_cancelling_an_awaited_wait_leaves_the_task_and_the_manager_as_they_were(tmp_path):
    async def main():
        async with bgagent.BackgroundManager(tmp_path, grace=0.3) as bg:
            task = bg.start(gated(tmp_path, "a"))
            for call in (
                bg.wait_async(task),
                bg.wait_for_notifications_async(),
                bg.notifications().__anext__(),
            ):
                waiting = asyncio.ensure_future(call)
                await asyncio.sleep(0)  # let it start waiting
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
            assert bg.check(task) == f"[running] {gated(tmp_path, 'a')}\n(running)"
            open_gate(tmp_path, "a")
            assert await bg.wait_async(task, timeout=60) == f"[completed] {gated(tmp_path, 'a')}\na"
            assert [n["task_id"] for n in await bg.wait_for_notifications_async(60)] == [task]

    asyncio.run(main())


def test_notifications_iterate_as_tasks_end_and_stop_when_all_is_done(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3) as bg:
        first = bg.start(gated(tmp_path, "one"))
        second = bg.start("echo two")
        seen = []
        for note in bg.notifications(timeout=60):
            seen.append(note["task_id"])
            if note["task_id"] == second:
                open_gate(tmp_path, "one")
        assert seen == [second, first]
        assert list(bg.notifications()) == []  # nothing runs, nothing queued: ends at once

        late = bg.start(gated(tmp_path, "late"))
        with pytest.raises(TimeoutError, match="no notification within 0.05 s"):
            next(iter(bg.notifications(timeout=0.05)))
        open_gate(tmp_path, "late")

        async def collect():
            return [n["task_id"] async for n in bg.notifications(timeout=60)]

        assert asyncio.run(collect()) == [late]


def test_shutdown_async_and_async_with_stop_every_task(tmp_path):
    async def main():
        async with bgagent.BackgroundManager(tmp_path, grace=0.3) as bg:
            ids = [bg.start(gated(tmp_path, f"never{i}")) for i in range(3)]
        return bg, ids

    bg, ids = asyncio.run(main())
    assert [bg.tasks[i]["status"] for i in ids] == ["killed"] * 3
    other = bgagent.BackgroundManager(tmp_path, grace=0.3)
    task = other.start(gated(tmp_path, "never"))
    asyncio.run(other.shutdown_async())
    assert other.tasks[task]["status"] == "killed"


def awaits_in_a_fork_worker(gate: str) -> str:
    async def main():
        bg = bgagent.BackgroundManager(grace=0.3)
        return await bg.wait_async(bg.start(f"test -e {gate} && echo seen"), timeout=60)

    return asyncio.run(main())


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_awaitables_work_in_a_fork_worker(tmp_path):
    gate = tmp_path / "gate"
    gate.touch()
    # The parent has used the runtime first, so the worker inherits it and must make its own.
    assert asyncio.run(bgagent.BackgroundManager().wait_async("none")) == "Error: Unknown task none"
    with multiprocessing.get_context("fork").Pool(1) as pool:
        answer = pool.apply(awaits_in_a_fork_worker, (str(gate),))
    assert answer.endswith("\nseen")


SIGINT_SCRIPT = """
import asyncio, sys, bgagent
from pathlib import Path
bg = bgagent.BackgroundManager(sys.argv[1], grace=0.3)
task = bg.start("sleep 300 # task " + sys.argv[2])
client = bgagent.ScriptedClient([{"content": [
    {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "sleep 300 # agent " + sys.argv[2]}}],
    "stop_reason": "tool_use"}])
agent = bgagent.Agent(model="m", client=client, workdir=sys.argv[1], echo=False)

async def main():
    if sys.argv[3] == "wait":
        await bg.wait_async(task)
    else:
        await agent.run_async("go")

try:
    asyncio.run(main())  # Ctrl-C: asyncio.run cancels main() and raises KeyboardInterrupt
except KeyboardInterrupt:
    print("KeyboardInterrupt")
    print(bg.check(task).splitlines()[0])
    print([b.get("content") for b in agent.messages[-1]["content"]] if agent.messages else [])
"""


@pytest.mark.parametrize("what", ["wait", "agent"])
def test_ctrl_c_during_asyncio_run_raises_keyboard_interrupt_and_keeps_things_valid(tmp_path, what):
    marker = new_marker()
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGINT_SCRIPT, str(tmp_path), marker, what],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The await has begun once the task (or the agent's bash tool) runs.
    wait_until(lambda: processes_with(f"task {marker}"), "the task runs")
    if what == "agent":
        wait_until(lambda: processes_with(f"agent {marker}"), "the agent's command runs")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines = out.splitlines()
    assert lines[0] == "KeyboardInterrupt", err
    assert lines[1] == f"[running] sleep 300 # task {marker}"
    if what == "agent":
        assert lines[2] == "['Error: Interrupted by the user']"
    wait_until(lambda: not processes_with(f"agent {marker}"), "the interrupted command is gone")


EXIT_RIGHT_AFTER_AWAITS = """
import asyncio, bgagent, tempfile
client = bgagent.ScriptedClient([
    {"content": [{"type": "tool_use", "id": "t1", "name": "background_run",
                  "input": {"command": "echo built"}}], "stop_reason": "tool_use"},
    {"content": [{"type": "text", "text": "started"}], "stop_reason": "end_turn"},
    {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"},
])
async def main():
    async with bgagent.Agent(model="m", client=client, workdir=tempfile.mkdtemp(), echo=False) as a:
        await a.run_async("go")
        await a.manager.wait_for_notifications_async(timeout=0)
asyncio.run(main())
"""


def test_the_interpreter_exits_cleanly_right_after_awaits():
    """Results handed to asyncio from the core's threads must land before Python finalizes (a
    thread taking the GIL then aborts the process): each run exits 0."""
    codes = [
        subprocess.run(
            [sys.executable, "-c", EXIT_RIGHT_AFTER_AWAITS],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        for _ in range(10)
    ]
    assert [(c.returncode, c.stderr[-300:]) for c in codes] == [(0, "")] * 10
