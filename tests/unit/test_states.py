"""The progress states keep the Grid's numbers and names."""

import pytest

from grid_reingest.domain.states import ProgressState, parse_states


def test_progress_states_keep_the_grids_numbers():
    assert {s.name: int(s) for s in ProgressState} == {
        "NOT_STARTED": 0,
        "IN_PROGRESS": 1,
        "NOT_FOUND": 2,
        "ENQUEUED": 3,
        "KNOWN_ERROR": 4,
        "LOOKING_FOR_IMAGE": 5,
        "VERIFIED": 6,
        "NOT_FOUND_IN_MEDIA_API": 7,
        "UNKNOWN_ERROR": 8,
        "TOO_BIG": 9001,
    }


def test_every_state_has_a_label():
    assert all(s.label for s in ProgressState)
    assert ProgressState.VERIFIED.label.startswith("image verified in media-api")


def test_parse_accepts_numbers_and_names():
    assert ProgressState.parse(" 9001 ") is ProgressState.TOO_BIG
    assert ProgressState.parse("known-error") is ProgressState.KNOWN_ERROR
    assert parse_states("4,8,4") == (ProgressState.KNOWN_ERROR, ProgressState.UNKNOWN_ERROR)


@pytest.mark.parametrize("text", ["42", "nope", ""])
def test_parse_rejects_unknown_states_listing_the_known_ones(text):
    with pytest.raises(ValueError, match="known states: 0 \\(NOT_STARTED\\)"):
        ProgressState.parse(text)


def test_parse_states_needs_at_least_one():
    with pytest.raises(ValueError, match="no state given"):
        parse_states(" , ")
