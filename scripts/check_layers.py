"""Checks the shape of the code's imports:

1. src's top-level modules import only downward, in the layer order the README's Layout
   section gives (so there is no cycle among them either);
2. no cycle among the files of a Rust crate (the core, src/, and the bindings,
   bindings/python/src/): `crate::`, `super::` and `self::` paths, paths through a child
   module or a `use`d name, resolved to the file that defines the item (re-exports followed);
3. no cycle among the Python package's modules (python/bgagent/*.py), counting every import:
   top-level, function-local and typing-only.

Run: python3 scripts/check_layers.py [ROOT]  (exit 1 with the offending imports or the cycle
printed). ROOT defaults to the repository holding this script."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

# Top to bottom; a module may use only modules after it. `session` assembles a run for every
# face; `kit` is the background tools for a loop of one's own, which `mcp` serves; `defaults`, `secrets` (the redaction rule) and `text` are leaf helpers.
LAYERS = [
    "cli",
    "mcp",
    "session",
    "trace",
    "kit",
    "agent",
    "tools",
    "background",
    "store",
    "exec",
    "error",
    "llm",
    "runtime",
    "defaults",
    "secrets",
    "text",
]
# Cycles known and being taken apart elsewhere, each named by the files of its circle: they
# are reported but do not fail the check. One that no longer exists is reported too, so that
# its line is removed.
ALLOWED_CYCLES: list[set[str]] = []
# Names the crate root re-exports (`crate::Result`), which are no module.
ROOT_ITEMS = ("Result", "Error", "Status")

Module = tuple[str, ...]


# ---- Rust ------------------------------------------------------------------------------------


RAW = re.compile(r'r(#*)"')
CHAR = re.compile(r"'(\\.[^']{0,9}|[^\\'])'")


def strip_rust(text: str) -> str:
    """The code without comments, string literals and `#[cfg(test)] mod ... { }` blocks (a
    test module's `use super::*` is no dependency of the file)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == '"' or (c == "r" and RAW.match(text, i) and not _ident_before(text, i)):
            if c == "r":
                hashes = RAW.match(text, i).group(1)
                end = text.find('"' + hashes, i + 2 + len(hashes))
                i = n if end < 0 else end + 1 + len(hashes)
            else:
                i += 1
                while i < n and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
                i += 1
            out.append('""')
        elif c == "'" and CHAR.match(text, i):
            # A char literal ('"' would otherwise open a string); a lifetime stays.
            i += len(CHAR.match(text, i).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    # `#[cfg(test)] mod NAME { ... }`, braces balanced.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code)
        if not m:
            return code
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[: m.start()] + code[j:]


def _ident_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


class Crate:
    """A crate's files by module path, what each declares and imports, and the file edges."""

    def __init__(self, root_file: Path) -> None:
        self.files: dict[Module, Path] = {}
        self.code: dict[Module, str] = {}
        self.children: dict[Module, set[str]] = {}
        self.imports: dict[Module, dict[str, Module]] = {}  # local name -> absolute path
        self.globs: dict[Module, list[Module]] = {}
        self._load((), root_file)
        for module in self.files:
            self._read_uses(module)

    def _load(self, module: Module, path: Path) -> None:
        self.files[module] = path
        code = strip_rust(path.read_text())
        self.code[module] = code
        self.children[module] = set()
        here = path.parent if path.name in ("lib.rs", "main.rs", "mod.rs") else path.with_suffix("")
        for name in re.findall(r"(?:^|[;}\]\s])mod\s+(\w+)\s*;", code):
            for child in (here / f"{name}.rs", here / name / "mod.rs"):
                if child.exists():
                    self.children[module].add(name)
                    self._load((*module, name), child)
                    break

    def _absolute(
        self, module: Module, segs: list[str], imports: dict[str, Module] | None = None
    ) -> Module | None:
        """A path written in `module` as an absolute module path, or None if it leaves the
        crate (std, another crate). `imports`: the module's, while they are being read."""
        if not segs:
            return None
        head, rest = segs[0], segs[1:]
        if head == "crate":
            return tuple(rest)
        if head == "self":
            return (*module, *rest)
        if head == "super":
            base = list(module)
            while segs and segs[0] == "super":
                if not base:
                    return None
                base.pop()
                segs = segs[1:]
            if segs and segs[0] == "self":
                segs = segs[1:]
            return (*base, *segs)
        if head in self.children.get(module, ()):
            return (*module, *segs)
        imports = self.imports.get(module, {}) if imports is None else imports
        target = imports.get(head)
        if target is not None:
            return (*target, *rest)
        return None

    def _read_uses(self, module: Module) -> None:
        imports: dict[str, Module] = {}
        globs: list[Module] = []
        for body in re.findall(r"\buse\s+([^;]+);", self.code[module]):
            for segs, alias in expand_use(use_body(body)):
                if segs[-1] == "*":
                    path = self._absolute(module, segs[:-1])
                    if path is not None:
                        globs.append(path)
                    continue
                if segs[-1] == "self":
                    segs = segs[:-1]
                name = alias or segs[-1]
                if name == "_":
                    name = f"_{len(imports)}"
                # Earlier imports of the file may name what a later one starts with.
                path = self._absolute(module, segs, imports)
                if path is not None:
                    imports[name] = path
        self.imports[module] = imports
        self.globs[module] = globs

    def resolve(self, path: Module, depth: int = 0) -> Module | None:
        """The module whose file defines what `path` names: child modules descended, imported
        names (re-exports) followed."""
        module: Module = ()
        rest = list(path)
        while rest:
            seg = rest[0]
            if seg in self.children.get(module, ()):
                module = (*module, seg)
                rest.pop(0)
                continue
            target = self.imports.get(module, {}).get(seg)
            if target is not None and depth < 20 and target != (*module, seg):
                found = self.resolve((*target, *rest[1:]), depth + 1)
                return found if found is not None else module
            break
        return module if module in self.files else None

    def edges(self) -> dict[Path, set[Path]]:
        graph: dict[Path, set[Path]] = {path: set() for path in self.files.values()}
        for module, code in self.code.items():
            here = self.files[module]
            without_uses = re.sub(r"\buse\s+[^;]+;", ";", code)
            # An imported name counts where the file uses it; a name only re-exported (the
            # facade of a module) is followed by `resolve`, not counted here.
            words = set(re.findall(r"\w+", without_uses))
            targets = [p for name, p in self.imports[module].items() if name in words]
            targets += self.globs[module]
            for m in re.finditer(r"(?<![\w:])((?:r#)?\w+(?:\s*::\s*(?:r#)?\w+)+)", without_uses):
                segs = [s.strip() for s in m.group(1).split("::")]
                path = self._absolute(module, segs)
                if path is not None:
                    targets.append(path)
            for path in targets:
                found = self.resolve(path)
                if found is not None and self.files[found] != here:
                    graph[here].add(self.files[found])
        return graph


def use_body(body: str) -> str:
    """A `use` declaration's tree without spaces, `x as y` written `x@y`."""
    return re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", body))


def expand_use(body: str) -> list[tuple[list[str], str | None]]:
    """`a::{b, c::{d as e}}` (written `a::{b,c::{d@e}}`: see `use_body`) as ([a, b], None),
    ([a, c, d], "e")."""
    body = body.lstrip(":")
    brace = body.find("{")
    if brace < 0:
        path, _, alias = body.partition("@")
        return [(path.split("::"), alias or None)]
    prefix = [s for s in body[:brace].split("::") if s]
    inner = body[brace + 1 : body.rindex("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    out = []
    for part in parts:
        if part:
            for segs, alias in expand_use(part):
                out.append(([*prefix, *segs], alias))
    return out


# ---- Python ----------------------------------------------------------------------------------


def python_edges(package: Path) -> dict[Path, set[Path]]:
    """Every import of one package module by another, wherever it is written."""
    modules = {p.stem: p for p in package.glob("*.py")}
    graph: dict[Path, set[Path]] = {p: set() for p in modules.values()}
    name = package.name
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                within = node.level == 1 or (
                    node.level == 0
                    and node.module is not None
                    and (node.module == name or node.module.startswith(name + "."))
                )
                if not within:
                    continue
                module = node.module if node.level == 1 else node.module.removeprefix(name)
                module = (module or "").lstrip(".")
                if module:
                    targets.append(module.split(".")[0])
                else:
                    # `from . import x`: the module x, or a name of the package's __init__.
                    # An extension module (a `.pyi` stub beside it) is outside the graph.
                    targets += [
                        a.name
                        if a.name in modules or (package / f"{a.name}.pyi").exists()
                        else "__init__"
                        for a in node.names
                    ]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == name and len(parts) > 1:
                        targets.append(parts[1])
            for target in targets:
                if target in modules and modules[target] != path:
                    graph[path].add(modules[target])
    return graph


# ---- Cycles ----------------------------------------------------------------------------------


def find_cycles(graph: dict[Path, set[Path]]) -> list[tuple[list[Path], set[Path]]]:
    """Per strongly connected group of files: one cycle in it (the first file repeated at the
    end), and the whole group."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    groups: list[list[Path]] = []

    def connect(v: Path) -> None:
        # Iterative Tarjan: a deep chain of files must not hit the recursion limit.
        work = [(v, iter(sorted(graph.get(v, ()))))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == node:
                            break
                    if len(group) > 1:
                        groups.append(group)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [(cycle_in(graph, set(g)), set(g)) for g in groups]


def cycle_in(graph: dict[Path, set[Path]], group: set[Path]) -> list[Path]:
    """A shortest way from the group's first file back to itself, inside the group."""
    start = min(group)
    came_from: dict[Path, Path] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in came_from:
                    came_from[w] = v
                    following.append(w)
        frontier = following
    return [start]


# ---- The checks ------------------------------------------------------------------------------


def layer_problems(src: Path) -> list[str]:
    uses: dict[str, set[str]] = {name: set() for name in LAYERS}
    problems = []
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        if rel.parts[0] in ("lib.rs", "bin"):
            continue
        module = rel.parts[0].removesuffix(".rs")
        if module not in uses:
            problems.append(f"src/{rel}: module {module} has no place in the layers")
            continue
        for used in re.findall(r"\bcrate::(\w+)", strip_rust(path.read_text())):
            if used != module and used in uses:
                uses[module].add(used)
            elif used not in uses and used not in ROOT_ITEMS:
                problems.append(f"src/{rel}: crate::{used} is not a known module")
    for module, targets in uses.items():
        for used in sorted(targets):
            if LAYERS.index(used) < LAYERS.index(module):
                problems.append(f"upward import: {module} -> {used}")
    return problems


def check(root: Path, allowed: list[set[str]] | None = None) -> tuple[list[str], list[str]]:
    """What is wrong with the tree at `root` (nothing: an empty list), and notes that do not
    fail the check (the cycles `allowed`, `ALLOWED_CYCLES` unless told)."""
    allowed = ALLOWED_CYCLES if allowed is None else allowed
    notes = []
    problems = []
    src = root / "src"
    if src.is_dir():
        problems += layer_problems(src)
    graphs = []
    for lib in (src / "lib.rs", root / "bindings" / "python" / "src" / "lib.rs"):
        if lib.exists():
            graphs.append(Crate(lib).edges())
    package = root / "python" / "bgagent"
    if package.is_dir():
        graphs.append(python_edges(package))
    seen = []
    for graph in graphs:
        for cycle, group in find_cycles(graph):
            files = {p.relative_to(root).as_posix() for p in group}
            line = "cycle: " + " -> ".join(p.relative_to(root).as_posix() for p in cycle)
            rest = sorted(files - {p.relative_to(root).as_posix() for p in cycle})
            if rest:
                line += f" (its circle also takes in {', '.join(rest)})"
            if files in allowed:
                seen.append(files)
                notes.append(f"known {line}")
            else:
                problems.append(line)
    for files in allowed:
        if files not in seen:
            notes.append(f"allowed cycle no longer there (remove it): {', '.join(sorted(files))}")
    return problems, notes


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems, notes = check(root.resolve())
    for line in notes + problems:
        print(line)
    if not problems:
        print("layers and imports: no upward import, no cycle but those allowed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
