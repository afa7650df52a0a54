"""Passes: kinds, records and which items a new pass re-arms (domain/passes.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from grid_reingest.domain.passes import Kind, Pass, Report, rearms
from grid_reingest.domain.states import ProgressState as S


def test_a_check_first_pass_starts_where_batch_check_looks():
    assert Kind.CHECK_FIRST.start_state == S.ENQUEUED
    assert Kind.FULL.start_state == S.NOT_STARTED


@pytest.mark.parametrize("state", list(S))
def test_only_final_states_of_another_pass_are_rearmed(state):
    final = state in {S.NOT_FOUND, S.KNOWN_ERROR, S.VERIFIED, S.NOT_FOUND_IN_MEDIA_API}
    final = final or state in {S.UNKNOWN_ERROR, S.TOO_BIG}
    assert rearms(state, "old", "new") is final
    assert rearms(state, "new", "new") is False


def test_a_pass_record_reads_back_as_written():
    started = Pass.start(Kind.CHECK_FIRST, "s3://images", datetime(2026, 12, 1, tzinfo=UTC))
    ended = started.finished(
        Report({6: 3, 8: 1}, present=2, repaired=1, groups=({"id": "8-x", "count": 1},)),
        datetime(2026, 12, 1, 1, tzinfo=UTC),
    )
    assert Pass.from_json(ended.to_json()) == ended
    assert Pass.from_json(ended.to_json()).report == ended.report


def test_a_malformed_pass_record_says_what_is_wrong():
    with pytest.raises(ValueError, match="malformed pass record"):
        Pass.from_json({"id": "x", "kind": "sideways"})
