"""One value per default: the core's (`_core.DEFAULTS`, from bgagent::defaults) is what every
Python signature states, the extension's, the wrappers' and the stubs' alike."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import bgagent
from bgagent import _core

STUBS = Path(bgagent.__file__).with_name("_core.pyi")

# The values themselves: changing one is a change users see.
EXPECTED = {
    "timeout": 300.0,
    "output_limit": 50_000,
    "preview_limit": 500,
    "grace": 2.0,
    "log_limit": 64 * 1024 * 1024,
    "max_wait": 300.0,
    "max_tokens": 8000,
    "bash_timeout": 120.0,
    "client_timeout": 600.0,
    "max_retries": 2,
    "keep_requests": 100,
    # Production's cap on running tasks: twice the CPUs this process may use, at least 4.
    "max_running": max(4, 2 * len(os.sched_getaffinity(0))),
    # What production keeps of finished tasks: their number, and their logs' bytes.
    "keep_finished": 1000,
    "log_budget": 1024 * 1024 * 1024,
}

MANAGER = [
    "timeout",
    "output_limit",
    "preview_limit",
    "grace",
    "log_limit",
    "keep_finished",
    "log_budget",
]
LOOP = ["max_wait", "max_tokens"]
# (what Python calls, its name in the stubs, {parameter: key in DEFAULTS})
SIGNATURES: list[tuple[Any, str | None, dict[str, str]]] = [
    (_core.BackgroundManager, "BackgroundManager", {k: k for k in MANAGER}),
    (bgagent.BackgroundManager, None, {k: k for k in MANAGER}),
    (_core.run_loop, "run_loop", {k: k for k in LOOP}),
    (bgagent.Agent, None, {k: k for k in LOOP}),
    (_core.Client, "Client", {"timeout": "client_timeout", "max_retries": "max_retries"}),
    (_core.run_bash, "run_bash", {"timeout": "bash_timeout"}),
    (_core.ScriptedClient, "ScriptedClient", {"keep_requests": "keep_requests"}),
]


def test_the_core_states_the_defaults() -> None:
    assert _core.DEFAULTS == EXPECTED
    for key, value in EXPECTED.items():
        assert type(_core.DEFAULTS[key]) is type(value), key


def test_the_cap_on_running_tasks_is_the_core_default() -> None:
    # The machine's own value: the core's signature and the stubs state it as `...`, the
    # Python signatures as the number, read from DEFAULTS.
    for obj in (bgagent.BackgroundManager, bgagent.Agent):
        default = inspect.signature(obj).parameters["max_running"].default
        assert default == _core.DEFAULTS["max_running"], obj.__name__
    assert inspect.signature(_core.BackgroundManager).parameters["max_running"].default is ...
    with bgagent.BackgroundManager() as bg:
        assert bg.max_running == _core.DEFAULTS["max_running"]
    assert _core.BackgroundManager().max_running == _core.DEFAULTS["max_running"]


def stub_defaults(name: str) -> dict[str, Any]:
    """The default values a stub's function (or class's `__new__`) states."""
    for node in ast.parse(STUBS.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            node = next(n for n in node.body if getattr(n, "name", None) == "__new__")
        elif not (isinstance(node, ast.FunctionDef) and node.name == name):
            continue
        if isinstance(node, ast.FunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            return {a.arg: ast.literal_eval(d) for a, d in pairs}
    raise AssertionError(f"{name} is not in the stubs")


def test_every_signature_states_the_core_defaults() -> None:
    checked = 0
    for obj, stub, params in SIGNATURES:
        signature = inspect.signature(obj)
        stated = stub_defaults(stub) if stub else {}
        for param, key in params.items():
            default = signature.parameters[param].default
            assert default == _core.DEFAULTS[key], f"{obj.__name__}({param}=...)"
            if stub:
                assert stated[param] == _core.DEFAULTS[key], f"_core.pyi: {stub}({param}=...)"
            checked += 1
    assert checked == 22


def test_the_command_line_states_the_core_defaults(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bgagent", "--help"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    flat = " ".join(run.stdout.split())
    for flag, key in [
        ("--max-tokens", "max_tokens"),
        ("--bg-timeout", "timeout"),
        ("--max-wait", "max_wait"),
    ]:
        value = _core.DEFAULTS[key]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        stated = re.search(re.escape(flag) + r" <\w+>[^\[]*\[default: ([^\]]+)\]", flat)
        assert stated is not None and stated.group(1) == shown, flag
