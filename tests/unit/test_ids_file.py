"""Parsing files of ids as operators produce them."""

from grid_reingest_cli.ids_file import read_ids

A = "a" * 40
B = "b" * 40


def test_bom_crlf_whitespace_and_blank_lines_are_tolerated():
    parsed = read_ids(
        [b"\xef\xbb\xbf" + A.encode() + b"\r\n", b"\t" + B.encode() + b" \r\n", b"\r\n", b"   \n"]
    )
    assert parsed.ids == [A, B]
    assert (parsed.lines, parsed.blank, parsed.invalid, parsed.unusual) == (4, 2, [], [])


def test_duplicates_are_counted_once_and_order_is_kept():
    parsed = read_ids([B.encode(), A.encode(), B.encode(), B.encode()])
    assert parsed.ids == [B, A]
    assert parsed.duplicates == 2


def test_invalid_lines_carry_their_line_numbers():
    parsed = read_ids([A.encode(), b"two words", b"ctrl\x01char", b"\xff\xfe", b"x" * 3000])
    assert [(p.line, p.reason.split()[0]) for p in parsed.invalid] == [
        (2, "contains"),
        (3, "contains"),
        (4, "not"),
        (5, "longer"),
    ]
    assert parsed.ids == [A]


def test_ids_not_shaped_like_grid_ids_are_kept_with_a_warning():
    parsed = read_ids([A.upper().encode(), b"short", A.encode()])
    assert parsed.ids == [A.upper(), "short", A]
    assert [p.line for p in parsed.unusual] == [1, 2]


def test_a_bom_only_counts_on_the_first_line():
    parsed = read_ids([A.encode(), b"\xef\xbb\xbf" + B.encode()])
    assert [p.line for p in parsed.invalid] == [2]
