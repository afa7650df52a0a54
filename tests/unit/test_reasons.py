"""Failure messages grouped by cause: what varies from image to image is taken out."""

import pytest

from grid_reingest.domain.reasons import MAX_REASON_CHARS, group_id, group_id_state, normalise
from grid_reingest.domain.states import ProgressState


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            "image-loader: HTTP 500: CommandException: cannot read "
            "0123456789abcdef0123456789abcdef01234567.jpg",
            "image-loader: HTTP 500: CommandException: cannot read "
            "fedcba9876543210fedcba9876543210fedcba98.jpg",
        ),
        (
            "image-loader: timeout after 300.0 s (request 3f2a1b9c-1d2e-4f5a-8b9c-0d1e2f3a4b5c)",
            "image-loader: timeout after 301.5 s (request 00000000-1111-2222-3333-444444444444)",
        ),
        (
            "leases: HTTP 503 from https://media-leases.a.org/leases/media/abc: overloaded",
            "leases: HTTP 503 from https://media-leases.a.org/leases/media/def: overloaded",
        ),
        ("connect to 10.0.3.17:443 failed", "connect to 10.0.9.200:443 failed"),
        ("record of 1,048,577 bytes > 1048576", "record of 2,000,001 bytes > 1048576"),
        ("at 2026-11-29T20:35:45.123Z: refused", "at 2026-11-30T01:02:03Z: refused"),
        ("pointer 0x7f3a2b", "pointer 0xdeadbeef"),
        ("record of 1234567 bytes > 1048576", "record of 20000000 bytes > 1048576"),
        (
            "loader: HTTP 502 for 0000000000000000000000000000000000000001",
            "loader: HTTP 502 for 00000000000000000000000000000000000000ab",
        ),
    ],
)
def test_reasons_messages_differing_only_by_ids_and_numbers_group_together(first, second):
    assert normalise(first) == normalise(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("image-loader: HTTP 500: x", "image-loader: HTTP 502: x"),
        ("image-loader: HTTP 500: x", "media-api: HTTP 500: x"),
        ("org.im4java.core.CommandException", "End of data reached."),
    ],
)
def test_reasons_different_causes_stay_apart(first, second):
    assert normalise(first) != normalise(second)


def test_reasons_keep_digits_inside_words():
    assert "im4java" in normalise("org.im4java.core.CommandException")


def test_reasons_empty_and_long_messages():
    assert normalise(None) == normalise("") == "(no error recorded)"
    assert len(normalise("word " * 500)) == MAX_REASON_CHARS


def test_group_ids_are_the_state_then_a_digest_the_same_in_every_run():
    # Pinned: a group's id must not change between runs, processes or releases of Python
    assert group_id(8, "leases: HTTP 500: boom") == "8-e4d1227b"
    assert group_id(ProgressState.UNKNOWN_ERROR, "leases: HTTP 500: boom") == "8-e4d1227b"
    assert group_id(9001, "(no error recorded)") == group_id(9001, normalise(None))


def test_group_ids_do_not_depend_on_the_order_groups_are_met():
    pairs = [(s, r) for s in (4, 7, 8, 9001) for r in ("a", "b: HTTP 500", normalise(None))]
    forwards = [group_id(*p) for p in pairs]
    backwards = [group_id(*p) for p in reversed(pairs)]
    assert forwards == list(reversed(backwards))
    assert len(set(forwards)) == len(pairs)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((8, "leases: HTTP 500: boom"), (4, "leases: HTTP 500: boom")),
        ((8, "leases: HTTP 500: boom"), (8, "leases: HTTP 502: boom")),
        # The separator keeps the state and the reason apart: 8 + "1x" is not 81 + "x"
        ((8, "1x"), (81, "x")),
    ],
)
def test_group_ids_differ_for_another_state_or_reason(first, second):
    assert group_id(*first) != group_id(*second)


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("8-e4d1227b", 8),
        ("9001-0123abcd", 9001),
        (" 4-ABCDEF01 ", 4),
        ("8", None),
        ("8-e4d1227", None),
        ("8-e4d1227bb", None),
        ("x-e4d1227b", None),
        ("8-g4d1227b", None),
    ],
)
def test_group_id_state_reads_the_state_of_a_well_shaped_id(text, state):
    assert group_id_state(text) == state
