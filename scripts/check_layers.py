"""Checks that src modules import only downward: no cycle among them, and none imports a
module above it in the layer order the README's Layout section gives.

Run: python3 scripts/check_layers.py  (exit 1 with the offending imports listed)."""

import re
import sys
from pathlib import Path

# Top to bottom; a module may use only modules after it (the Python face also starts the CLI).
# `secrets` (the redaction rule) and `text` are leaf helpers.
LAYERS = [
    "python",
    "cli",
    "trace",
    "agent",
    "tools",
    "background",
    "exec",
    "error",
    "llm",
    "runtime",
    "secrets",
    "text",
]

src = Path(__file__).resolve().parent.parent / "src"
uses: dict[str, set[str]] = {name: set() for name in LAYERS}
for path in src.rglob("*.rs"):
    rel = path.relative_to(src)
    if rel.parts[0] in ("lib.rs", "bin"):
        continue
    module = rel.parts[0].removesuffix(".rs")
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests \{.*", "", path.read_text(), flags=re.DOTALL)
    for used in re.findall(r"\bcrate::(\w+)", text):
        if used != module and used in uses:
            uses[module].add(used)
        elif used not in uses and used not in ("Result", "Error", "Status"):
            print(f"{rel}: crate::{used} is not a known module")

bad = [
    f"{module} -> {used}"
    for module, targets in uses.items()
    for used in targets
    if LAYERS.index(used) < LAYERS.index(module)
]
for line in bad:
    print(f"upward import: {line}")
print(" ".join(f"{m}->{{{','.join(sorted(t))}}}" for m, t in uses.items() if t))
sys.exit(1 if bad else 0)
