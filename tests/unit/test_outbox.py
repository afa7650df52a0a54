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


def answered_call(outbox: BackgroundOutbox) -> float:
    """Send one record and collect its call: when it was answered."""
    outbox.add(claim(0), b"x")
    outbox.send()
    return outbox.collect(block=True).published_at


def test_a_record_to_go_alone_waits_for_a_quiet_second_holding_the_rest(clock):
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    answered = answered_call(outbox)
    # Given a record to go alone, and a full call of others ready
    outbox.add_alone(claim(1), b"large")
    for n in range(2, 2 + PUBLISH_MIN):
        outbox.add(claim(n), b"x")
    # Then nothing is due before the quiet second
    assert not outbox.due(eager=False)
    clock.sleep(QUIET_SECONDS)
    assert outbox.due(eager=False)
    # When it is sent, it goes alone, a quiet second after the last answer
    outbox.send()
    sent = outbox.collect(block=True)
    assert list(sent.claims) == [grid_id(1)]
    assert sent.published_at >= answered + QUIET_SECONDS
    # and the others go next
    assert outbox.due(eager=False)
    outbox.send()
    assert len(outbox.collect(block=True).claims) == PUBLISH_MIN


def test_one_call_of_the_rest_goes_between_two_records_sent_alone(clock):
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    answered_call(outbox)
    outbox.add_alone(claim(1), b"large")
    outbox.add_alone(claim(2), b"large")
    for n in range(3, 3 + PUBLISH_MIN):
        outbox.add(claim(n), b"x")
    clock.sleep(QUIET_SECONDS)
    calls = []
    for _ in range(3):
        while not outbox.due(eager=False):
            clock.sleep(0.1)
        outbox.send()
        calls.append(list(outbox.collect(block=True).claims))
    assert calls[0] == [grid_id(1)]
    assert len(calls[1]) == PUBLISH_MIN
    assert calls[2] == [grid_id(2)]


def test_eager_before_the_quiet_second_sends_the_rest_and_never_the_record_alone(clock):
    # (the last flush: it waits out the quiet second itself)
    outbox = BackgroundOutbox(Stream(), clock, Writes())
    answered_call(outbox)
    outbox.add_alone(claim(1), b"large")
    outbox.add(claim(2), b"x")
    assert outbox.due(eager=True)
    outbox.send()
    assert list(outbox.collect(block=True).claims) == [grid_id(2)]
    # Then with nothing else ready, eager is still due, but a call goes only once quiet
    assert outbox.due(eager=True)
    outbox.send()
    assert outbox.collect(block=True) is None
    clock.sleep(QUIET_SECONDS)
    outbox.send()
    assert list(outbox.collect(block=True).claims) == [grid_id(1)]
    assert not outbox.due(eager=True)
