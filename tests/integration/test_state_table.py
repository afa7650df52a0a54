"""The state-table layer against moto's server over HTTP."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from devtools.partiql import InsertStatement
from grid_reingest.adapters.dynamodb.schema import (
    SHARD_COUNT,
    Arming,
    StateTableError,
    fresh_item,
    shard_of,
)
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.adapters.dynamodb.write_report import WriteReport
from grid_reingest.domain.claims import Source, Transition, release_transition
from grid_reingest.domain.isotime import parse_instant, utc_now
from grid_reingest.domain.states import ProgressState as S


def ids(n: int, prefix: str = "") -> list[str]:
    return [f"{prefix}{i:040x}"[-40:] for i in range(n)]


def test_put_new_stores_every_id_at_state_zero_with_its_story(table):
    # Given / When
    report = table.put_new(ids(60))
    # Then
    assert report.written == 60
    item = table.get(ids(60)[7])
    assert item["progress_state"] == 0
    assert item["state_name"] == S.NOT_STARTED.label
    assert item["attempts"] == 0
    assert item["state_changed_at"].endswith("Z")
    assert item["state_shard"] == f"0#{shard_of(ids(60)[7]):02d}"
    assert table.count(S.NOT_STARTED) == 60


def test_put_new_keeps_existing_items_and_reports_their_states(table):
    # Given 30 items, 10 of them verified and 3 held by a worker
    table.put_new(ids(30))
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED, attempts=2, error="x") for i in ids(10)])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 3, "worker")
    # When the same ids and 10 new ones are uploaded again
    report = table.put_new(ids(40))
    # Then only the new ones are written; every existing item is untouched
    assert report.written == 10
    assert report.already_present == 30
    assert report.kept == {6: 10, 0: 17, 1: 3}
    assert table.counts([S.NOT_STARTED, S.IN_PROGRESS, S.VERIFIED]) == {
        S.NOT_STARTED: 27,
        S.IN_PROGRESS: 3,
        S.VERIFIED: 10,
    }
    assert table.get(ids(1)[0])["last_error"] == "x"


def test_put_new_reset_existing_never_takes_items_a_worker_holds(table):
    # Given verified items, fresh claims, and claims whose lease ran out
    table.put_new(ids(20))
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED, attempts=1) for i in ids(5)])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 15, "worker")
    # When they are uploaded with reset_existing, and a lease of an hour
    report = table.put_new(ids(20), reset_existing=True, lease_seconds=3600)
    # Then verified ones go back to 0, claims stay with their worker
    assert report.reset == {6: 5}
    assert report.held == 15
    assert table.count(S.IN_PROGRESS) == 15
    assert table.get(ids(1)[0])["attempts"] == 0
    # And once the lease is taken as over, the dead worker's claims are reset too
    time.sleep(1.1)
    report = table.put_new(ids(20), reset_existing=True, lease_seconds=1)
    assert report.reset == {1: 15, 0: 5}
    assert table.count(S.NOT_STARTED) == 20
    assert "claimed_by" not in table.get(ids(20)[-1])


def test_put_new_never_overwrites_an_item_taken_between_read_and_write(table, dynamodb):
    # Given, between the upload's read and its first write, another upload of the same
    # ids and a worker claiming them (the window a read-then-write upload leaves open)
    class RaceBeforeWrite:
        def __init__(self, client):
            self._client = client
            self.fired = False

        def __getattr__(self, name):
            if name == "batch_execute_statement" and not self.fired:
                self.fired = True
                table.put_new(ids(10))
                table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 10, "worker")
            return getattr(self._client, name)

    with OperatorTable(table.name, RaceBeforeWrite(dynamodb)) as racing:
        # When the same ids are uploaded
        report = racing.put_new(ids(10))
    # Then the claims survive
    assert report.kept == {1: 10}
    assert table.count(S.IN_PROGRESS) == 10
    assert table.get(ids(10)[0])["claimed_by"] == "worker"


def test_emulator_refuses_the_insert_of_an_existing_key_alone(table, dynamodb):
    # Given an item a worker has finished with
    table.put_new(ids(1))
    table.apply([Transition(ids(1)[0], S.NOT_STARTED, S.VERIFIED)])
    fresh = [fresh_item(i, S.NOT_STARTED, "2026-01-01T00:00:00.000Z") for i in ids(2)]
    # When the upload's statement inserts it and a new id in one call
    parameters = InsertStatement.parse(table.uploads.inserts.statement(Arming())).names
    answer = dynamodb.batch_execute_statement(
        Statements=[
            {
                "Statement": table.uploads.inserts.statement(Arming()),
                "Parameters": [item[p] for p in parameters],
            }
            for item in fresh
        ]
    )
    # Then that statement alone is refused, as DynamoDB refuses it, and the item stays
    codes = [r.get("Error", {}).get("Code") for r in answer["Responses"]]
    assert codes == ["DuplicateItem", None]
    assert table.get(ids(1)[0])["progress_state"] == S.VERIFIED
    assert table.get(ids(2)[1])["progress_state"] == S.NOT_STARTED


def test_put_new_counts_repeated_ids_as_repeats_not_as_existing_items(table):
    # Given ids repeated in one batch and across batches
    report = table.put_new(ids(150) + ids(50) + ids(3))
    # Then each is written once, and the repeats are told apart from older items
    assert (report.written, report.repeated, report.already_present) == (150, 53, 0)


def test_put_new_reports_what_it_wrote_before_an_interruption(table):
    # Given an upload interrupted (in the thread that reads the file) after its first batch
    report = WriteReport()

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    # When
    with pytest.raises(KeyboardInterrupt):
        table.put_new(ids(700), on_progress=interrupt, report=report)
    # Then the report counts exactly what is in the table
    assert report.written > 0
    assert report.written == table.count(S.NOT_STARTED)


def test_put_new_reports_what_it_wrote_before_aws_refused(table, dynamodb):
    # Given a client whose writes are refused after the first two calls (of 25 ids each)
    class RefusingAfterTwoCalls:
        def __init__(self, client):
            self._client = client
            self.calls = 0
            self.lock = threading.Lock()

        def __getattr__(self, name):
            return getattr(self._client, name)

        def batch_execute_statement(self, **kwargs):
            with self.lock:
                self.calls += 1
                refuse = self.calls > 2
            if refuse:
                raise ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                    "BatchExecuteStatement",
                )
            return self._client.batch_execute_statement(**kwargs)

    report = WriteReport()
    # When
    with (
        pytest.raises(ClientError),
        OperatorTable(table.name, RefusingAfterTwoCalls(dynamodb)) as t,
    ):
        t.put_new(ids(400), report=report)
    # Then the report says exactly what was written
    assert report.written == 50 == table.count(S.NOT_STARTED)


def test_claim_moves_items_and_records_the_worker(table):
    table.put_new(ids(50))

    claims = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 20, "worker-a")

    assert len(claims) == 20
    assert len({c.id for c in claims}) == 20
    assert all(c.claimed_from == S.NOT_STARTED and c.attempts == 0 for c in claims)
    item = table.get(claims[0].id)
    assert item["progress_state"] == 1
    assert item["claimed_by"] == "worker-a"
    assert table.counts([S.NOT_STARTED, S.IN_PROGRESS]) == {S.NOT_STARTED: 30, S.IN_PROGRESS: 20}


def test_claim_takes_fewer_when_fewer_are_left(table):
    table.put_new(ids(5))
    assert len(table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 50, "w")) == 5
    assert table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 50, "w") == []


def test_a_claimer_beaten_to_its_candidates_never_takes_them(table, dynamodb):
    # Given a claimer that read its candidates, and another that takes 200 of them before the
    # first one's first write (one interleaving, made on purpose: moto's server does not
    # make concurrent conditional writes atomic; the memory store's racing test does)
    table.put_new(ids(300))
    taken: list = []
    first = threading.Lock()

    class BeatenBeforeWrite:
        def __init__(self, client):
            self._client = client

        def __getattr__(self, name):
            # The claim's writes go out side by side: every one waits for the other's claim.
            if name == "update_item":
                with first:
                    if not taken:
                        taken.extend(table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 200, "b"))
            return getattr(self._client, name)

    with OperatorTable(table.name, BeatenBeforeWrite(dynamodb)) as slow:
        # When it claims
        mine = slow.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 200, "a")
    # Then it took none of the other's, and each item has one holder
    a, b = {c.id for c in mine}, {c.id for c in taken}
    assert len(b) == 200 and not a & b
    assert len(a) + len(b) == 300
    assert {table.get(i)["claimed_by"] for i in a} == {"a"}
    assert {table.get(i)["claimed_by"] for i in list(b)[:20]} == {"b"}


def test_stale_claims_are_reclaimed_once_their_lease_is_over(table, dynamodb):
    table.put_new(ids(10))
    old = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 10, "dead-worker")
    assert len(old) == 10

    # A lease that has not run out yet: nothing to take
    fresh_cutoff = utc_now() - timedelta(seconds=60)
    assert (
        table.claim([Source(S.IN_PROGRESS, fresh_cutoff, reclaim=True)], S.IN_PROGRESS, 10, "w")
        == []
    )

    # Once it has, the claims come back, still remembering where they came from
    later = utc_now() + timedelta(seconds=1)
    taken = table.claim([Source(S.IN_PROGRESS, later, reclaim=True)], S.IN_PROGRESS, 10, "new")
    assert {c.id for c in taken} == set(ids(10))
    assert all(c.claimed_from == S.NOT_STARTED for c in taken)
    assert table.get(ids(10)[0])["claimed_by"] == "new"


def test_stale_claims_are_taken_before_new_work_and_both_sources_fill_the_batch(table):
    # Given 6 stale claims and 40 items waiting in state 0
    stale, waiting = ids(46)[:6], ids(46)[6:]
    table.put_new(stale)
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 6, "dead-worker")
    table.put_new(waiting)
    time.sleep(0.01)
    lease_over = utc_now()  # the dead worker's claims are older; the ones below are not
    time.sleep(0.01)
    sources = [Source(S.IN_PROGRESS, lease_over, reclaim=True), Source(S.NOT_STARTED)]
    # When a batch of 10 is claimed, then the rest
    first = table.claim(sources, S.IN_PROGRESS, 10, "w1")
    rest = table.claim(sources, S.IN_PROGRESS, 100, "w2")
    # Then the stale ones come first, and every item is taken exactly once
    assert sum(c.reclaimed for c in first) == 6
    assert [c.reclaimed for c in first[:6]] == [True] * 6
    assert not any(c.reclaimed for c in rest)
    assert len(first) == 10 and len(rest) == 36
    assert {c.id for c in first + rest} == set(stale + waiting)


def test_transition_applies_only_from_the_expected_state_and_holder(table):
    table.put_new(ids(3))
    claim = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "me")[0]

    wrong_worker = Transition(claim.id, S.IN_PROGRESS, S.ENQUEUED, invocation="someone-else")
    wrong_state = Transition(claim.id, S.NOT_STARTED, S.ENQUEUED)
    right = Transition(
        claim.id,
        S.IN_PROGRESS,
        S.NOT_STARTED,
        invocation="me",
        attempts=1,
        error="loader: HTTP 502",
    )

    assert table.apply([wrong_worker, wrong_state]) == [False, False]
    assert table.get(claim.id)["progress_state"] == 1
    assert table.apply([right]) == [True]
    item = table.get(claim.id)
    assert (item["progress_state"], item["attempts"], item["last_error"]) == (
        0,
        1,
        "loader: HTTP 502",
    )
    assert "claimed_by" not in item


def test_counts_cover_every_shard(table):
    many = ids(SHARD_COUNT * 8)
    table.put_new(many)
    table.apply([Transition(i, S.NOT_STARTED, S.KNOWN_ERROR) for i in many[:37]])
    counts = table.counts()
    assert counts[S.NOT_STARTED] == len(many) - 37
    assert counts[S.KNOWN_ERROR] == 37
    assert sum(counts.values()) == len(many)
    assert table.has_any([S.KNOWN_ERROR])
    assert not table.has_any([S.TOO_BIG, S.VERIFIED])


def test_scan_yields_every_item_once(table):
    table.put_new(ids(250))
    rows = [row for page in table.scan(segments=4) for row in page]
    assert sorted(rows) == sorted((i, 0) for i in ids(250))


def test_scan_pages_from_the_emulator_are_read_by_json_alone(table, dynamodb):
    # Given a client that records the Items each Scan page's hooks read before botocore
    taken = []
    dynamodb.meta.events.register_last(
        "before-parse.dynamodb.Scan",
        lambda customized_response_dict, **kw: taken.append(
            len(customized_response_dict.get("Items", []))
        ),
    )
    table.put_new(ids(40))
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED) for i in ids(5)])
    # When
    rows = [row for page in table.scan(segments=2) for row in page]
    # Then every row is right, and every row came through the fast path
    assert sorted(rows) == sorted([(i, 6) for i in ids(5)] + [(i, 0) for i in ids(40)[5:]])
    assert sum(taken) == 40


def test_scan_stops_cleanly_when_the_reader_stops_early(table):
    table.put_new(ids(100))
    pages = table.scan(segments=4, page_queue=1)
    next(pages)
    pages.close()  # threads wind down instead of blocking on a full queue


def test_reset_moves_only_the_given_states(table):
    table.put_new(ids(30))
    table.apply([Transition(i, S.NOT_STARTED, S.KNOWN_ERROR, attempts=2) for i in ids(10)])
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED) for i in ids(20)[10:]])

    moved = table.reset([S.KNOWN_ERROR])

    assert moved == 10
    assert table.counts([S.NOT_STARTED, S.KNOWN_ERROR, S.VERIFIED]) == {
        S.NOT_STARTED: 20,
        S.KNOWN_ERROR: 0,
        S.VERIFIED: 10,
    }
    assert table.get(ids(1)[0])["attempts"] == 0


def test_check_explains_a_missing_table(dynamodb):
    with pytest.raises(StateTableError, match=r"'nope' does not exist in region eu-west-1"):
        OperatorTable("nope", dynamodb).check()


def test_check_refuses_a_table_without_the_state_index(dynamodb):
    dynamodb.create_table(
        TableName="other",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    with pytest.raises(StateTableError, match="not a grid-reingest state table"):
        OperatorTable("other", dynamodb).check()


def test_reset_expired_only_takes_claims_older_than_the_lease(table):
    # Given 10 claims, the first 4 older than the others
    table.put_new(ids(10))
    old = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 4, "dead")
    time.sleep(0.05)
    cutoff = utc_now()
    time.sleep(0.05)
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 6, "alive")
    # When
    moved = table.reset([S.IN_PROGRESS], changed_before=cutoff)
    # Then only the old ones moved
    assert moved == 4
    assert {i for i in ids(10) if table.get(i)["progress_state"] == 0} == {c.id for c in old}


def test_reset_leaves_an_item_that_changed_after_it_was_found(table):
    # Given an item found in state 8 that a worker has touched since
    table.put_new(ids(2))
    table.apply([Transition(i, S.NOT_STARTED, S.UNKNOWN_ERROR) for i in ids(2)])
    found = table.get(ids(2)[0])["state_changed_at"]
    time.sleep(0.01)
    table.apply([Transition(ids(2)[0], S.UNKNOWN_ERROR, S.UNKNOWN_ERROR, error="again")])
    # When a reset acts on what it saw
    moved = table.reset_items([(ids(2)[0], 8, found), (ids(2)[1], 8, "stale")])
    # Then neither moves: both changed since they were seen
    assert moved == 0
    assert table.count(S.UNKNOWN_ERROR) == 2


def test_bulk_work_skips_the_control_item(table, dynamodb):
    # Given the table's control item (no progress_state) beside real items
    table.put_new(ids(3))
    table.apply([Transition(ids(3)[0], S.NOT_STARTED, S.UNKNOWN_ERROR, error="boom 1")])
    dynamodb.put_item(TableName=table.name, Item={"id": {"S": "~control"}, "paused": {"N": "1"}})
    # When / Then it is never read as an image, counted or moved
    assert sorted(r for p in table.scan() for r in p) == sorted(
        [(ids(3)[0], 8), (ids(3)[1], 0), (ids(3)[2], 0)]
    )
    assert sorted(r.id for p in table.scan_rows() for r in p) == sorted(ids(3))
    assert [r.id for p in table.scan_rows([8]) for r in p] == [ids(3)[0]]
    assert sum(table.counts().values()) == 3
    assert table.reset([S.NOT_STARTED, S.UNKNOWN_ERROR], S.KNOWN_ERROR) == 3
    assert (
        "progress_state"
        not in dynamodb.get_item(TableName=table.name, Key={"id": {"S": "~control"}})["Item"]
    )


def test_scan_rows_carries_attempts_and_last_error(table):
    table.put_new(ids(2))
    table.apply([Transition(ids(2)[0], S.NOT_STARTED, S.UNKNOWN_ERROR, attempts=3, error="boom")])
    rows = {r.id: r for p in table.scan_rows() for r in p}
    assert (rows[ids(2)[0]].attempts, rows[ids(2)[0]].last_error) == (3, "boom")
    assert (rows[ids(2)[1]].attempts, rows[ids(2)[1]].last_error) == (0, None)


def test_a_claim_given_back_keeping_its_place_keeps_its_time_of_change(table):
    # Given two enqueued items, claimed a moment after they were enqueued
    table.put_new(ids(2))
    table.apply([Transition(i, S.NOT_STARTED, S.ENQUEUED) for i in ids(2)])
    enqueued_at = {i: table.get(i)["state_changed_at"] for i in ids(2)}
    time.sleep(0.01)
    claims = table.claim([Source(S.ENQUEUED)], S.LOOKING_FOR_IMAGE, 2, "check")
    assert {c.changed_at for c in claims} == {parse_instant(t) for t in enqueued_at.values()}
    # When one goes back keeping its place, the other as a failure the system caused
    keep, other = sorted(claims, key=lambda c: c.id)
    table.apply(
        [
            release_transition(keep, S.LOOKING_FOR_IMAGE, "check", keep_place=True),
            release_transition(other, S.LOOKING_FOR_IMAGE, "check"),
        ]
    )
    # Then the first is as old as it was; the second changed now
    assert table.get(keep.id)["state_changed_at"] == enqueued_at[keep.id]
    assert table.get(other.id)["state_changed_at"] > enqueued_at[other.id]
    assert table.oldest_change(S.ENQUEUED) == parse_instant(enqueued_at[keep.id])
    assert table.oldest_change(S.VERIFIED) is None
