"""Records the stream turned away: sent again, then judged by size and the invocation's bytes."""

from __future__ import annotations

from grid_reingest.domain.thrall_message import SHARD_BYTES_PER_SECOND
from grid_reingest.flows.turned_away import (
    LARGE_RECORD_BYTES,
    QUIET_CALLS_PER_MINUTE,
    STREAM_RESENDS,
    Next,
    TurnedAway,
)

LARGE = b"x" * LARGE_RECORD_BYTES
SMALL = b"x" * (LARGE_RECORD_BYTES // 10)


def spent(turned: TurnedAway, image_id: str, data: bytes, at: float = 0.0) -> None:
    for _ in range(STREAM_RESENDS):
        assert turned.judge(image_id, data, at) is Next.AGAIN


def test_a_turned_away_record_goes_again_its_resends_then_is_judged():
    turned = TurnedAway()
    spent(turned, "a", SMALL)
    assert turned.judge("a", SMALL, 0.0) is Next.SYSTEM
    # each record has resends of its own
    assert turned.judge("b", SMALL, 0.0) is Next.AGAIN


def test_a_large_record_turned_away_with_the_shard_left_to_it_is_its_own():
    turned = TurnedAway()
    turned.accepted(10.0, [("c", SMALL)])  # a little of ours beside it: room left
    spent(turned, "a", LARGE)
    assert turned.judge("a", LARGE, 10.5) is Next.OWN


def test_a_large_record_turned_away_while_the_invocation_filled_the_second_goes_alone():
    # Given the invocation's own records, accepted in the second up to the call, leaving
    # less than the record's size of a shard's second
    turned = TurnedAway()
    ours = SHARD_BYTES_PER_SECOND - len(LARGE) + 1
    turned.accepted(10.0, [("c", b"y" * ours)])
    spent(turned, "a", LARGE)
    # Then it is not charged: it goes once more, alone, in a quiet second
    assert turned.judge("a", LARGE, 10.9) is Next.QUIET
    assert turned.own_bytes(10.9) == ours + 1  # data and partition key
    # and turned away there, with the second left to it, it is its own
    assert turned.judge("a", LARGE, 11.0) is Next.OWN
    assert turned.own_bytes(11.0) == 0


def test_a_large_record_turned_away_alone_while_the_second_is_still_full_is_the_systems():
    turned = TurnedAway()
    spent(turned, "a", LARGE)
    turned.accepted(10.0, [("c", LARGE)])
    assert turned.judge("a", LARGE, 10.5) is Next.QUIET
    turned.accepted(10.6, [("c", LARGE)])  # its quiet call was not quiet after all
    assert turned.judge("a", LARGE, 10.7) is Next.SYSTEM


def test_bytes_the_stream_took_later_than_the_call_are_not_counted():
    turned = TurnedAway()
    turned.accepted(12.0, [("c", LARGE)])
    assert turned.own_bytes(11.5) == 0
    assert turned.accepted(12.9, []) is None and turned.own_bytes(12.9) == len(LARGE) + 1


def test_without_resends_a_record_is_judged_at_once_and_unspent_is_the_systems():
    turned = TurnedAway()
    assert turned.judge("a", LARGE, 0.0, resend=False) is Next.SYSTEM  # resends not spent
    spent(turned, "b", LARGE)
    assert turned.judge("b", LARGE, 0.0, resend=False) is Next.OWN
    spent(turned, "c", SMALL)
    assert turned.judge("c", SMALL, 0.0, resend=False) is Next.SYSTEM
    turned.accepted(0.0, [("x", LARGE)])
    spent(turned, "d", LARGE)
    assert turned.judge("d", LARGE, 0.0, resend=False) is Next.SYSTEM  # no quiet call left


def test_records_sent_alone_are_capped_a_minute_and_the_rest_are_the_systems():
    turned = TurnedAway()
    ids = [f"r{n}" for n in range(QUIET_CALLS_PER_MINUTE + 1)]
    for image_id in ids:
        spent(turned, image_id, LARGE)
    turned.accepted(10.0, [("x", LARGE)])
    verdicts = [turned.judge(image_id, LARGE, 10.5) for image_id in ids]
    assert verdicts == [Next.QUIET] * QUIET_CALLS_PER_MINUTE + [Next.SYSTEM]
    # and a minute later there is room for another
    spent(turned, "later", LARGE)
    turned.accepted(70.4, [("x", LARGE)])
    assert turned.judge("later", LARGE, 70.6) is Next.QUIET
