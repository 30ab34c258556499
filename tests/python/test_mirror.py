"""`bgagent.s08` against the lesson's own file: the same calls in two fresh interpreters, every
answer compared (task ids and the work directory normalised).

The lesson's file is not ours to copy in: it is found at `../shared/reference/` beside the
repository or at `$BGAGENT_REFERENCE`; without it the test says so and skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bgagent
import pytest
from helpers import run_with

HERE = Path(__file__).resolve().parent
REFERENCE = Path(
    os.environ.get("BGAGENT_REFERENCE")
    or HERE.parents[2] / "shared" / "reference" / "s08_background_tasks.py"
)

# Runs in a fresh interpreter: imports one side, points WORKDIR at the workspace, makes the
# calls read from stdin, prints the answers (or what they raised) as JSON.
DRIVER = """
import importlib.util, json, os, sys, types
from pathlib import Path
side, workdir, reference = sys.argv[1:4]
if side == "reference":
    # The lesson imports these at the top; nothing here calls them.
    sys.modules["anthropic"] = types.SimpleNamespace(Anthropic=lambda **kw: None)
    sys.modules["dotenv"] = types.SimpleNamespace(load_dotenv=lambda **kw: None)
    os.environ["MODEL_ID"] = "test-model"
    spec = importlib.util.spec_from_file_location("lesson", reference)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
else:
    from bgagent import s08 as module
module.WORKDIR = Path(workdir)
def bg_run_in(sub, command):
    # The background task of a WORKDIR reassigned after import; waits for its end.
    import time
    module.WORKDIR = Path(workdir) / sub
    started = module.BG.run(command)
    task_id = started.split()[2]
    while "[running]" in module.BG.check(task_id):
        time.sleep(0.01)
    module.WORKDIR = Path(workdir)
    return (started + "|" + module.BG.check(task_id)).replace(task_id, "<ID>")
answers = []
for name, args in json.loads(sys.stdin.read()):
    try:
        call = bg_run_in if name == "bg_run_in" else getattr(module, name)
        answer = str(call(*args))
    except Exception as e:
        answer = f"raised {type(e).__name__}: {e}"
    answers.append(answer.replace(workdir, "<WORKDIR>"))
print(json.dumps(answers))
"""

CALLS = [
    ("run_read", ["nope.txt"]),
    ("run_read", ["sub"]),
    ("run_read", ["bad.bin"]),
    ("run_read", ["cut.bin"]),
    ("run_read", ["cont.bin"]),
    ("run_read", ["five.txt"]),
    ("run_read", ["five.txt", 2]),
    ("run_read", ["five.txt", -1]),
    ("run_read", ["five.txt", -9]),
    ("run_read", ["five.txt", 0]),
    ("run_read", ["five.txt/x"]),
    ("run_read", ["it's\nodd"]),
    ("run_read", ["a\0b"]),
    ("run_read", ["../outside.txt"]),
    ("run_write", ["sub", "x"]),
    ("run_write", ["five.txt/x", "y"]),
    ("run_write", ["new/dir/file.txt", "héllo"]),
    ("run_read", ["new/dir/file.txt"]),
    ("run_edit", ["nope.txt", "a", "b"]),
    ("run_edit", ["bad.bin", "a", "b"]),
    ("run_edit", ["five.txt", "9", "x"]),
    ("run_edit", ["five.txt", "3", "three"]),
    ("run_read", ["five.txt"]),
    ("safe_path", ["a\0b"]),
    ("safe_path", ["../x"]),
    ("run_bash", ["echo out; echo err >&2"]),
    ("run_bash", ["true"]),
    ("run_bash", ["exit 3"]),
    ("run_bash", ["sudo ls"]),
    ("bg_run_in", ["sub", "pwd"]),
    ("bg_run_in", ["sub", "echo out; echo err >&2; exit 4"]),
    ("bg_run_in", ["", "true"]),
]


# One turn of the lesson's loop with a fake client, MODEL unset: what reaches create() and what
# is printed.
LOOP_DRIVER = (
    DRIVER.split("answers = []")[0]
    + """
