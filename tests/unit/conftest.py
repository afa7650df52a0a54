"""The unit tier opens no sockets: domain and flows run on in-memory ports."""

from __future__ import annotations

import socket

import pytest

from devtools.memory_store import MemoryStore
from devtools.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when a flow sleeps."""
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    """The state table in memory, on `clock`."""
    return MemoryStore(clock=clock.now)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect fails the test at once, naming the address."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"a unit test tried to connect to {address!r}: use a fake port")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
