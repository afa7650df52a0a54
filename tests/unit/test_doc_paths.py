"""Every source file the docs, the README and the code's own text point a reader at exists: a
module moved or renamed must take its mentions along."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where a path like `flows/loop.py` or `adapters/kinesis.py` is read from.
BASES = [
    ROOT,
    ROOT / "lambdas" / "grid_reingest",
    ROOT / "lambdas",
    ROOT / "scripts",
    ROOT / "scripts" / "grid_reingest_cli",
]
# The text that names files for readers (tests name made-up paths on purpose).
SOURCES = ["docs", "lambdas", "scripts", "infra", "devtools", "benchmarks"]
# A file name, with its folders if given: not the tail of a longer name, a URL or an escape.
MENTION = re.compile(r"(?<![\w./\\-])((?:[A-Za-z_][\w-]*/)*[A-Za-z_]\w*\.py)\b")


def _texts() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "Makefile"]
    for folder in SOURCES:
        found += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md")]
    return found


def _prose(path: Path) -> list[tuple[int, str]]:
    """The lines written for readers: all of a document; a module's comments and triple-quoted
    texts (its docstrings), not the strings it works with."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return list(enumerate(text.splitlines(), 1))
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT or (
            token.type == tokenize.STRING and token.string.lstrip("rbuRBU").startswith('"""')
        ):
            first = token.start[0]
            lines += [(first + i, line) for i, line in enumerate(token.string.splitlines())]
    return lines


def _exists(mention: str, names: set[str]) -> bool:
    if "/" not in mention:
        return mention in names  # a bare name, in a listing under its folder
    return any((base / mention).is_file() for base in BASES)


def test_every_python_file_mentioned_exists():
    names = {p.name for folder in [*SOURCES, "tests"] for p in (ROOT / folder).rglob("*.py")}
    missing = [
        f"{path.relative_to(ROOT)}:{number}: {mention}"
        for path in _texts()
        for number, line in _prose(path)
        for mention in MENTION.findall(line)
        if not _exists(mention, names)
    ]
    assert missing == []


def test_a_renamed_module_would_be_found():
    names = {"loop.py"}
    assert _exists("loop.py", names)
    assert not _exists("runner.py", names)
    assert not _exists("flows/runner.py", names)
    assert MENTION.findall(r'print("\ndemo.py: stopped")') == []
