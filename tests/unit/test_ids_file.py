"""Reading files of ids as operators produce them, one line at a time."""

import re

import pytest

from grid_reingest_cli.ids_file import (
    MAX_SHOWN,
    BinaryInput,
    RecentIds,
    check_lines,
    valid_ids,
)

A = "a" * 40
B = "b" * 40


def test_ids_file_tolerates_bom_crlf_whitespace_and_blank_lines():
    # Given
    lines = [b"\xef\xbb\xbf" + A.encode() + b"\r\n", b"\t" + B.encode() + b" \r\n", b"\r\n", b" \n"]
    # When
    check = check_lines(lines)
    # Then
    assert list(valid_ids(lines)) == [A, B]
    assert (check.lines, check.blank, check.ids, check.invalid) == (4, 2, 2, 0)


def test_ids_file_counts_repeats_once_and_keeps_order():
    lines = [B.encode(), A.encode(), B.encode(), B.encode()]
    assert list(valid_ids(lines)) == [B, A]
    assert check_lines(lines).duplicates == 2


def test_ids_file_invalid_lines_carry_their_line_numbers():
    check = check_lines([A.encode(), b"two words", b"ctrl\x01char", b"\xff\xfe", b"x" * 300])
    assert [(p.line, p.reason.split()[0]) for p in check.shown] == [
        (2, "contains"),
        (3, "contains"),
        (4, "not"),
        (5, "longer"),
    ]
    assert check.ids == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"id", "a header line"),
        (b'"' + A.encode() + b'"', "quoted"),
        (A.upper().encode(), "upper-case hex"),
        (b".", "path segment"),
        (b"..", "path segment"),
        (b"abc123", "not a Grid id"),
    ],
)
def test_ids_file_refuses_what_is_not_a_grid_id(line, reason):
    check = check_lines([line])
    assert check.invalid == 1
    assert reason in check.shown[0].reason


def test_ids_file_allow_any_id_still_refuses_dots_and_long_ids():
    lines = [b"my-image", b"..", b"x" * 257, b"x" * 256]
    check = check_lines(lines, allow_any=True)
    assert [p.line for p in check.shown] == [2, 3]
    assert list(valid_ids(lines, allow_any=True)) == ["my-image", "x" * 256]


def test_ids_file_a_bom_only_counts_on_the_first_line():
    check = check_lines([A.encode(), b"\xef\xbb\xbf" + B.encode()])
    assert [p.line for p in check.shown] == [2]


def test_ids_file_shows_the_first_twenty_problems_and_counts_the_rest():
    # Given 500 lines of scan-statuses output
    lines = [f"{i:040x} 4".encode() for i in range(500)]
    # When
    check = check_lines(lines)
    # Then
    assert len(check.shown) == MAX_SHOWN
    assert check.invalid == 500
    assert "take the first column" in check.hint_lines()[0]
    assert "500 line(s)" in check.hint_lines()[0]


def test_ids_file_hints_at_a_csv_header():
    check = check_lines([b"id,state", f"{A},4".encode()])
    assert any("header" in h for h in check.hint_lines())
    assert any("CSV" in h for h in check.hint_lines())


def test_recent_ids_forgets_beyond_two_windows():
    # Given a window of 3
    recent = RecentIds(3)
    # When 7 ids pass
    for n in range(7):
        assert not recent.seen(str(n))
    # Then the latest are remembered, the oldest forgotten
    assert recent.seen("6")
    assert recent.seen("3")
    assert not recent.seen("0")


@pytest.mark.parametrize(
    ("first", "said"),
    [
        (b"\x1f\x8b\x08\x00", "a gzip file: decompress it first"),
        (b"PK\x03\x04abc", "a zip file"),
        (b"\xff\xfea\x00b\x00", "UTF-16 text"),
        (b"abc\x00def", "a binary file, not text of ids (a NUL byte on line 1)"),
    ],
)
def test_a_binary_file_is_refused_as_binary_not_line_by_line(first, said):
    with pytest.raises(BinaryInput, match=re.escape(said)):
        check_lines([first, b"0" * 40 + b"\n"])


def test_a_nul_byte_further_down_names_its_line():
    lines = [f"{i:040x}\n".encode() for i in range(5)] + [b"\x00\x00\n"]
    with pytest.raises(BinaryInput, match="on line 6"):
        check_lines(lines)
