"""The public Python API: documented, with real signatures, typed dicts at runtime, one base
exception, and `python -m bgagent`."""

import inspect
import subprocess
import sys
import threading

import bgagent
import pytest
from helpers import run_clean


def public_callables():
    for name in bgagent.__all__:
        obj = getattr(bgagent, name)
        if name.startswith("_") or not callable(obj):
            continue
        yield name, obj
        if inspect.isclass(obj) and not issubclass(obj, (BaseException, dict)):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__new__"):
                    continue
                if callable(member) or isinstance(member, property):
                    yield f"{name}.{attr}", member


def test_every_public_callable_has_a_docstring_and_a_real_signature():
    undocumented, ellipsis_defaults = [], []
    for name, obj in public_callables():
        target = obj.fget if isinstance(obj, property) else obj
        if name.endswith(("__init__", "__new__")):
            continue  # documented on the class
        if not inspect.getdoc(target):
            undocumented.append(name)
        if isinstance(obj, property):
            continue
        try:
            signature = inspect.signature(target)
        except ValueError:
            continue  # exceptions and TypedDicts take what their bases take
        if any(p.default is Ellipsis for p in signature.parameters.values()):
            ellipsis_defaults.append(name)
    assert undocumented == []
    assert ellipsis_defaults == []
    assert len(list(public_callables())) > 40


def test_signatures_show_real_defaults():
    params = inspect.signature(bgagent.BackgroundManager).parameters
    assert params["log_limit"].default == 64 * 1024 * 1024
    assert params["timeout"].default == 300.0
    client = inspect.signature(bgagent.Client).parameters
    assert client["timeout"].default == 600.0
    agent = inspect.signature(bgagent.Agent).parameters
    kinds = {n: p.kind for n, p in agent.items()}
    assert kinds.pop("model") == inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert set(kinds.values()) == {inspect.Parameter.KEYWORD_ONLY}
    with pytest.raises(TypeError):
        bgagent.Agent("m", object())


def test_the_typed_dicts_exist_at_runtime():
    assert bgagent.Notification.__annotations__.keys() == {
        "task_id",
        "status",
        "command",
        "result",
        "exit_code",
        "duration",
        "log_path",
        "tail",
    }
    assert set(bgagent.TaskEntry.__annotations__) == {"status", "result", "command"}
    assert "log_path" in bgagent.TaskInfo.__annotations__


def test_the_typed_dicts_name_the_keys_the_core_hands_out(tmp_path):
    # The dicts are the serde form of the core's types: the TypedDicts must keep up with them.
    go = tmp_path / "go"
    with bgagent.BackgroundManager(tmp_path) as bg:
        task_id = bg.start(f"while [ ! -e {go} ]; do sleep 0.01; done; echo hi")
        running = bg.info(task_id)
        assert (running["status"], running["result"]) == ("running", None)
        assert running.keys() == bgagent.TaskInfo.__annotations__.keys()
        go.touch()
        assert (
            bg.wait(task_id, timeout=60)
            == "[completed] " + bg.tasks[task_id]["command"][:60] + "\nhi"
        )
        assert bg.info(task_id).keys() == bgagent.TaskInfo.__annotations__.keys()
        [note] = bg.drain_notifications()
        assert note.keys() == bgagent.Notification.__annotations__.keys()
        assert set(bg.tasks[task_id]) == set(bgagent.TaskEntry.__annotations__)


def test_one_base_exception_and_config_errors_are_not_api_errors():
    assert issubclass(bgagent.APIError, bgagent.BgagentError)
    assert issubclass(bgagent.RateLimitError, bgagent.APIError)
    assert issubclass(bgagent.ConfigError, bgagent.BgagentError)
    assert not issubclass(bgagent.ConfigError, bgagent.APIError)


def test_dir_shows_the_public_api_only():
    assert dir(bgagent) == sorted(bgagent.__all__)
    for hidden in ("atexit", "os", "sys", "agent", "background"):
        assert hidden not in dir(bgagent)


def test_python_dash_m_bgagent_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "bgagent", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "--demo" in out.stdout


def test_a_scripted_client_plays_its_script_and_records_the_requests(tmp_path):
    client = bgagent.ScriptedClient(
        [
            {
                "content": [
                    {"type": "text", "text": "on it"},
                    {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "bash",
                        "input": {"command": "echo hi"},
                    },
                ],
                "stop_reason": "tool_use",
            },
            {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"},
        ]
    )
    with bgagent.Agent(model="m", client=client, workdir=tmp_path, echo=False) as agent:
        assert agent.run("go") == "done"
    assert client.remaining == 0
    second = client.requests[1]
    assert second["model"] == "m"
    assert second["messages"][2]["content"][0]["content"] == "hi"
    with pytest.raises(bgagent.APIError, match="no response left"):
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="list of"):
        bgagent.ScriptedClient([{"content": "not blocks"}])


def test_a_scripted_client_keeps_the_last_requests_only(tmp_path):
    def calls(client, n):
        for i in range(n):
            client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": f"call {i}"}]
            )
        return [r["messages"][0]["content"] for r in client.requests]

    reply = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    assert inspect.signature(bgagent.ScriptedClient).parameters["keep_requests"].default == 100
    kept = calls(bgagent.ScriptedClient([reply] * 105), 105)
    assert kept == [f"call {i}" for i in range(5, 105)]
    assert calls(bgagent.ScriptedClient([reply] * 5, keep_requests=2), 5) == ["call 3", "call 4"]
    every = calls(bgagent.ScriptedClient([reply] * 120, keep_requests=None), 120)
    assert every == [f"call {i}" for i in range(120)]
    none = bgagent.ScriptedClient([reply] * 3, keep_requests=0)
    assert calls(none, 3) == []
    assert none.remaining == 0, "the replies are given all the same"
    with pytest.raises(OverflowError):
        bgagent.ScriptedClient([reply], keep_requests=-1)


