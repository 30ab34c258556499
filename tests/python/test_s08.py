"""`bgagent.s08`, the lesson's module name for name, driven like the lesson's own tests do."""

import sys
import types

import bgagent
import pytest
from bgagent import s08
from helpers import run_clean
from messages_server import message, text, tool_use

LESSON_NAMES = [
    "WORKDIR", "client", "MODEL", "SYSTEM", "BG", "BackgroundManager", "TOOLS", "TOOL_HANDLERS",
    "safe_path", "run_bash", "run_read", "run_write", "run_edit", "agent_loop",
]  # fmt: skip


class FakeClient:
    """Returns scripted responses and records every call, like the lesson's test doubles.

    A response may be a function, called at the moment of the call to give the response.
    """

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls = []
        self.messages = self

    def create(self, **kwargs):
        self.calls.append(kwargs)
        response = self.responses.pop(0)
        stop, blocks = response() if callable(response) else response
        return types.SimpleNamespace(stop_reason=stop, content=blocks)


def block(**fields):
    return types.SimpleNamespace(**fields)


@pytest.fixture
def lesson(tmp_path, monkeypatch):
    monkeypatch.setattr(s08, "WORKDIR", tmp_path)
    manager = bgagent.BackgroundManager(tmp_path, grace=0.3)
    monkeypatch.setattr(s08, "BG", manager)
    monkeypatch.setattr(s08, "MODEL", "test-model")
    yield s08
    manager.shutdown()


def test_the_module_has_the_lessons_names():
    for name in LESSON_NAMES:
        assert hasattr(s08, name), name
    assert s08.SYSTEM == (
        f"You are a coding agent at {s08.WORKDIR}. Use background_run for long-running commands."
    )
    assert [t["name"] for t in s08.TOOLS] == [
        "bash", "read_file", "write_file", "edit_file", "background_run", "check_background",
    ]  # fmt: skip
    assert (
        s08.TOOLS[4]["description"]
        == "Run command in background thread. Returns task_id immediately."
    )
    assert isinstance(s08.BG, s08.BackgroundManager)


def test_tool_functions(lesson, tmp_path):
    assert lesson.run_write("d/f.txt", "one\ntwo\nthree") == "Wrote 13 bytes"
    assert lesson.run_read("d/f.txt", 1) == "one\n... (2 more)"
    assert lesson.run_edit("d/f.txt", "two", "2") == "Edited d/f.txt"
    assert lesson.run_bash("cat d/f.txt") == "one\n2\nthree"
    assert lesson.safe_path("d/f.txt") == tmp_path / "d" / "f.txt"
    with pytest.raises(ValueError, match=r"^Path escapes workspace: \.\./x$"):
        lesson.safe_path("../x")
    assert lesson.run_bash("sudo true") == "Error: Dangerous command blocked"


def test_agent_loop_injects_results_and_prints_tool_calls(lesson, capsys, tmp_path):
    # The task ends during the second model call: after the drain before it, before the next.
    command = "until [ -e release ]; do sleep 0.01; done; echo hi"

    def second_call():
        (tmp_path / "release").touch()
        task_id = lesson.BG.check().split(":")[0]
        assert lesson.BG.wait(task_id, timeout=30).startswith("[completed]")
        return "tool_use", [block(type="tool_use", id="t2", name="bash", input={"command": "true"})]

    fake = FakeClient(
        (
            "tool_use",
            [block(type="tool_use", id="t1", name="background_run", input={"command": command})],
        ),
        second_call,
        ("end_turn", [block(type="text", text="done")]),
    )
    lesson.client = fake
    history = [{"role": "user", "content": "go"}]
    lesson.agent_loop(history)
    task_id = lesson.BG.check().split(":")[0]
    assert history[4] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t2", "content": "(no output)"}]}  # fmt: skip
    assert history[5] == {
        "role": "user",
        "content": f"<background-results>\n[bg:{task_id}] completed: hi\n</background-results>",
    }
    assert history[6]["role"] == "assistant" and history[6]["content"][0].text == "done"
    assert len(history) == 7, "no 'Noted background results.' acknowledgement"
    third = fake.calls[2]
    assert third["model"] == "test-model" and third["max_tokens"] == 8000
    assert third["system"] == lesson.SYSTEM and third["tools"] == lesson.TOOLS
    out = capsys.readouterr().out
    assert (
        out
        == f"> background_run:\nBackground task {task_id} started: {command}\n> bash:\n(no output)\n"
    )