import io, contextlib
calls = []
class Fake:
    def __init__(self, replies):
        self.replies, self.messages = replies, self
    def create(self, **kwargs):
        calls.append(json.loads(json.dumps(kwargs, default=vars)))
        stop, blocks = self.replies.pop(0)
        return types.SimpleNamespace(
            stop_reason=stop, content=[types.SimpleNamespace(**b) for b in blocks])
module.client = Fake([
    ("tool_use", [{"type": "text", "text": "running"},
                  {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "echo x"}},
                  {"type": "tool_use", "id": "t2", "name": "nope", "input": {}}]),
    ("end_turn", [{"type": "text", "text": "bye"}]),
])
module.MODEL = None
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    module.agent_loop([{"role": "user", "content": "go"}])
print(json.dumps({"calls": calls, "printed": printed.getvalue()}).replace(workdir, "<WORKDIR>"))
"""
)


def python(argv, cwd: Path, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    """This interpreter run with `argv` in `cwd` with `env` and `stdin`; output captured."""
    return run_with([sys.executable, *argv], cwd, env, stdin)


def workspace(root: Path) -> Path:
    root.mkdir()
    (root / "sub").mkdir()
    (root / "bad.bin").write_bytes(b"ab\xffcd")
    (root / "cut.bin").write_bytes(b"ab\xe2\x82")
    (root / "cont.bin").write_bytes(b"ab\xe2\x82xy")
    (root / "five.txt").write_text("1\n2\n3\n4\n5\n")
    return root


def answers(side: str, root: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, side, str(root), str(REFERENCE)],
        input=json.dumps(CALLS),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def test_the_tools_answer_as_the_lessons_do(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    lesson = answers("reference", workspace(tmp_path / "lesson"))
    ours = answers("mirror", workspace(tmp_path / "mirror"))
    differences = [(call, want, got) for call, want, got in zip(CALLS, lesson, ours) if want != got]
    assert differences == []
    assert (tmp_path / "lesson" / "five.txt").read_text() == (
        tmp_path / "mirror" / "five.txt"
    ).read_text()


def test_one_turn_of_the_loop_calls_the_client_and_prints_as_the_lessons_does(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    runs = {}
    for side in ("reference", "mirror"):
        root = workspace(tmp_path / side)
        out = subprocess.run(
            [sys.executable, "-c", LOOP_DRIVER, side, str(root), str(REFERENCE)],
            input="[]",
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        runs[side] = json.loads(out.stdout.splitlines()[-1])
    assert runs["mirror"] == runs["reference"]
    assert runs["mirror"]["calls"][0]["model"] is None


def test_dot_env_is_read_as_the_lessons_load_dotenv_reads_it(tmp_path):
    dotenv = pytest.importorskip("dotenv", reason="python-dotenv is the oracle here")
    (tmp_path / ".env").write_text(
        "# comment\n"
        "export A=1\n"
        'B="two ${A}"\n'
        "C='three ${B} \\' q'\n"
        "OLD=${OLD}-new\n"
        "D=${MISSING:-fallback}\n"
        "E=unquoted value # comment\n"
        "F=\n"
        'G="esc\\n\\"q\\" ${A}"\n'
        "H= # only a comment\n"
        "I=#not-a-comment\n"
        "J = spaced\n"
    )
    names = ["A", "B", "C", "OLD", "D", "E", "F", "G", "H", "I", "J"]
    show = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {names!r}}}))"
    sides = {
        "lesson": f"from dotenv import load_dotenv; load_dotenv(override=True); {show}",
        "mirror": f"from bgagent import s08; {show}",
    }
    env = {**os.environ, "OLD": "old", "A": "from-the-environment"}
    env.pop("MISSING", None)
    seen = {}
    for side, code in sides.items():
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        seen[side] = json.loads(out.stdout)
    assert dotenv is not None
    assert seen["mirror"] == seen["lesson"]
    assert seen["mirror"]["B"] == "two 1"  # the file's A, not the environment's


def test_the_lesson_reads_the_dot_env_beside_its_file_and_the_mirror_the_working_directorys(
    tmp_path,
):
    """python-dotenv's `load_dotenv()` looks beside the file that calls it (then in its parents);
    bgagent.s08 lives in site-packages, so it reads the working directory's."""
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    pytest.importorskip("anthropic", reason="the lesson's file imports the SDK")
    pytest.importorskip("dotenv", reason="the lesson's file imports python-dotenv")
    beside = [d / ".env" for d in REFERENCE.parents if (d / ".env").exists()]
    if beside:
        pytest.skip(f"{beside[0]} would be the lesson's .env")
    (tmp_path / ".env").write_text("MODEL_ID=from-the-working-directory\n")
    env = {k: v for k, v in os.environ.items() if k != "MODEL_ID"}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return python(argv, tmp_path, env)

    lesson = run(str(REFERENCE))
    assert lesson.returncode == 1 and "KeyError: 'MODEL_ID'" in lesson.stderr
    ours = run("-c", "from bgagent import s08; print(s08.MODEL)")
    assert (ours.returncode, ours.stdout) == (0, "from-the-working-directory\n"), ours.stderr


