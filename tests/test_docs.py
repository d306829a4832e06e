"""Every code block of README.md and docs/*.md runs as written.

Each ```python block is run on its own (a fresh namespace, an empty working folder) as on a fresh
machine: every optional data set and encoder hidden (``ICONLEARN_WITHOUT=all``), an empty feature
cache, no GPU asked for. A block that needs optional data, a GPU or a long run says so in its info
string, ```python no-run: it is reported as skipped, with where it stands. ```bash blocks are not
run; every ``iconlearn`` subcommand and option they write must exist.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # small problems, a shared machine

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)(.*)$")


def code_blocks(path: Path) -> list[tuple[str, set, int, str]]:
    """(language, info words after it, first line number, code) of every fenced block of a file."""
    blocks, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((m.group(1), set(m.group(2).split()), start + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


def _blocks(language: str):
    return [pytest.param(path, info, line, code, id=f"{path.relative_to(ROOT)}:{line}")
            for path in DOCS for lang, info, line, code in code_blocks(path) if lang == language]


@pytest.mark.parametrize("path, info, line, code", _blocks("python"))
def test_python_block_runs(path, info, line, code, tmp_path, monkeypatch):
    if "no-run" in info:
        pytest.skip(f"{path.relative_to(ROOT)}:{line} is marked no-run (optional data, a GPU or a long run)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ICONLEARN_WITHOUT", "all")
    monkeypatch.setenv("ICONLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(compile(code, f"{path.relative_to(ROOT)}:{line}", "exec"), {"__name__": "__main__"})


def _commands() -> dict[str, set[str]]:
    """subcommand -> its option strings, from the parser ``iconlearn --help`` prints."""
    import argparse

    from iconlearn.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


def _iconlearn_calls(code: str):
    """(subcommand, its words) of every ``iconlearn SUB ...`` (or ``-m iconlearn.cli SUB``) in shell
    text, up to a comment, ``&&``, ``|`` or ``;``; continued lines joined."""
    for line in code.replace("\\\n", " ").splitlines():
        for m in re.finditer(r"\biconlearn(?:\.cli)?\s+([a-z][\w-]*)(.*)", line.split(" #")[0]):
            yield m.group(1), shlex.split(re.split(r"&&|\||;", m.group(2))[0])


@pytest.mark.parametrize("path, info, line, code", _blocks("bash"))
def test_shell_block_names_real_subcommands_and_options(path, info, line, code):
    commands = _commands()
    for sub, words in _iconlearn_calls(code):
        assert sub in commands, f"{path.name}:{line}: 'iconlearn {sub}' is not a subcommand of {sorted(commands)}"
        for w in words:
            flag = w.split("=")[0]
            if flag.startswith("--"):
                assert flag in commands[sub], f"{path.name}:{line}: 'iconlearn {sub}' has no option {flag}"


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    heads = re.findall(r"^#+ (.*)$", path.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_the_documents_link_to_files_and_headings_that_exist():
    for path in DOCS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            linked = path.parent / target if target else path
            assert linked.exists(), f"{path.relative_to(ROOT)} links to missing {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{path.relative_to(ROOT)} links to missing {target}#{anchor}"
