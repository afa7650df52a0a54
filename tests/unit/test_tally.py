"""The tally's arithmetic, and how adding a batch meets a colliding or repeated transaction."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb import tally as tally_table
from grid_reingest.adapters.dynamodb.tally import TallyTable, record_changes
from grid_reingest.domain.tally import Tally, deltas


def test_deltas_move_one_count_per_change_and_keep_the_total():
    # Given an insert, two moves, a write that moved nothing and a delete
    changes = [(None, 0), (0, 1), (1, 3), (3, 3), (6, None)]
    # When / Then
    assert deltas(changes) == {3: 1, 6: -1}
    assert sum(deltas([(0, 1), (1, 3), (3, 5)]).values()) == 0


def test_records_of_items_that_are_not_images_move_nothing():
    records = [
        {"dynamodb": {"NewImage": {"id": {"S": "~control"}, "paused": {"BOOL": True}}}},
        {"dynamodb": {"OldImage": {"progress_state": {"N": "0"}}, "NewImage": {}}},
    ]
    assert record_changes(records) == [(None, None), (0, None)]


def test_a_tally_below_zero_somewhere_is_incomplete():
    assert Tally({0: 3, 1: 0}).complete
    assert not Tally({0: -1, 1: 1}).complete
    assert Tally({0: 3, 1: 0, 6: 2}).held() == {0: 3, 6: 2}


class _Client:
    """Answers transact_write_items with the errors given, then success."""

    def __init__(self, *codes: list[str]) -> None:
        self.codes = list(codes)
        self.calls = 0

    def transact_write_items(self, **_):
        self.calls += 1
        if self.codes:
            reasons = [{"Code": code} for code in self.codes.pop(0)]
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "x"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        return {}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(tally_table, "sleep_before_retry", lambda attempt: None)


def test_a_colliding_transaction_is_tried_again_until_it_goes_through():
    client = _Client(["TransactionConflict", "None"], ["None", "TransactionConflict"])
    assert TallyTable("t", client).add("batch", {0: 1}) is True
    assert client.calls == 3


def test_a_batch_whose_marker_is_there_was_counted_before():
    client = _Client(["None", "ConditionalCheckFailed"])
    assert TallyTable("t", client).add("batch", {0: 1}) is False
    assert client.calls == 1


def test_collisions_that_never_end_fail_the_batch_for_lambda_to_send_again():
    client = _Client(*[["TransactionConflict", "None"]] * (tally_table.MAX_CONFLICTS + 1))
    with pytest.raises(ClientError):
        TallyTable("t", client).add("batch", {0: 1})
    assert client.calls == tally_table.MAX_CONFLICTS + 1


def test_a_batch_that_moved_nothing_writes_nothing():
    client = _Client()
    assert TallyTable("t", client).add("batch", {}) is True
    assert client.calls == 0
