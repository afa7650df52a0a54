"""Fixtures for tests against the emulator and the simulated Grid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.grid_server import GridSim
from grid_reingest.adapters.dynamodb.tables import OperatorTable


@pytest.fixture
def grid() -> Iterator[GridSim]:
    """A simulated Grid of its own for this test, on a free port of 127.0.0.1."""
    with GridSim() as sim:
        yield sim


@pytest.fixture
def table(table_name, dynamodb) -> Iterator[OperatorTable]:
    """The state table of this test, on the emulator."""
    with OperatorTable(table_name, dynamodb) as t:
        yield t


@pytest.fixture
def ids_path(tmp_path):
    """Writes a file of ids, one a line, and gives its path."""

    def write(ids: list[str]) -> str:
        path = tmp_path / "ids.txt"
        path.write_text("".join(f"{i}\n" for i in ids))
        return str(path)

    return write
