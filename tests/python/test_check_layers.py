"""scripts/check_layers.py on small trees made here: it finds what it is there to find (a file
cycle in either Rust crate or in the package, an upward import) and passes a tree without."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_layers.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


check_layers = _load()


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def problems(root: Path) -> list[str]:
    found, _notes = check_layers.check(root, allowed=[])
    return found


# A crate whose tools/mod.rs re-exports bash.rs's function: no cycle while bash.rs leaves its
# parent alone.
CRATE = {
    "src/lib.rs": "pub mod tools;\npub use tools::run;\n",
    "src/tools/mod.rs": "mod bash;\npub use bash::run;\npub struct Ctx;\n",
    "src/tools/bash.rs": (
        "// super::Ctx in a comment is no use\n"
        'pub fn run() -> &\'static str { "super::Ctx" }\n'
        "#[cfg(test)]\nmod tests {\n    use super::super::*;\n}\n"
    ),
}


def test_a_tree_without_cycles_passes(tmp_path: Path) -> None:
    assert problems(tree(tmp_path, CRATE)) == []


def test_a_cycle_between_a_module_and_its_child_is_found(tmp_path: Path) -> None:
    files = dict(CRATE)
    files["src/tools/mod.rs"] = "mod bash;\npub struct Ctx;\nfn go() { bash::run(); }\n"
    files["src/tools/bash.rs"] = "use super::Ctx;\npub fn run() -> Option<Ctx> { None }\n"
    found = problems(tree(tmp_path, files))
    assert found == ["cycle: src/tools/bash.rs -> src/tools/mod.rs -> src/tools/bash.rs"]


def test_a_cycle_through_crate_paths_and_a_re_export_is_found(tmp_path: Path) -> None:
    files = {
        "bindings/python/src/lib.rs": "mod a;\nmod b;\nmod c;\npub(crate) use c::Shared;\n",
        "bindings/python/src/a.rs": "use super::Shared;\npub struct A(pub Shared);\n",
        "bindings/python/src/b.rs": "pub fn make(a: crate::a::A) -> crate::a::A { a }\n",
        "bindings/python/src/c.rs": "pub struct Shared;\nfn f(a: super::a::A) { super::b::make(a); }\n",
    }
    found = problems(tree(tmp_path, files))
    assert len(found) == 1
    assert found[0].startswith("cycle: bindings/python/src/a.rs -> ")
    for name in ("a.rs", "b.rs", "c.rs"):
        assert f"bindings/python/src/{name}" in found[0]


def test_a_python_cycle_through_a_function_local_import_is_found(tmp_path: Path) -> None:
    files = {
        "python/bgagent/__init__.py": "from .a import f\n",
        "python/bgagent/_core.pyi": "def g() -> None: ...\n",
        "python/bgagent/a.py": "from . import _core, b\n\ndef f():\n    return b.h()\n",
        "python/bgagent/b.py": "def h():\n    from .a import f\n    return f\n",
    }
    found = problems(tree(tmp_path, files))
    assert found == ["cycle: python/bgagent/a.py -> python/bgagent/b.py -> python/bgagent/a.py"]


def test_a_typing_only_import_counts_too(tmp_path: Path) -> None:
    files = {
        "python/bgagent/a.py": "from .b import h\n",
        "python/bgagent/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bgagent.a\n"
        ),
    }
    assert len(problems(tree(tmp_path, files))) == 1


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    files = dict(CRATE)
    files["src/lib.rs"] = "pub mod tools;\npub mod cli;\n"
    files["src/cli.rs"] = "pub fn main() {}\n"
    files["src/tools/mod.rs"] = "mod bash;\npub fn f() { crate::cli::main() }\n"
    assert problems(tree(tmp_path, files)) == ["upward import: tools -> cli"]


def test_the_command_prints_the_cycle_and_fails(tmp_path: Path) -> None:
    files = {
        "python/bgagent/a.py": "import bgagent.b\n",
        "python/bgagent/b.py": "from bgagent import a\n",
    }
    tree(tmp_path, files)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], check=False, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "cycle: python/bgagent/a.py -> python/bgagent/b.py -> python/bgagent/a.py" in run.stdout


@pytest.mark.parametrize("allowed", [True, False])
def test_an_allowed_cycle_is_reported_without_failing(tmp_path: Path, allowed: bool) -> None:
    files = {"python/bgagent/a.py": "from . import b\n", "python/bgagent/b.py": "from . import a\n"}
    group = {"python/bgagent/a.py", "python/bgagent/b.py"}
    found, notes = check_layers.check(tree(tmp_path, files), allowed=[group] if allowed else [])
    assert (found == []) is allowed
    assert any("cycle: python/bgagent/a.py" in line for line in found + notes)


def test_this_repository_passes() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT)], check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
