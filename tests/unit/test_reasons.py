"""Failure messages grouped by cause: what varies from image to image is taken out."""

import pytest

from grid_reingest.domain.reasons import MAX_REASON_CHARS, normalise


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
