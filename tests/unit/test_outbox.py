"""batch-index's outbox (flows/outbox.py): when ready records go, one call at a time, and what
comes back from a call."""

from __future__ import annotations

import pytest

from devtools.testing import FakeClock, Stream, grid_id
from grid_reingest.domain.claims import Claim
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.outbox import (
    PUBLISH_LINGER_SECONDS,
    PUBLISH_MIN,
    QUIET_SECONDS,
    BackgroundOutbox,
)
from grid_reingest.ports import PublishResult


def claim(n: int) -> Claim:
    return Claim(grid_id(n), attempts=0, claimed_from=S.NOT_STARTED)


class Writes:
    """The enqueue writer: remembers what it was asked to write; every write applied."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def __call__(self, claims):
        self.asked.append([c.id for c in claims])
        return [], [], None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_nothing_ready_is_never_due(clock):
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    assert not outbox.due(eager=True)
    assert outbox.collect(block=True) is None
    assert outbox.close() is None


def test_records_wait_for_a_full_call_or_the_linger_unless_eager(clock):
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    outbox.add(claim(1), b"x")
    assert not outbox.due(eager=False)
    assert outbox.due(eager=True)
    clock.sleep(PUBLISH_LINGER_SECONDS)
    assert outbox.due(eager=False)


def test_a_full_call_is_due_at_once(clock):
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    for n in range(PUBLISH_MIN - 1):
        outbox.add(claim(n), b"x")
    assert not outbox.due(eager=False)
    outbox.add(claim(PUBLISH_MIN), b"x")
    assert outbox.due(eager=False)


def test_a_call_sends_what_is_ready_and_writes_only_the_accepted(clock):
    # Given a stream that turns the second record away
    def answer(records):
        first, second = (i for i, _ in records)
        return PublishResult(accepted=[first], rejected={second: "throttled"}, calls=1)

    stream, writes = Stream(answer), Writes()
    outbox = BackgroundOutbox(stream, clock, writes)
    outbox.add(claim(1), b"one")
    outbox.add(claim(2), b"two")
    # When
    outbox.send()
    sent = outbox.collect(block=True)
    # Then the call carried both; only the accepted one was written as enqueued
    assert sent is not None
    assert set(sent.claims) == {grid_id(1), grid_id(2)}
    assert sent.result.rejected == {grid_id(2): "throttled"}
    assert writes.asked == [[grid_id(1)]]
    assert stream.records == [(grid_id(1), b"one")]
    assert not outbox.due(eager=True)  # nothing left ready


def test_a_second_call_waits_until_the_first_is_collected(clock):
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    outbox.add(claim(1), b"x")
    outbox.send()
    outbox.add(claim(2), b"x")
    with pytest.raises(RuntimeError, match="collect it first"):
        outbox.send()
    assert outbox.close() is not None


def test_a_record_to_go_alone_waits_for_a_quiet_second_and_goes_ahead_of_the_rest(clock):
    stream = Stream()
    outbox = BackgroundOutbox(stream, clock, Writes())
    outbox.add(claim(1), b"x")
    outbox.send()
    answered = outbox.collect(block=True).published_at
    # Given a record to go alone, and others ready
    outbox.add_alone(claim(2), b"large")
    for n in range(3, 3 + PUBLISH_MIN):
        outbox.add(claim(n), b"x")
    # Then nothing is due before the quiet second, though a full call waits
    assert not outbox.due(eager=False)
    assert outbox.due(eager=True)  # (the last flush: sent once the second has come)
    # When it is sent
    outbox.send()
    sent = outbox.collect(block=True)
    # Then it went alone, a quiet second after the last answer, and the rest after it
    assert list(sent.claims) == [grid_id(2)]
    assert sent.published_at >= answered + QUIET_SECONDS
    assert outbox.due(eager=False)
    outbox.send()
    assert len(outbox.collect(block=True).claims) == PUBLISH_MIN