def _open_for_writing(fifo: Path) -> int | None:
    """A write end of `fifo`, once some process has it open for reading."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


def test_a_dot_env_fifo_holds_up_the_lessons_load_dotenv_and_the_mirror_warns_and_goes_on(
    tmp_path,
):
    pytest.importorskip("dotenv", reason="python-dotenv is the oracle here")
    from helpers import wait_until

    fifo = tmp_path / ".env"
    os.mkfifo(fifo)
    show = "import os; print(os.environ.get('FROM_DOT_ENV'))"
    env = {k: v for k, v in os.environ.items() if k != "FROM_DOT_ENV"}
    lesson = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from dotenv import load_dotenv; load_dotenv(override=True); {show}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The lesson's side waits on the FIFO; what a writer sends later is what it loads.
        writer = wait_until(lambda: _open_for_writing(fifo), "the lesson opens the FIFO")
        os.write(writer, b"FROM_DOT_ENV=sent-later\n")
        os.close(writer)
        out, err = lesson.communicate(timeout=120)
    finally:
        lesson.kill()
    assert out == "sent-later\n", err

    # No writer comes for the mirror: it does not open the FIFO, says so, and goes on.
    for target in (None, "/dev/zero"):
        if target:
            fifo.unlink()
            fifo.symlink_to(target)
        ours = python(["-c", f"from bgagent import s08; {show}"], tmp_path, env)
        assert (ours.returncode, ours.stdout) == (0, "None\n"), ours.stderr
        warning = "RuntimeWarning: bgagent.s08: .env is not a regular file; not read"
        assert warning in ours.stderr


def test_a_dot_env_over_1_mib_is_not_read_by_the_mirror(tmp_path):
    (tmp_path / ".env").write_text("FROM_DOT_ENV=x\n" + "#" * (1 << 20))
    ours = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bgagent import s08; import os; print(os.getenv('FROM_DOT_ENV'))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (ours.returncode, ours.stdout) == (0, "None\n"), ours.stderr
    assert "bgagent.s08: .env is larger than 1 MiB; not read" in ours.stderr


# --- scenarios (tests/python/mirror_driver.py), each side in its own interpreter -------------

DRIVER_FILE = HERE / "mirror_driver.py"


def both_sides(tmp_path: Path, names: list[str]) -> tuple[dict, dict]:
    seen = []
    for side in ("reference", "mirror"):
        out = subprocess.run(
            [sys.executable, str(DRIVER_FILE), side, str(tmp_path / side), str(REFERENCE), *names],
            cwd=tmp_path,
            stdin=subprocess.PIPE,  # a pipe, so the stdin deviation shows
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        seen.append(json.loads(out.stdout))
    return seen[0], seen[1]


SAME = [
    "manager_commands",
    "manager_tasks_dict",
    "manager_number_as_command",
    "manager_globals_at_call_time",
    "manager_and_bash_with_a_nul_byte",
    "tool_handlers",
    "safe_path_escapes",
    "loop_turns_with_injection",
]


def test_the_manager_the_tools_and_the_loop_match_the_lesson(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    lesson, ours = both_sides(tmp_path, SAME)
    for name in SAME:
        assert ours[name] == lesson[name], name
    # What was compared is what it should be (so an empty or failed run cannot pass).
    commands = ours["manager_commands"]
    assert len(commands["huge"]["entry"]["result"]) == 50000
    assert len(commands["huge"]["notes"][0]["result"]) == 500
    assert commands["mixed_streams"]["entry"]["result"] == "a\nc\nb"
    planted = ours["manager_tasks_dict"]
    assert planted["same"] is True
    assert planted["planted"][0] == "[completed] echo hi\nplanted"
    assert planted["ran"]["notes"] == [
        {"task_id": "<ID3>", "status": "completed", "command": "echo real", "result": "real"}
    ]
    assert ours["manager_number_as_command"]["tasks"][0]["status"] == "error"
    assert ours["manager_globals_at_call_time"]["moved"]["entry"]["result"].endswith("/sub")
    nul = ours["manager_and_bash_with_a_nul_byte"]
    assert nul["background"]["entry"]["result"] == "Error: embedded null byte"
    assert nul["background"]["notes"][0]["result"] == "Error: embedded null byte"
    assert nul["bash"] == [
        "raised ValueError: embedded null byte",
        "Error: Dangerous command blocked",
    ]
    assert "raised KeyError: 'command'" in ours["tool_handlers"]["answers"]
    calls = ours["loop_turns_with_injection"]["calls"]
    injected = [
        m["content"]
        for m in calls[-1]["messages"]
        if isinstance(m["content"], str) and m["content"].startswith("<background-results>")
    ]
    assert injected == [
        "<background-results>\n[bg:<ID1>] completed: one\n</background-results>",
        "<background-results>\n[bg:<ID2>] completed: two\n</background-results>",
    ]


# Each decided deviation (README, "Differences from the lesson"): (the lesson's, bgagent's).
DEVIATIONS = {
    "deviation_exit_code_in_notifications": ("absent", 3),
    "deviation_invalid_utf8": (
        {
            "status": "error",
            "result": "Error: 'utf-8' codec can't decode byte 0xff in position 2: invalid start byte",
            "command": "printf 'ok\\377'",
        },
        {"status": "completed", "result": "ok\ufffd", "command": "printf 'ok\\377'"},
    ),
    "deviation_stdin": ("pipe:", "/dev/null"),
    "deviation_leftover_processes": ("still running", "gone"),
    "deviation_line_endings": ("x\nb\n", "x\r\nb\r\n"),
    "deviation_fifo": (
        "blocked until a writer came",
        "Error: <ROOT>/deviation_fifo/pipe: is not a regular file",
    ),
    "deviation_list_command": (
        {"status": "completed", "result": "(no output)", "command": ["echo", "hi"]},
        "raised TypeError: bgagent.s08 runs str commands, not list",
    ),
    "deviation_process_group": ("the caller's group", "a group of its own"),
    # Messages in the second call: the lesson keeps the empty reply (the API refuses it).
    "loop_empty_reply": ([1, 3], [1, 2]),
}


def test_each_decided_deviation_is_what_the_readme_says(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    lesson, ours = both_sides(tmp_path, list(DEVIATIONS))
    for name, (want_lesson, want_ours) in DEVIATIONS.items():
        assert (lesson[name], ours[name]) == (want_lesson, want_ours), name


def test_without_model_id_the_lesson_dies_at_import_and_the_mirror_says_what_to_set(tmp_path):
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    pytest.importorskip("anthropic", reason="the lesson's file imports the SDK")
    env = {k: v for k, v in os.environ.items() if k != "MODEL_ID"}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return python(argv, tmp_path, env)

    lesson = run(str(REFERENCE))
    assert lesson.returncode == 1 and "KeyError: 'MODEL_ID'" in lesson.stderr
    imported = run("-c", "from bgagent import s08; print(s08.MODEL)")
    assert (imported.returncode, imported.stdout) == (0, "None\n")
    ours = run("-m", "bgagent.s08")
    assert ours.returncode == 2 and ours.stdout == ""
    assert ours.stderr.count("\n") == 1 and "MODEL_ID is not set" in ours.stderr
    assert "bgagent --demo" in ours.stderr


def test_the_repl_on_piped_stdin_prints_and_asks_as_the_lessons_does(tmp_path):
    """Both REPLs against the same scripted Messages API on 127.0.0.1, the lesson's with the
    real `anthropic` SDK: the same bytes on stdout and the same requests."""
    if not REFERENCE.is_file():
        pytest.skip(f"the lesson's file is not at {REFERENCE} (set BGAGENT_REFERENCE)")
    pytest.importorskip("anthropic", reason="the lesson's file runs on the SDK")
    pytest.importorskip("dotenv", reason="the lesson's file imports python-dotenv")
    from messages_server import MessagesServer, message, text, tool_use

    seen = {}
    for side, argv in (("lesson", [str(REFERENCE)]), ("mirror", ["-m", "bgagent.s08"])):
        root = tmp_path / side
        root.mkdir()
        replies = [
            message([text("on it"), tool_use("bash", {"command": "echo hi"}, "t1")], "tool_use"),
            message([text("done: hi")]),
            message([text("second")]),
        ]
        with MessagesServer(replies) as server:
            env = {
                **os.environ,
                "MODEL_ID": "test-model",
                "ANTHROPIC_BASE_URL": server.url,
                "ANTHROPIC_API_KEY": "test-key",
            }
            out = python(argv, root, env, stdin="run it\nagain\n\n")
        assert out.returncode == 0, out.stderr
        bodies = json.dumps([r.body for r in server.requests]).replace(str(root), "<ROOT>")
        seen[side] = (out.stdout, json.loads(bodies))
    assert seen["mirror"] == seen["lesson"]
    stdout, bodies = seen["mirror"]
    assert stdout.count("\033[36ms08 >> \033[0m") == 3
    assert "> bash:\nhi\n" in stdout and "done: hi\n" in stdout
    assert len(bodies) == 3


def test_agent_in_mirror_mode_answers_odd_arguments_as_the_lesson_module_does(
    tmp_path, monkeypatch
):
    """The built-in tools of `Agent(mirror=True)` (Rust) against `bgagent.s08`'s handlers, whose
    answers the tests above hold to the lesson's: missing keys, numbers for strings, odd limits."""
    from bgagent import s08
    from mirror_driver import HANDLER_CALLS, ScriptedClient, make_workspace

    calls = list(HANDLER_CALLS)
    ours = make_workspace(tmp_path / "module")
    monkeypatch.setattr(s08, "WORKDIR", ours)
    monkeypatch.setattr(s08, "BG", s08.BackgroundManager())
    want = []
    for name, args in calls:
        try:
            want.append(str(s08.TOOL_HANDLERS[name](**args)))
        except Exception as e:  # noqa: BLE001 - the lesson's loop answers any exception
            want.append(f"Error: {e}")
    want = [w.replace(str(ours), "<ROOT>") for w in want]

    root = make_workspace(tmp_path / "agent")
    uses = [
        {"type": "tool_use", "id": f"t{i}", "name": n, "input": a} for i, (n, a) in enumerate(calls)
    ]
    client = ScriptedClient([("tool_use", uses), ("end_turn", [{"type": "text", "text": "ok"}])])
    agent = bgagent.Agent(model="m", client=client, workdir=root, mirror=True, echo=False)
    agent.run("go")
    results = client.calls[1]["messages"][-1]["content"]
    got = [r["content"].replace(str(root), "<ROOT>") for r in results]
    assert [(c, g) for c, g, w in zip(calls, got, want) if g != w] == []
    assert len(got) == len(calls)
    assert "Error: 'command'" in got
