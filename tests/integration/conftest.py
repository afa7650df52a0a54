"""Fixtures for tests against the simulated Grid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.grid_sim import GridSim


@pytest.fixture
def grid() -> Iterator[GridSim]:
    """A simulated Grid of its own for this test, on a free port of 127.0.0.1."""
    with GridSim() as sim:
        yield sim
