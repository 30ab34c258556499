"""Traces from Python (Agent, BackgroundManager, the async API) and their pictures: the order,
the joins result -> drain -> model call, and the lesson's gap (a result left in the queue)."""

import asyncio
import json
import subprocess
import sys
from xml.etree import ElementTree

import bgagent
import pytest
from helpers import wait_until


def reply(*blocks, stop="end_turn"):
    return {"content": list(blocks), "stop_reason": stop}


def say(text):
    return {"type": "text", "text": text}


def use(tool_id, name, **args):
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args}


def events(lines):
    return [json.loads(line) for line in lines]


def check_order(trace):
    times = [e["t"] for e in trace]
    assert times == sorted(times), "t never decreases"
    assert trace[0]["event"] == "header" and trace[0]["version"] == 2


def test_the_lessons_gap_is_traced_and_drawn(tmp_path):
    """Mirror mode: the loop returns at end_turn while the task runs; its result waits in the
    queue and reaches the model only with the next message (call 3)."""
    client = bgagent.ScriptedClient(
        [
            reply(
                use(
                    "t1",
                    "background_run",
                    command="until [ -e gate ]; do sleep 0.01; done; echo built",
                ),
                stop="tool_use",
            ),
            reply(say("started")),
            reply(say("it was built")),
        ]
    )
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, mirror=True, echo=False)
    agent.run("build it")
    (tmp_path / "gate").touch()
    task = next(iter(agent.manager.tasks))
    agent.manager.wait(task, timeout=60)
    agent.run("and?")
    trace = events(agent.timeline().lines)
    check_order(trace)
    assert trace[0]["mode"] == "mirror"
    kinds = [e["event"] for e in trace]
    for kind in (
        "user_input",
        "model_call",
        "model_reply",
        "tool_call",
        "tool_result",
        "task_queued",
        "task_started",
        "task_finished",
        "drain",
        "inject",
        "turn_end",
    ):
        assert kind in kinds, kind
    (queued,) = [e for e in trace if e["event"] == "task_queued"]
    (result,) = [e for e in trace if e["event"] == "tool_result"]
    assert queued["task_id"] == result["task_id"] == task
    (finished,) = [e for e in trace if e["event"] == "task_finished"]
    assert finished["status"] == "completed" and finished["result"] == "built"
    assert finished["stdout_bytes"] == 6 and finished["duration"] > 0
    (inject,) = [e for e in trace if e["event"] == "inject"]
    assert inject["task_ids"] == [task] and inject["call"] == 3
    assert "wait_start" not in kinds  # the lesson's loop does not wait
    turn_ends = [e for e in trace if e["event"] == "turn_end"]
    assert finished["t"] > turn_ends[0]["t"]  # it ended while the loop was idle
    page = agent.timeline().html()
    assert f"data-task-id='{task}'" in page and "data-lane='loop'" in page
    assert "in the queue while the loop was idle" in page
    assert page.count("<li data-step=") == 3


def test_production_waits_at_the_end_of_the_turn_and_says_why(tmp_path):
    client = bgagent.ScriptedClient(
        [
            reply(use("t1", "background_run", command="sleep 0.2; echo done"), stop="tool_use"),
            reply(say("waiting")),
            reply(say("done")),
        ]
    )
    path = tmp_path / "run.jsonl"
    with bgagent.Agent(model="m", client=client, workdir=tmp_path, echo=False, trace=path) as agent:
        assert agent.run("go") == "done"
        timeline = agent.timeline()
    trace = events(path.read_text().splitlines())
    check_order(trace)
    assert trace[0]["mode"] == "production" and trace[0]["model"] == "m"
    (start,) = [e for e in trace if e["event"] == "wait_start"]
    (end,) = [e for e in trace if e["event"] == "wait_end"]
    assert (start["running"], end["why"]) == (1, "results")
    (inject,) = [e for e in trace if e["event"] == "inject"]
    assert inject["call"] == 3
    assert timeline.lines[0] == path.read_text().splitlines()[0]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bgagent",
            "view",
            str(path),
            "-o",
            str(tmp_path / "run.html"),
            "--svg",
            str(tmp_path / "run.svg"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run.svg").read_text().startswith("<svg")
    assert "data-task-id" in (tmp_path / "run.html").read_text()


def test_texts_are_cut_with_their_length_and_keys_never_appear(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-trace-secret-123")
    long = "x" * 5000
    client = bgagent.ScriptedClient(
        [
            reply(
                use("t1", "bash", command="echo $ANTHROPIC_API_KEY; echo sk-trace-secret-123"),
                stop="tool_use",
            ),
            reply(say(long)),
        ]
    )
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, echo=False, pass_api_key=True)
    agent.run("go")
    lines = agent.timeline().lines
    assert not any("sk-trace-secret-123" in line for line in lines)
    (last,) = [e for e in events(lines) if e["event"] == "model_reply" and e["call"] == 2]
    assert len(last["text"]) == 2000 and last["text_length"] == 5000


def test_a_manager_with_a_trace_file_records_its_tasks(tmp_path):
    path = tmp_path / "tasks.jsonl"
    with bgagent.BackgroundManager(tmp_path, trace=path, grace=0.3) as bg:
        task = bg.start("echo hi; exit 2")
        bg.wait(task, timeout=60)
        bg.drain_notifications()
    wait_until(lambda: "task_drained" in path.read_text(), "the drain is traced")
    trace = events(path.read_text().splitlines())
    check_order(trace)
    chain = [e["event"] for e in trace if e.get("task_id") == task]
    assert chain[:2] == ["task_queued", "task_started"] and chain[-2:] == [
        "task_finished",
        "task_drained",
    ]
    (finished,) = [e for e in trace if e["event"] == "task_finished"]
    # Its 3 bytes of output are all in its result: they stay in memory, with no file.
    assert finished["exit_code"] == 2 and finished["log_path"] is None


def test_the_async_api_is_traced_too(tmp_path):
    client = bgagent.ScriptedClient(
        [reply(use("t1", "bash", command="echo hi"), stop="tool_use"), reply(say("ok"))]
    )

    async def main():
        agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, echo=False)
        await agent.run_async("go")
        return agent

    agent = asyncio.run(main())
    kinds = [e["event"] for e in events(agent.timeline().lines)]
    assert kinds.count("model_call") == 2 and "tool_result" in kinds and kinds[-1] == "turn_end"


