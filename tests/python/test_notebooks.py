"""The notebooks in examples/notebooks run headless in a real kernel, their cells asserting
what they show; and a kernel interrupt during an await stops it and leaves the tasks intact."""

import queue
import time
from pathlib import Path

import pytest
from helpers import new_marker, processes_with, wait_until

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel")
from jupyter_client.manager import start_new_kernel

NOTEBOOKS = sorted((Path(__file__).parents[2] / "examples" / "notebooks").glob("*.ipynb"))


def test_there_are_three_notebooks():
    assert [n.name[0] for n in NOTEBOOKS] == ["1", "2", "3"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_and_its_cells_hold(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError if a cell's assertion fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "bgagent-tasks" in html  # the task table was shown
    if path.name.startswith("2"):
        # The live view (the first cell's output), updated in place while the tasks ran: it
        # was shown when all three still ran, and ends showing none running.
        live = notebook.cells[1].outputs[0]["data"]["text/html"]
        assert live.count("data-task-id") >= 3
        assert ", 0 running</caption>" in live


class Kernel:
    """A kernel to run cells in, one at a time, and interrupt."""

    def __init__(self) -> None:
        self.manager, self.client = start_new_kernel(kernel_name="python3")

    def run(self, code: str, interrupt_when=None) -> tuple[dict, str]:
        """Runs `code`, interrupting the kernel once `interrupt_when(printed)` holds; returns
        the reply's content and the text it printed."""
        msg_id = self.client.execute(code)
        printed, interrupted = [], False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if interrupt_when and not interrupted and interrupt_when("".join(printed)):
                self.manager.interrupt_kernel()
                interrupted = True
            try:
                msg = self.client.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content.get("name") == "stdout":
                printed.append(content["text"])
            if kind == "status" and content["execution_state"] == "idle":
                break
        # The reply to this request: an earlier one (start-up's kernel_info) may still wait.
        while True:
            reply = self.client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"], "".join(printed)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel():
    k = Kernel()
    yield k
    k.close()


def test_a_kernel_interrupt_stops_an_await_and_leaves_the_tasks_intact(kernel, tmp_path):
    setup, _ = kernel.run(
        "import asyncio, bgagent\n"
        f"bg = bgagent.BackgroundManager({str(tmp_path)!r}, grace=0.3)\n"
        "task = bg.start('sleep 300')"
    )
    assert setup["status"] == "ok"
    # The cell says it waits (printed from inside the await), and the interrupt comes then.
    reply, _ = kernel.run(
        "async def wait():\n"
        "    waiting = asyncio.ensure_future(bg.wait_async(task))\n"
        "    await asyncio.sleep(0)\n"
        "    print('waiting', flush=True)\n"
        "    return await waiting\n"
        "await wait()",
        interrupt_when=lambda printed: "waiting" in printed,
    )
    assert reply["status"] == "error"
    assert reply["ename"] in ("CancelledError", "KeyboardInterrupt")
    after, printed = kernel.run("print(bg.check(task)); print(bg.kill(task).splitlines()[0])")
    assert after["status"] == "ok"
    assert printed == "[running] sleep 300\n(running)\n[killed] sleep 300\n"


def test_a_kernel_interrupt_stops_an_agent_run_with_every_tool_call_answered(kernel, tmp_path):
    marker = new_marker()
    setup, _ = kernel.run(
        "import bgagent\n"
        "client = bgagent.ScriptedClient([{'content': [\n"
        f"    {{'type': 'tool_use', 'id': 't1', 'name': 'bash', 'input': {{'command': 'sleep 300 # {marker}'}}}},\n"
        "    {'type': 'tool_use', 'id': 't2', 'name': 'bash', 'input': {'command': 'echo never'}}],\n"
        "    'stop_reason': 'tool_use'}])\n"
        f"agent = bgagent.Agent(model='m', client=client, workdir={str(tmp_path)!r})"
    )
    assert setup["status"] == "ok"
    reply, _ = kernel.run(
        "await agent.run_async('go')", interrupt_when=lambda _: processes_with(marker)
    )
    assert reply["status"] == "error"
    assert reply["ename"] in ("CancelledError", "KeyboardInterrupt")
    after, printed = kernel.run("print([b['content'] for b in agent.messages[-1]['content']])")
    assert after["status"] == "ok"
    assert printed == (
        "['Error: Interrupted by the user', "
        "'Error: Interrupted by the user before this tool ran']\n"
    )
    wait_until(lambda: not processes_with(marker), "the interrupted command is gone")