def test_mirror_returns_at_end_turn_while_tasks_run(lesson):
    lesson.client = FakeClient(
        (
            "tool_use",
            [block(type="tool_use", id="t1", name="background_run", input={"command": "sleep 30"})],
        ),
        ("end_turn", [block(type="text", text="started")]),
    )
    history = [{"role": "user", "content": "go"}]
    lesson.agent_loop(history)
    assert history[-1]["content"][0].text == "started"
    assert lesson.BG.has_running_tasks()


def test_a_python_function_added_to_the_tools_becomes_a_tool(lesson, monkeypatch):
    schema = {"name": "shout", "description": "Upper-case text.",
              "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}}}  # fmt: skip
    monkeypatch.setattr(lesson, "TOOLS", [*lesson.TOOLS, schema])
    monkeypatch.setattr(
        lesson, "TOOL_HANDLERS", {**lesson.TOOL_HANDLERS, "shout": lambda **kw: kw["text"].upper()}
    )
    fake = FakeClient(
        ("tool_use", [block(type="tool_use", id="t1", name="shout", input={"text": "hey"}),
                      block(type="tool_use", id="t2", name="bash", input={})]),
        ("end_turn", [block(type="text", text="ok")]),
    )  # fmt: skip
    lesson.client = fake
    history = [{"role": "user", "content": "go"}]
    lesson.agent_loop(history)
    assert fake.calls[0]["tools"][-1] == schema
    results = [r["content"] for r in history[2]["content"]]
    assert results == ["HEY", "Error: 'command'"], "a raising handler becomes Error: text"


def test_the_built_in_client_against_a_server(lesson, server):
    lesson.client = bgagent.Client(base_url=server.url, api_key="k")
    server.add(message([tool_use("write_file", {"path": "x.txt", "content": "hi"})], "tool_use"))
    server.add(message([text("wrote")]))
    history = [{"role": "user", "content": "write"}]
    lesson.agent_loop(history)
    assert (lesson.WORKDIR / "x.txt").read_text() == "hi"
    assert server.requests[0].body["tools"] == lesson.TOOLS


def run_python(code, cwd, env_extra=None, stdin=""):
    return run_clean([sys.executable, *code], cwd, env_extra, stdin)


def test_import_without_model_id_and_first_call_says_what_is_missing(tmp_path):
    code = "from bgagent import s08\nprint(s08.MODEL)\ns08.agent_loop([{'role': 'user', 'content': 'x'}])"
    proc = run_python(["-c", code], tmp_path)
    assert proc.stdout == "None\n"
    assert "bgagent.ConfigError: no model name: set MODEL_ID" in proc.stderr


def test_dotenv_is_loaded_from_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text(
        "MODEL_ID=model-from-dotenv\nANTHROPIC_BASE_URL=http://127.0.0.1:9\n"
    )
    proc = run_python(
        ["-c", "from bgagent import s08; print(s08.MODEL, s08.client.base_url)"], tmp_path
    )
    assert proc.stdout == "model-from-dotenv http://127.0.0.1:9\n", proc.stderr


def test_python_dash_m_runs_the_lessons_repl(tmp_path, server):
    server.add(message([text("Hello from the model")]))
    env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "k", "MODEL_ID": "m"}
    proc = run_python(["-m", "bgagent.s08"], tmp_path, env, stdin="hello\nq\n")
    assert proc.returncode == 0, proc.stderr
    assert "\033[36ms08 >> \033[0m" in proc.stdout
    assert "Hello from the model\n" in proc.stdout
    assert server.requests[0].body["messages"] == [{"role": "user", "content": "hello"}]
