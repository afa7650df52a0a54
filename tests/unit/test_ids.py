"""The rule for image ids: Grid ids, or any safe key when allowed."""

import pytest

from grid_reingest.adapters.dynamodb.control import CONTROL_ID
from grid_reingest.domain.ids import MAX_ID_CHARS, InvalidImageId, check_id, id_problem, is_reserved

GRID = "0123456789abcdef0123456789abcdef01234567"


def test_ids_a_grid_id_passes_strict_and_loose():
    assert id_problem(GRID) is None
    assert id_problem(GRID, allow_any=True) is None


@pytest.mark.parametrize(
    "text", ["id", f'"{GRID}"', GRID.upper(), ".", "..", GRID[:-1], GRID + "0", "", "a b"]
)
def test_ids_strict_refuses_anything_but_40_lower_case_hex(text):
    assert id_problem(text) is not None
    with pytest.raises(InvalidImageId):
        check_id(text)


@pytest.mark.parametrize(
    "text", [".", "..", "a b", "tab\there", "x" * (MAX_ID_CHARS + 1), "", "bell\x07"]
)
def test_ids_allow_any_still_refuses_unsafe_keys(text):
    assert id_problem(text, allow_any=True) is not None


@pytest.mark.parametrize("text", ["my-image", "a/b", "x" * MAX_ID_CHARS, "ÉTÉ", "..a"])
def test_ids_allow_any_accepts_other_keys(text):
    assert check_id(text, allow_any=True) == text


@pytest.mark.parametrize("text", ["~control", "~", "~" + GRID[1:]])
@pytest.mark.parametrize("allow_any", [False, True])
def test_ids_starting_with_a_tilde_are_refused_even_when_any_id_is_allowed(text, allow_any):
    assert "starts with '~'" in id_problem(text, allow_any=allow_any)
    with pytest.raises(InvalidImageId, match="starts with '~'"):
        check_id(text, allow_any=allow_any)


def test_ids_the_control_items_key_is_reserved():
    assert is_reserved(CONTROL_ID)
    assert not is_reserved(GRID)
    assert id_problem("a~b", allow_any=True) is None
