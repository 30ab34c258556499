"""Runs named scenarios against one side, the lesson's file or `bgagent.s08`, and prints what
each observed as JSON: `python mirror_driver.py SIDE ROOT REFERENCE NAME...`.

Each scenario gets a fresh work directory ROOT/NAME (with the files of `make_workspace`), the
module's WORKDIR pointed at it and a fresh BG. Task ids are replaced by <ID1>, <ID2>, ... in
the order they appear, and ROOT by <ROOT>, so the two sides' answers compare as they are.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable

SCENARIOS: dict[str, Callable[[Any, Path], Any]] = {}


def scenario(f: Callable[[Any, Path], Any]) -> Callable[[Any, Path], Any]:
    SCENARIOS[f.__name__] = f
    return f


def load(side: str, reference: str) -> Any:
    if side == "mirror":
        from bgagent import s08

        return s08
    # The lesson imports these at the top; the scenarios assign their own client.
    sys.modules["anthropic"] = types.SimpleNamespace(Anthropic=lambda **kw: None)  # type: ignore[assignment]
    sys.modules["dotenv"] = types.SimpleNamespace(load_dotenv=lambda **kw: None)  # type: ignore[assignment]
    os.environ.setdefault("MODEL_ID", "test-model")
    spec = importlib.util.spec_from_file_location("lesson", reference)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_workspace(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "sub").mkdir()
    (root / "bad.bin").write_bytes(b"ab\xffcd")
    (root / "five.txt").write_text("1\n2\n3\n4\n5\n")
    (root / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    (root / "link").symlink_to("/etc")
    return root


def wait_all(m: Any, ids: Any = None, seconds: float = 60.0) -> None:
    """Polls (with a deadline) until none of the tasks `ids` (default: all) runs."""
    deadline = time.monotonic() + seconds
    while any(m.BG.tasks[i]["status"] == "running" for i in ids or list(m.BG.tasks)):
        if time.monotonic() > deadline:
            raise TimeoutError("tasks still running")
        time.sleep(0.01)


def lesson_note(note: dict) -> dict:
    """A notification without what only bgagent adds (listed as a deviation)."""
    return {k: v for k, v in note.items() if k != "exit_code"}


def run_and_wait(m: Any, command: Any) -> dict:
    started = m.BG.run(command)
    task_id = started.split()[2]
    wait_all(m, [task_id])
    return {
        "started": started,
        "check": m.BG.check(task_id),
        "list": m.BG.check(),
        "entry": m.BG.tasks[task_id],
        "notes": [lesson_note(n) for n in m.BG.drain_notifications()],
    }


# --- the manager, with many kinds of commands -------------------------------------------------

COMMANDS = {
    "empty": "",
    "failing": "echo oops >&2; exit 3",
    "huge": "yes 0123456789 | head -c 300000",
    "non_ascii": "printf 'ünïcödé-%.0s' $(seq 1 80); echo",
    "long_command": "echo " + "é" * 120,
    "mixed_streams": "echo a; echo b >&2; echo c",
    "trailing_blanks": "printf '\\n  x y  \\n\\n\\t'",
    "terminated": "echo before; kill -TERM $$",
    "killed": "kill -KILL $$",
}


@scenario
def manager_commands(m: Any, w: Path) -> Any:
    return {name: run_and_wait(m, command) for name, command in COMMANDS.items()}


@scenario
def manager_tasks_dict(m: Any, w: Path) -> Any:
    """The lesson's test style: entries planted in BG.tasks, read back through check()."""
    same = m.BG.tasks is m.BG.tasks
    m.BG.tasks["abc123"] = {"status": "completed", "result": "planted", "command": "echo hi"}
    m.BG.tasks["def456"] = {"status": "running", "result": None, "command": "sleep 1"}
    planted = [m.BG.check("abc123"), m.BG.check("def456"), m.BG.check()]
    ran = run_and_wait(m, "echo real")
    return {
        "same": same,
        "planted": planted,
        "ran": ran,
        "after": m.BG.check(),
        "keys": len(m.BG.tasks),
        "unknown": [m.BG.check("nope"), m.BG.check(5), m.BG.check(0), m.BG.check("")],
    }


@scenario
def manager_number_as_command(m: Any, w: Path) -> Any:
    answers = []
    for command in (5, 2.5, None):
        try:
            answers.append(m.BG.run(command))
        except TypeError as e:
            answers.append(f"raised TypeError: {e}")
    wait_all(m)
    try:
        listing = m.BG.check()
    except TypeError as e:  # the lesson's listing slices each command
        listing = f"raised TypeError: {e}"
    return {"answers": answers, "tasks": list(m.BG.tasks.values()), "check": listing}


