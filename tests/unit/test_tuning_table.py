"""docs/throughput.md's constants table names every field of Tuning: a constant added or
renamed takes its row (value, meaning, where it comes from) along."""

from dataclasses import fields
from pathlib import Path

from grid_reingest.domain.tuning import Tuning

DOC = Path(__file__).resolve().parents[2] / "docs" / "throughput.md"


def _table() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### The tuning constants")
    return text[start : text.index("\n## ", start)]


def test_every_tuning_constant_has_a_row_in_the_docs_table():
    rows = [line for line in _table().splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in row.split("|")[1].replace("`", " ").split(",")}
    missing = [f.name for f in fields(Tuning) if f.name not in {n.strip() for n in named}]
    assert not missing, f"docs/throughput.md's constants table lacks {', '.join(missing)}"
