"""The state-table layer against moto's server over HTTP."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from grid_reingest.adapters.dynamodb.bulk import StateTable
from grid_reingest.adapters.dynamodb.schema import SHARD_COUNT, StateTableError, shard_of
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.isotime import utc_now
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


def test_put_new_resets_existing_ids_unless_only_new(table):
    table.put_new(ids(30))
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED) for i in ids(10)])

    report = table.put_new(ids(40), only_new=True)

    assert (report.written, report.already_present) == (10, 30)
    assert table.counts([S.NOT_STARTED, S.VERIFIED]) == {S.NOT_STARTED: 30, S.VERIFIED: 10}

    table.put_new(ids(40))
    assert table.counts([S.NOT_STARTED, S.VERIFIED]) == {S.NOT_STARTED: 40, S.VERIFIED: 0}


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


def test_two_racing_claimers_never_take_the_same_item(table):
    # Given more candidates than both can take, so they fight over the same index pages
    table.put_new(ids(300))
    results: dict[str, list] = {}
    start = threading.Barrier(2)

    def claimer(name: str) -> None:
        start.wait()
        results[name] = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 200, name)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    a = {c.id for c in results["a"]}
    b = {c.id for c in results["b"]}
    assert not a & b
    assert len(a) + len(b) == 300
    for image_id in list(a)[:20]:
        assert table.get(image_id)["claimed_by"] == "a"


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

    wrong_worker = Transition(claim.id, S.IN_PROGRESS, S.ENQUEUED, worker="someone-else")
    wrong_state = Transition(claim.id, S.NOT_STARTED, S.ENQUEUED)
    right = Transition(
        claim.id, S.IN_PROGRESS, S.NOT_STARTED, worker="me", attempts=1, error="loader: HTTP 502"
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
        StateTable("nope", dynamodb).check()


def test_check_refuses_a_table_without_the_state_index(dynamodb):
    dynamodb.create_table(
        TableName="other",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    with pytest.raises(StateTableError, match="not a grid-reingest state table"):
        StateTable("other", dynamodb).check()