def test_a_timeline_saves_html_and_svg_and_shows_in_a_notebook(tmp_path):
    client = bgagent.ScriptedClient([reply(say("hi"))])
    agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, echo=False)
    agent.run("go")
    timeline = agent.timeline()
    assert timeline.save(tmp_path / "t.html").read_text().startswith("<!DOCTYPE html>")
    assert timeline.save(tmp_path / "t.svg").read_text().startswith("<svg")
    assert timeline._repr_html_().startswith("<iframe srcdoc=")
    with pytest.raises(FileNotFoundError):
        bgagent.Timeline.from_trace(tmp_path / "missing.jsonl")


def view(*args):
    return subprocess.run(
        [sys.executable, "-m", "bgagent", "view", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


HEADER = {"t": 0, "event": "header", "schema": "bgagent-trace", "version": 1, "mode": "production"}


def test_a_trace_cut_inside_a_character_shows_all_but_its_last_line_with_a_warning(tmp_path):
    """A trace read while it is written (or left by a full disk) can end inside a UTF-8
    character: it was refused whole."""
    whole = [HEADER, {"t": 1, "event": "task_queued", "task_id": "a", "command": "café"}]
    cut = json.dumps(
        {"t": 2, "event": "task_queued", "task_id": "b", "command": "café"}, ensure_ascii=False
    )
    text = "\n".join(json.dumps(e, ensure_ascii=False) for e in whole) + "\n" + cut
    path = tmp_path / "cut.jsonl"
    data = text.encode()
    assert data.endswith(b'\xc3\xa9"}')
    path.write_bytes(data[:-3])  # it ends after the first of é's two bytes
    out = view(path, "-o", tmp_path / "cut.html", "--svg", tmp_path / "cut.svg")
    assert out.returncode == 0, out.stderr
    assert "the last line of" in out.stderr and "is cut" in out.stderr
    assert "data-task-id='a'" in (tmp_path / "cut.html").read_text()
    assert "data-task-id='b'" not in (tmp_path / "cut.svg").read_text()
    with pytest.warns(UserWarning, match="the last line of .* is cut"):
        timeline = bgagent.Timeline.from_trace(path)
    assert [json.loads(line) for line in timeline.lines] == whole
    assert "data-task-id='a'" in timeline.svg()


def test_a_whole_trace_is_read_without_a_warning_and_split_only_at_newlines(tmp_path, recwarn):
    """The writer leaves U+2028 and U+0085 in a text as they are; str.splitlines() cut such a
    line in two and lost the event."""
    events = [HEADER, {"t": 1, "event": "user_input", "turn": 1, "text": "a\u2028b\x85c"}]
    path = tmp_path / "whole.jsonl"
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\r\n" for e in events), "utf-8")
    timeline = bgagent.Timeline.from_trace(path)
    assert [json.loads(line) for line in timeline.lines] == events
    assert "turn 1" in timeline.svg()
    assert not recwarn.list


def test_the_picture_is_well_formed_xml_whatever_a_command_prints(tmp_path):
    """An ANSI colour's ESC in a command made `--svg` invalid XML."""
    command = "printf '\x1b[31mred\x1b[0m\x07\x00' && echo \ufffe"
    events = [
        {**HEADER, "model": "m\x1b"},
        {"t": 1, "event": "task_queued", "task_id": "a", "command": command},
        {"t": 2, "event": "task_finished", "task_id": "a", "status": "completed\x1b[0m"},
    ]
    path = tmp_path / "ansi.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    out = view(path, "--svg", tmp_path / "ansi.svg")
    assert out.returncode == 0, out.stderr
    for picture in ((tmp_path / "ansi.svg").read_text(), bgagent.Timeline.from_trace(path).svg()):
        root = ElementTree.fromstring(picture)
        (lane,) = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("data-task-id")]
        assert "[31mred[0m" in "".join(lane.itertext())
