"""The lesson's page in three languages: the same headings in the same order (each in its own
language), identical code blocks, a sync footer, links that resolve, and every command in a
block marked `runnable` runs."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
LANGS = ["en", "zh", "ja"]
PAGE = "s08-background-tasks.md"
CJK = re.compile(r"[\u4e00-\u9fff]")
KANA = re.compile(r"[\u3040-\u30ff]")


def parse(lang: str):
    """(headings as (level, text), code blocks as (info, body), the last line)."""
    text = (DOCS / lang / PAGE).read_text(encoding="utf-8")
    headings, blocks, fence = [], [], None
    for line in text.splitlines():
        if fence is not None:
            if line.startswith("```"):
                blocks.append((fence[0], "\n".join(fence[1])))
                fence = None
            else:
                fence[1].append(line)
        elif line.startswith("```"):
            fence = (line[3:].strip(), [])
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            headings.append((level, line[level:].strip()))
    return headings, blocks, text.strip().splitlines()[-1]


def test_the_three_languages_have_the_same_structure_and_code():
    pages = {lang: parse(lang) for lang in LANGS}
    en_headings, en_blocks, _ = pages["en"]
    assert len(en_headings) >= 9 and len(en_blocks) >= 6
    for lang in ("zh", "ja"):
        headings, blocks, _ = pages[lang]
        assert [level for level, _ in headings] == [level for level, _ in en_headings], lang
        assert blocks == en_blocks, f"{lang}: code blocks differ from English"
        for (_, mine), (_, english) in zip(headings, en_headings):
            assert CJK.search(mine) or KANA.search(mine), f"{lang} heading not translated: {mine}"
            assert mine != english
    assert not any(CJK.search(h) for _, h in en_headings)
    assert KANA.search((DOCS / "ja" / PAGE).read_text(encoding="utf-8"))
    footers = {lang: pages[lang][2] for lang in LANGS}
    assert footers["en"].startswith("Sync:") and "edition 1" in footers["en"]
    assert footers["zh"].startswith("同步：") and "第 1 版" in footers["zh"]
    assert footers["ja"].startswith("同期：") and "第 1 版" in footers["ja"]


@pytest.mark.parametrize("lang", LANGS)
def test_links_and_pictures_resolve(lang):
    text = (DOCS / lang / PAGE).read_text(encoding="utf-8")
    targets = re.findall(r"\]\((\.\./[^)#\s]+)\)", text)
    assert targets
    for target in targets:
        assert (DOCS / lang / target).resolve().exists(), target


def runnable_blocks():
    _, blocks, _ = parse("en")
    return [(info.split()[0], body) for info, body in blocks if "runnable" in info.split()]


@pytest.mark.parametrize("kind,body", runnable_blocks(), ids=lambda v: str(v)[:40])
def test_every_runnable_command_runs(kind, body, tmp_path):
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), "NO_COLOR": "1"}
    env = {k: v for k, v in env.items() if not k.startswith(("ANTHROPIC_", "MODEL_ID"))}
    if kind == "sh":
        commands = [line for line in body.splitlines() if line.strip() and not line.startswith("#")]
        argvs = [["bash", "-c", command] for command in commands]
    else:
        argvs = [[sys.executable, "-c", body]]
    for argv in argvs:
        out = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert out.returncode == 0, f"{argv[-1]}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