@scenario
def manager_globals_at_call_time(m: Any, w: Path) -> Any:
    m.WORKDIR = w / "sub"
    moved = run_and_wait(m, "pwd")
    m.WORKDIR = w
    return {"moved": moved, "back": run_and_wait(m, "pwd")}


@scenario
def manager_and_bash_with_a_nul_byte(m: Any, w: Path) -> Any:
    """A command that cannot start: the task's record and notification, and the bash tool
    (the blocklist answers before anything tries to start the command)."""
    answers = []
    for command in ("echo a\0b", "sudo a\0b"):
        try:
            answers.append(m.TOOL_HANDLERS["bash"](command=command))
        except Exception as e:  # noqa: BLE001 - what either side raises is compared
            answers.append(f"raised {type(e).__name__}: {e}")
    return {"background": run_and_wait(m, "echo a\0b"), "bash": answers}


# --- the tools, through the lesson's TOOL_HANDLERS -----------------------------------------------

HANDLER_CALLS = [
    ("bash", {}),
    ("bash", {"command": 5}),
    ("bash", {"command": "echo ok", "extra": 1}),
    ("read_file", {}),
    ("read_file", {"path": 5}),
    ("read_file", {"path": None}),
    ("read_file", {"path": "five.txt", "limit": 2.0}),
    ("read_file", {"path": "five.txt", "limit": 9.0}),
    ("read_file", {"path": "five.txt", "limit": "2"}),
    ("read_file", {"path": "five.txt", "limit": True}),
    ("read_file", {"path": "nope.txt", "limit": 2.0}),
    ("read_file", {"path": "link/hostname"}),
    ("read_file", {"path": "/etc/hostname"}),
    ("read_file", {"path": "sub/../five.txt"}),
    ("write_file", {"path": "made/here.txt"}),
    ("write_file", {"path": "made/here.txt", "content": 5}),
    ("write_file", {"path": 5, "content": "x"}),
    ("write_file", {"path": "../up.txt", "content": 5}),
    ("edit_file", {"path": "five.txt", "old_text": 5, "new_text": "a"}),
    ("edit_file", {"path": "five.txt", "old_text": "1", "new_text": 5}),
    ("edit_file", {"path": "five.txt", "old_text": "9", "new_text": 5}),
    ("edit_file", {"path": "nope.txt", "old_text": 5, "new_text": "a"}),
    ("edit_file", {"path": "five.txt", "old_text": "2"}),
    ("background_run", {}),
    ("check_background", {"task_id": 7}),
    ("check_background", {"task_id": None}),
]


@scenario
def tool_handlers(m: Any, w: Path) -> Any:
    answers = []
    for name, args in HANDLER_CALLS:
        try:
            answers.append(str(m.TOOL_HANDLERS[name](**args)))
        except Exception as e:  # noqa: BLE001 - what either side raises is compared
            answers.append(f"raised {type(e).__name__}: {e}")
    made = sorted(str(p.relative_to(w)) for p in w.rglob("*"))
    return {"answers": answers, "files": made, "five": (w / "five.txt").read_text()}


@scenario
def safe_path_escapes(m: Any, w: Path) -> Any:
    answers = []
    for p in ["x", "../x", "/etc", "link", "link/..", "sub/../../x", "a\0b", 5, ""]:
        try:
            answers.append(str(m.safe_path(p)))
        except Exception as e:  # noqa: BLE001 - what either side raises is compared
            answers.append(f"raised {type(e).__name__}: {e}")
    return answers


# --- the loop: several turns, results injected, one left queued at end_turn ------------------


class ScriptedClient:
    """Records what reaches `messages.create` and answers from a script; a reply may be a
    function, called first (to wait for tasks at that moment)."""

    def __init__(self, replies: list) -> None:
        self.replies = replies
        self.messages = self
        self.calls: list = []

    def create(self, **kwargs: Any) -> Any:
        self.calls.append(json.loads(json.dumps(kwargs, default=vars)))
        reply = self.replies.pop(0)
        stop, blocks = reply() if callable(reply) else reply
        content = [types.SimpleNamespace(**b) for b in blocks]
        return types.SimpleNamespace(stop_reason=stop, content=content)


def use(tool_id: str, name: str, **args: Any) -> dict:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args}


def say(text: str) -> dict:
    return {"type": "text", "text": text}


