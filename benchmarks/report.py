"""Writing benchmark results into docs/benchmarks.md, one section per benchmark."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured on demand (`make bench`, or `python -m benchmarks.<name>`), never in the
test suite: these machines are shared and noisy. Each benchmark runs the design
and its baseline side by side in one run and reports the ratio.
"""


def machine() -> str:
    """One line saying where and when a result was measured."""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    return (
        f"{when}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    )


def write_section(title: str, body: str) -> None:
    """Replace (or add) the section `## title` of docs/benchmarks.md."""
    text = DOC.read_text() if DOC.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
