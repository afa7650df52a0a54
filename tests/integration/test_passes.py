"""Passes in the state table against moto's server: one at a time, their records, re-arming."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from grid_reingest.adapters.dynamodb.passes import PassRunning, PassTable
from grid_reingest.adapters.dynamodb.schema import Arming
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.passes import (
    MISSING_ERROR,
    Kind,
    Pass,
    Report,
    Status,
    Verified,
    missing_transition,
)
from grid_reingest.domain.states import ProgressState as S

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def ids(n: int, start: int = 0) -> list[str]:
    return [f"{i:040x}" for i in range(start, start + n)]


@pytest.fixture
def passes(table, dynamodb) -> PassTable:
    return PassTable(table.name, dynamodb)


def test_passes_one_at_a_time(passes):
    # Given a pass started by the schedule
    first = passes.start(Pass.start(Kind.CHECK_FIRST, "s3://images", T0, started_by="schedule"))
    # When another is started while it runs
    with pytest.raises(PassRunning) as refused:
        passes.start(Pass.start(Kind.FULL, "ids.txt", T0 + timedelta(hours=1)))
    # Then it is refused, naming the one that runs
    assert refused.value.running.id == first.id == "20261201T030000Z"
    assert "still running: one pass at a time" in str(refused.value)
    assert passes.current().status is Status.RUNNING


def test_passes_a_finished_pass_is_finished_once_and_listed_with_its_report(passes):
    started = passes.start(Pass.start(Kind.CHECK_FIRST, "s3://images", T0))
    report = Report(states={6: 290, 7: 10}, present=200, repaired=90)
    ended = started.finished(report, T0 + timedelta(minutes=42))
    # The first to mark it finished does; a second (another worker) does not
    assert passes.finish(ended) is True
    assert passes.finish(ended) is False
    # And the next pass may start
    second = passes.start(Pass.start(Kind.FULL, "ids.txt", T0 + timedelta(days=1)))
    history = passes.history()
    assert [p.id for p in history] == [second.id, started.id]
    assert history[1].report == report
    assert history[1].report.failed == 10
    assert history[1].seconds(T0) == 42 * 60
    assert "present in media-api: 200; repaired: 90; failed: 10" in report.text(Kind.CHECK_FIRST)


def test_passes_records_are_not_images(table, passes):
    passes.start(Pass.start(Kind.FULL, "ids.txt", T0))
    table.put_new(ids(3))
    assert sum(table.counts().values()) == 3


def test_upload_arms_new_ids_for_a_check_first_pass(table):
    # When ids are uploaded for a check-first pass
    arming = Arming("20261201T030000Z", Kind.CHECK_FIRST)
    report = table.put_new(ids(5), arming=arming)
    # Then they wait for batch-check, marked to be checked first, with their pass
    assert report.written == 5
    item = table.get(ids(5)[0])
    assert (item["progress_state"], item["check_first"], item["pass"]) == (3, 1, arming.pass_id)
    assert item["state_name"] == "waiting for a check in media-api"
    assert table.count(S.ENQUEUED) == 5


def test_a_new_pass_rearms_what_a_finished_pass_left_final_and_nothing_else(table):
    # Given a first pass that ended with images verified, failed and (oddly) one still held
    first = Arming("20261201T030000Z", Kind.FULL)
    table.put_new(ids(8), arming=first)
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED, attempts=1) for i in ids(4)])
    table.apply([Transition(i, S.NOT_STARTED, S.UNKNOWN_ERROR, error="x") for i in ids(2, 4)])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "worker")
    # When a new check-first pass is loaded over the same ids and two new ones
    second = Arming("20261208T030000Z", Kind.CHECK_FIRST, rearm=True)
    report = table.put_new(ids(10), arming=second)
    # Then the final ones are armed again for it; the held and the at-rest ones are kept
    assert report.rearmed == {6: 4, 8: 2}
    assert report.kept == {1: 1, 0: 1}
    assert report.written == 2
    again = table.get(ids(1)[0])
    assert (again["progress_state"], again["pass"], again["attempts"]) == (3, second.pass_id, 0)
    assert "last_error" not in table.get(ids(1, 4)[0])
    # A second load of the same file for the same pass changes nothing
    assert table.put_new(ids(10), arming=second).rearmed == {}


def test_without_a_new_pass_an_upload_keeps_every_state(table):
    table.put_new(ids(3), arming=Arming("20261201T030000Z"))
    table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED) for i in ids(3)])
    report = table.put_new(ids(3), arming=Arming("20261208T030000Z", Kind.CHECK_FIRST))
    assert report.kept == {6: 3} and not report.rearmed


def test_reingest_passes_lists_them_newest_first_with_their_reports(table, passes, capsys):
    from grid_reingest_cli.main import main

    # Given a finished check-first pass and a running one
    first = passes.start(Pass.start(Kind.CHECK_FIRST, "s3://images/", T0, started_by="schedule"))
    report = Report(
        states={6: 95, 8: 5},
        present=80,
        repaired=15,
        groups=({"id": "8-1f3a9c0d", "count": 5, "reason": "usage: HTTP 503"},),
        seconds=3600,
    )
    passes.finish(first.finished(report, T0 + timedelta(hours=1)))
    passes.start(Pass.start(Kind.FULL, "ids.txt", T0 + timedelta(days=1)))
    # When the operator lists them
    assert main(["passes", "--table", table.name]) == 0
    out = capsys.readouterr().out
    # Then the newest comes first, and the finished one says what it came to
    assert out.index("20261202T030000Z") < out.index("20261201T030000Z")
    assert "present in media-api: 80; repaired: 15; failed: 5" in out
    assert main(["passes", "--table", table.name, "--report", first.id]) == 0
    assert "8-1f3a9c0d: 5 x usage: HTTP 503" in capsys.readouterr().out
    assert main(["passes", "--table", table.name, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["passes"]
    assert [p["status"] for p in listed] == ["running", "finished"]
    # And an id that matches nothing exits 2, naming those there are
    assert main(["passes", "--table", table.name, "--report", "nope"]) == 2
    assert "20261201T030000Z" in capsys.readouterr().err


def test_a_check_first_claim_and_its_way_back_to_batch_index_in_dynamodb(table, passes):
    # Given check-first items of the current pass
    record = passes.start(Pass.start(Kind.CHECK_FIRST, "ids.txt", T0))
    table.put_new(ids(2), arming=Arming(record.id, Kind.CHECK_FIRST))
    # When batch-check claims them
    claims = table.claim([Source(S.ENQUEUED)], S.LOOKING_FOR_IMAGE, 2, "check-1")
    # Then each claim knows its pass and that it is checked first
    assert {(c.pass_id, c.check_first, c.reprojected) for c in claims} == {(record.id, True, False)}
    # And one media-api lacks goes back to 0, re-armed for re-projection
    missing = next(c for c in claims if c.id == ids(1)[0])
    assert table.apply([missing_transition(missing, S.LOOKING_FOR_IMAGE, "check-1")]) == [True]
    item = table.get(missing.id)
    assert (item["progress_state"], item["reprojected"], item["attempts"]) == (0, 1, 0)
    assert "check_first" not in item and "claimed_by" not in item
    assert item["last_error"] == MISSING_ERROR
    (again,) = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "index-1")
    assert (again.check_first, again.reprojected) == (False, True)


def test_present_and_repaired_counted_on_the_current_pass_only(passes):
    first = passes.start(Pass.start(Kind.CHECK_FIRST, "ids.txt", T0))
    assert passes.count_verified(Verified(first.id, present=3, repaired=1))
    assert passes.count_verified(Verified(first.id, present=2))
    assert not passes.count_verified(Verified("20200101T000000Z", present=5))
    # The counts survive the record's own writes, and a new pass starts from none
    passes.finish(first.finished(Report(states={6: 6}), T0 + timedelta(hours=1)))
    assert (passes.current().present, passes.current().repaired) == (5, 1)
    passes.start(Pass.start(Kind.CHECK_FIRST, "ids.txt", T0 + timedelta(days=1)))
    assert (passes.current().present, passes.current().repaired) == (0, 0)


def test_the_errors_of_failed_items_read_through_the_index(table):
    table.put_new(ids(5))
    table.apply(
        [Transition(i, S.NOT_STARTED, S.UNKNOWN_ERROR, error="usage: HTTP 503") for i in ids(3)]
    )
    assert (
        sorted(table.errors([S.UNKNOWN_ERROR, S.KNOWN_ERROR], 10)) == [(8, "usage: HTTP 503")] * 3
    )
    assert len(table.errors([S.UNKNOWN_ERROR], 2)) == 2


def test_the_workers_lambda_time_added_to_a_running_pass_only(passes):
    loading = replace(Pass.start(Kind.CHECK_FIRST, "ids.txt", T0), status=Status.LOADING)
    passes.start(loading)
    assert not passes.add_usage(10.0)  # still loading: its workers have not started
    record = replace(loading, status=Status.RUNNING)
    assert passes.save(record, Status.LOADING)
    assert passes.add_usage(12.5) and passes.add_usage(0.25)
    assert passes.current().gb_seconds == 12.75
    passes.finish(record.finished(Report(states={}), T0))
    assert not passes.add_usage(1.0)