@scenario
def loop_turns_with_injection(m: Any, w: Path) -> Any:
    started = m.TOOL_HANDLERS["background_run"]

    def background_run_finished(**kw: Any) -> Any:
        # Waits for the task so its result is queued before the loop's next drain.
        answer = started(**kw)
        if "wait" in kw.get("command", ""):
            wait_all(m)
        return answer

    def end_after_tasks() -> Any:
        # The last task waits for this file, so it ends after the drain before this call
        # (however loaded the machine): its result stays queued for the next prompt.
        (w / "release").touch()
        wait_all(m)
        return ("end_turn", [say("bye")])

    m.TOOL_HANDLERS["background_run"] = background_run_finished
    m.MODEL = "test-model"
    m.client = ScriptedClient(
        [
            ("tool_use", [say("starting"), use("t1", "background_run", command="echo one #wait")]),
            (
                "tool_use",
                [
                    use("t2", "check_background"),
                    use("t3", "bash", command="echo fg"),
                    use("t4", "nope"),
                    use("t5", "background_run"),
                ],
            ),
            (
                "tool_use",
                [
                    use(
                        "t6",
                        "background_run",
                        command="until [ -e release ]; do sleep 0.01; done; printf 'two\\n'; exit 2",
                    )
                ],
            ),
            end_after_tasks,
            ("end_turn", [say("seen")]),
        ]
    )
    history: list = []
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for prompt in ("go", "more"):
            history.append({"role": "user", "content": prompt})
            m.agent_loop(history)
    return {"calls": m.client.calls, "printed": printed.getvalue()}


@scenario
def loop_empty_reply(m: Any, w: Path) -> Any:
    m.MODEL = "test-model"
    m.client = ScriptedClient([("end_turn", []), ("end_turn", [say("x")])])
    history: list = []
    for prompt in ("one", "two"):
        history.append({"role": "user", "content": prompt})
        m.agent_loop(history)
    return [len(call["messages"]) for call in m.client.calls]


# --- decided deviations (the test holds each side's expected value) ---------------------------


@scenario
def deviation_exit_code_in_notifications(m: Any, w: Path) -> Any:
    m.BG.run("exit 3")
    wait_all(m)
    return m.BG.drain_notifications()[0].get("exit_code", "absent")


@scenario
def deviation_invalid_utf8(m: Any, w: Path) -> Any:
    m.BG.run("printf 'ok\\377'")
    wait_all(m)
    return next(iter(m.BG.tasks.values()))


@scenario
def deviation_stdin(m: Any, w: Path) -> Any:
    answer = run_and_wait(m, "readlink /proc/self/fd/0")["entry"]["result"]
    return re.sub(r"\[\d+\]", "", answer)


@scenario
def deviation_leftover_processes(m: Any, w: Path) -> Any:
    pid = int(run_and_wait(m, "sleep 60 >/dev/null 2>&1 & echo $!")["entry"]["result"])
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
    if state == "Z":
        return "gone"
    os.kill(pid, 9)
    return "still running"


@scenario
def deviation_line_endings(m: Any, w: Path) -> Any:
    m.run_edit("crlf.txt", "a", "x")
    return (w / "crlf.txt").read_bytes().decode()


@scenario
def deviation_fifo(m: Any, w: Path) -> Any:
    os.mkfifo(w / "pipe")
    answer: list = []
    reader = threading.Thread(target=lambda: answer.append(m.run_read("pipe")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if answer:
            return answer[0]
        try:
            # Opens only while a reader has the FIFO open: it would wait for a writer forever.
            os.close(os.open(w / "pipe", os.O_WRONLY | os.O_NONBLOCK))
            reader.join(60)
            return "blocked until a writer came"
        except OSError:
            time.sleep(0.01)
    return "no answer"


@scenario
def deviation_list_command(m: Any, w: Path) -> Any:
    try:
        return run_and_wait(m, ["echo", "hi"])["entry"]
    except TypeError as e:
        return f"raised TypeError: {e}"


@scenario
def deviation_process_group(m: Any, w: Path) -> Any:
    group = int(run_and_wait(m, "awk '{print $5}' /proc/$$/stat")["entry"]["result"])
    return "the caller's group" if group == os.getpgrp() else "a group of its own"


def main() -> None:
    side, root, reference, *names = sys.argv[1:]
    m = load(side, reference)
    seen: dict = {}
    for name in names:
        w = make_workspace(Path(root) / name)
        m.WORKDIR = w
        m.BG = m.BackgroundManager()
        try:
            value = SCENARIOS[name](m, w)
        except Exception as e:  # noqa: BLE001 - what either side raises is compared
            value = f"raised {type(e).__name__}: {e}"
        text = json.dumps(value, ensure_ascii=False, default=repr)
        for n, task_id in enumerate(dict.fromkeys(m.BG.tasks), 1):
            text = text.replace(str(task_id), f"<ID{n}>")
        seen[name] = json.loads(text.replace(root, "<ROOT>"))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