@pytest.mark.parametrize("module", ["bgagent", "bgagent.s08"])
def test_importing_leaves_the_async_machinery_unloaded(tmp_path, module):
    # asyncio, concurrent.futures and inspect took most of the import's time: they are loaded
    # when the async face is first used.
    heavy = ["asyncio", "concurrent.futures", "inspect"]
    script = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    out = run_clean([sys.executable, "-c", script], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_demo_model_answers_the_lessons_prompts(tmp_path):
    prompts = bgagent.ScriptedClient.DEMO_PROMPTS
    assert len(prompts) == 3
    client = bgagent.ScriptedClient.demo()
    with bgagent.Agent(model="demo", client=client, workdir=tmp_path, echo=False) as agent:
        agent.run(prompts[1])
        assert [t["command"] for t in agent.manager.tasks.values()] == [
            "sleep 2",
            "sleep 4",
            "sleep 6",
        ]


def test_managers_and_agents_render_as_tables(tmp_path):
    with bgagent.BackgroundManager(tmp_path, grace=0.3) as bg:
        done = bg.start("echo '<b>bold</b>'; exit 3")
        bg.wait(done, timeout=60)
        bg.tasks["hand"] = {"status": "completed", "result": "x", "command": "echo <i>"}
        page = bg._repr_html_()
        assert page.count("<tr data-task-id=") == 2
        assert f"data-task-id='{done}'" in page
        assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
        assert "echo &lt;i&gt;" in page
        printed = []
        bg._repr_pretty_(type("P", (), {"text": lambda self, t: printed.append(t)})(), False)
        lines = printed[0].splitlines()
        assert lines[0].split() == ["id", "status", "exit", "elapsed", "command", "result"]
        assert lines[1].split()[:3] == [done, "completed", "3"]
        client = bgagent.ScriptedClient(
            [{"content": [{"type": "text", "text": "hi <there>"}], "stop_reason": "end_turn"}]
        )
        agent = bgagent.Agent(model="m", client=client, workdir=tmp_path, manager=bg, echo=False)
        agent.run("go")
        assert "hi &lt;there&gt;" in agent._repr_html_()
        assert "1 turns, 2 background tasks" in agent._repr_html_()
        shown: list[str] = []
        agent._repr_pretty_(type("P", (), {"text": lambda self, t: shown.append(t)})(), False)
        assert shown == ["Agent m: 1 turns, 2 background tasks\nlast reply: hi <there>"]


@pytest.mark.parametrize("ipython", ["missing", "installed"])
def test_display_in_a_plain_script_prints_the_table_once(ipython):
    if ipython == "installed":
        pytest.importorskip("IPython")
    hide = "import sys; sys.modules['IPython'] = None\n" if ipython == "missing" else ""
    code = hide + (
        "import bgagent\n"
        "bg = bgagent.BackgroundManager()\n"
        "bg.wait(bg.start('echo shown'), timeout=60)\n"
        "bg.display()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    header, row = out.stdout.splitlines()
    assert header.split() == ["id", "status", "exit", "elapsed", "command", "result"]
    assert row.split()[1:3] == ["completed", "0"] and row.endswith("echo shown  shown")
    assert out.stderr == ""


def test_check_and_tasks_are_safe_while_another_thread_starts_tasks():
    # A tiny switch interval makes the threads interleave inside check()'s loop.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    errors: list[BaseException] = []
    try:
        with bgagent.BackgroundManager() as bg:
            # A long listing (planted entries show in check(), as in the lesson's tests).
            for i in range(3000):
                bg.tasks[f"planted{i}"] = {"status": "completed", "result": "", "command": "x"}

            def read_while_starting() -> None:
                try:
                    while not done.is_set():
                        bg.check()
                        len(bg.tasks)
                except BaseException as e:  # noqa: BLE001 - the test reports any of them
                    errors.append(e)

            done = threading.Event()
            reader = threading.Thread(target=read_while_starting)
            reader.start()
            try:
                for _ in range(300):
                    bg.start("true")
            finally:
                done.set()
                reader.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []


def test_an_agent_used_with_with_shuts_down_the_manager_it_made_only(tmp_path):
    def starts_a_long_task():
        return bgagent.ScriptedClient(
            [
                {
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "background_run",
                            "input": {"command": "sleep 300"},
                        }
                    ],
                    "stop_reason": "tool_use",
                },
                {"content": [{"type": "text", "text": "started"}], "stop_reason": "end_turn"},
            ]
        )

    with bgagent.Agent(
        model="m", client=starts_a_long_task(), workdir=tmp_path, mirror=True, echo=False
    ) as agent:
        agent.run("go")
        assert agent.manager.has_running_tasks()
    assert not agent.manager.has_running_tasks()
    with bgagent.BackgroundManager(tmp_path, grace=0.3) as mine:
        with bgagent.Agent(
            model="m", client=starts_a_long_task(), manager=mine, mirror=True, echo=False
        ) as agent:
            agent.run("go")
        assert mine.has_running_tasks()  # not the agent's to stop
