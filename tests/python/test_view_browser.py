"""`bgagent view` pages in a real headless browser (Debian's chromium, driven over the DevTools
protocol): the demo's page loads without console errors, has one lane per task, steps with the
arrow keys, and a screenshot is written for a person to look at (target/screenshots/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

websocket = pytest.importorskip("websocket", reason="the browser tests need websocket-client")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium (scripts/test installs it)")
SHOTS = Path(__file__).resolve().parents[2] / "target" / "screenshots"


class Browser:
    """One headless chromium and one page, spoken to over the DevTools protocol."""

    def __init__(self) -> None:
        # Chromium now and then exits at start on a loaded machine without a word on why:
        # a few tries, and what it said if none works.
        said: list[str] = []
        for _ in range(3):
            url = self.start(said)
            if url:
                break
            self.proc.wait(timeout=60)
            shutil.rmtree(self.profile, ignore_errors=True)
        assert url, f"chromium did not start its DevTools endpoint; it said: {said}"
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def start(self, said: list[str]) -> str | None:
        """Starts chromium; the DevTools URL it prints, or None if it exits first (what it
        printed until then goes into `said`)."""
        self.profile = tempfile.mkdtemp(prefix="bgagent-chromium-")
        self.proc = subprocess.Popen(
            [
                BROWSER,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--window-size=1600,1000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in self.proc.stderr:
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1)
            said.append(line)
        return None

    def call(self, method: str, session: bool = False, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))

    def open(self, path: Path) -> float:
        """Loads the page; returns the seconds from navigation to the load event."""
        start = time.perf_counter()
        self.call("Page.navigate", session=True, url=path.as_uri())
        self.wait_for("Page.loadEventFired")
        return time.perf_counter() - start

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    def key(self, name: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                session=True,
                type=kind,
                key=name,
                code=name,
                windowsVirtualKeyCode=code,
            )

    def errors(self) -> list[dict]:
        self.evaluate("1")  # lets pending events arrive
        return [
            e
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ]

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def bgagent_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bgagent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_the_demos_page_loads_shows_every_task_and_steps_with_the_keys(browser, tmp_path):
    demo = bgagent_cli("--demo", "--trace", "demo.jsonl", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    view = bgagent_cli("view", "demo.jsonl", "-o", "demo.html", cwd=tmp_path)
    assert view.returncode == 0, view.stderr
    page = tmp_path / "demo.html"
    assert page.stat().st_size < 300 * 1024
    trace = [json.loads(line) for line in (tmp_path / "demo.jsonl").read_text().splitlines()]
    tasks = {e["task_id"] for e in trace if e["event"] == "task_queued"}
    browser.open(page)
    assert browser.errors() == []
    lanes = browser.evaluate(
        "[...document.querySelectorAll('[data-task-id]')].map(e => e.dataset.taskId)"
    )
    assert sorted(lanes) == sorted(tasks) and len(tasks) == 5
    assert browser.evaluate("document.querySelectorAll('[data-lane=\"loop\"]').length") == 1
    first = browser.evaluate("document.getElementById('detail').innerText")
    assert browser.evaluate("document.body.dataset.step") == "0"
    browser.key("ArrowRight", 39)
    browser.key("ArrowRight", 39)
    assert browser.evaluate("document.body.dataset.step") == "2"
    assert browser.evaluate("document.getElementById('detail').innerText") != first
    browser.key("ArrowLeft", 37)
    assert browser.evaluate("document.body.dataset.step") == "1"
    assert browser.evaluate("document.querySelector('#steps li.current').dataset.step") == "1"
    assert browser.errors() == []
    browser.screenshot(SHOTS / "demo-timeline.png")


def synthetic_trace(tasks: int) -> list[str]:
    """A long run: `tasks` background tasks, each started by a model call and a tool call,
    with progress, an end, a drain and an injection (10 events per task)."""
    lines = [
        json.dumps(
            {
                "t": 0,
                "event": "header",
                "schema": "bgagent-trace",
                "version": 1,
                "mode": "production",
                "model": "synthetic",
                "workdir": "/w",
            }
        )
    ]
    t = 0.0
    for i in range(tasks):
        tid = f"{i:08x}"
        for event in (
            {"event": "model_call", "turn": 1, "call": i + 1},
            {
                "event": "model_reply",
                "turn": 1,
                "call": i + 1,
                "stop_reason": "tool_use",
                "text": f"step {i}",
            },
            {
                "event": "tool_call",
                "turn": 1,
                "call": i + 1,
                "name": "background_run",
                "input": "{}",
            },
            {"event": "task_queued", "task_id": tid, "command": f"make part{i}"},
            {"event": "task_started", "task_id": tid, "pid": 1000 + i},
            {
                "event": "tool_result",
                "turn": 1,
                "call": i + 1,
                "name": "background_run",
                "task_id": tid,
                "output": f"Background task {tid} started: make part{i}",
            },
            {"event": "task_progress", "task_id": tid, "stdout_bytes": 100, "stderr_bytes": 0},
            {"event": "task_finished", "task_id": tid, "status": "completed", "exit_code": 0},
            {"event": "drain", "turn": 1, "call": i + 2, "task_ids": [tid]},
            {
                "event": "inject",
                "turn": 1,
                "call": i + 2,
                "task_ids": [tid],
                "text": "<background-results>",
            },
        ):
            t += 0.01
            lines.append(json.dumps({"t": round(t, 6), **event}))
    return lines


def test_a_ten_thousand_event_trace_renders(browser, tmp_path):
    trace = tmp_path / "big.jsonl"
    trace.write_text("\n".join(synthetic_trace(1000)) + "\n")
    assert len(trace.read_text().splitlines()) == 10_001
    view = bgagent_cli("view", str(trace), "-o", str(tmp_path / "big.html"), cwd=tmp_path)
    assert view.returncode == 0, view.stderr
    size = (tmp_path / "big.html").stat().st_size
    assert size < 2 * 1024 * 1024
    seconds = browser.open(tmp_path / "big.html")
    assert browser.errors() == []
    assert browser.evaluate("document.querySelectorAll('[data-task-id]').length") == 1000
    # A figure for the record, not an assertion (shared machines are noisy).
    print(f"10,001-line trace: HTML {size / 1024:.0f} KB, loaded in {seconds:.2f} s")


def page_of(events: list, tmp_path: Path) -> Path:
    """`bgagent view` of these events (dicts, or lines as they are), written as the trace writer
    writes (U+2028 as it is, not escaped)."""
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    view = bgagent_cli("view", str(trace), "-o", str(tmp_path / "trace.html"), cwd=tmp_path)
    assert view.returncode == 0, view.stderr
    return tmp_path / "trace.html"


def step_through(browser: Browser, steps: int) -> list[str]:
    """What the step-through shows at each step, stepping with the right arrow key."""
    shown = []
    for step in range(steps):
        assert browser.evaluate("document.body.dataset.step") == str(step)
        shown.append(browser.evaluate("document.getElementById('detail').innerText"))
        browser.key("ArrowRight", 39)
    return shown


HEADER = {"t": 0, "event": "header", "schema": "bgagent-trace", "version": 1, "mode": "production"}


def test_no_text_in_a_reply_stops_the_pages_script(browser, tmp_path):
    """`<!--<script>` made the HTML parser read the rest of the page as part of the inline data
    block, and so did a conditional comment cut at the 1,000 characters the step-through shows;
    `</script>` must not end the block either."""
    replies = [
        "<!--<script>",
        "x" * 988 + "<!--[if IE]><p>for old browsers</p><![endif]-->",
        "</script><script>document.title='replaced'</script>\u2028\u2029 & > end",
    ]
    events: list = [HEADER, {"t": 0.1, "event": "user_input", "turn": 1, "text": "<!--<script>"}]
    for i, text in enumerate(replies):
        events.append({"t": 1 + i, "event": "model_call", "turn": 1, "call": i + 1})
        events.append({"t": 1.5 + i, "event": "model_reply", "call": i + 1, "text": text})
    browser.open(page_of(events, tmp_path))
    assert browser.errors() == []
    shown = step_through(browser, 3)
    assert "<!--<script>" in shown[0]
    # Cut at 1,000 characters: the comment is left open.
    assert "x<!--[if IE]>" in shown[1] and "<p>" not in shown[1]
    assert "</script><script>document.title='replaced'</script>" in shown[2]
    assert browser.evaluate("document.title").startswith("bgagent run")
    assert browser.errors() == []


def test_times_out_of_range_leave_the_step_through_working(browser, tmp_path):
    """`t` of ±1.7e308 made durations null in the page's data, and the step-through threw. A
    `t` of NaN is not JSON: that line is skipped. An ANSI colour in a command stays harmless."""
    events: list = [HEADER]
    for call in (1, 2):
        events.append({"t": -1.7e308, "event": "model_call", "turn": 1, "call": call})
        events.append({"t": 1.7e308, "event": "model_reply", "call": call, "text": "hi"})
    events.insert(2, '{"t": NaN, "event": "model_call", "turn": 1, "call": 9}')
    events.append({"t": 2, "event": "task_queued", "task_id": "a", "command": "\x1b[31mmake"})
    events.append({"t": 3, "event": "task_finished", "task_id": "a", "status": "completed"})
    browser.open(page_of(events, tmp_path))
    assert browser.errors() == []
    shown = step_through(browser, 2)
    assert all("NaN" not in text and "Infinity" not in text for text in shown), shown
    assert browser.evaluate("document.querySelectorAll('[data-task-id]').length") == 1
    assert browser.errors() == []
