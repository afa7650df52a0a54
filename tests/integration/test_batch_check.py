"""batch-check against moto's server and the simulated Grid's media-api, over HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import boto3
import pytest

from grid_reingest.adapters.eventbridge import disable_rule
from grid_reingest.adapters.grid import GridClient
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.ports import Presence
from grid_reingest.settings import BatchCheckSettings, load

RULE = "grid-reingest-batch-check-TEST"


def grid_id(n: int) -> str:
    return f"{n:040x}"


@pytest.fixture
def events(aws):
    client = boto3.client("events", endpoint_url=aws)
    client.put_rule(Name=RULE, ScheduleExpression="rate(5 minutes)", State="ENABLED")
    return client


@pytest.fixture
def settings(table_name, grid):
    return load(
        BatchCheckSettings,
        {
            "STATE_TABLE_NAME": table_name,
            "SCHEDULE_RULE_NAME": RULE,
            "BATCH_SIZE": "50",
            "CHECK_MIN_AGE_SECONDS": "0",
            "MAX_ATTEMPTS": "2",
            **grid.env(GRID_CONCURRENCY="8"),
        },
    )


def enqueued(table, ids):
    table.put_new(ids)
    table.apply([Transition(i, S.NOT_STARTED, S.ENQUEUED) for i in ids])


def deps(table, grid, *, events=None, now=utc_now, remaining=lambda: 900_000) -> CheckDeps:
    client = GridClient(grid.settings(), grid.api_key)

    def lookup(image_id: str) -> Presence:
        response = client.image(image_id)
        return Presence(response.status, response.message)

    return CheckDeps(
        table=table,
        lookup=lookup,
        disable_schedule=(lambda: disable_rule(events, RULE)) if events else None,
        remaining_ms=remaining,
        worker="check-1",
        now=now,
    )


def test_batch_check_records_what_media_api_says(table, grid, settings):
    # Given enqueued images: one indexed, one missing, one media-api fails on
    ids = [grid_id(i) for i in range(3)]
    enqueued(table, ids)
    grid.index_all = False
    grid.indexed.add(ids[0])
    grid.fail(ids[2], "image", 500, {"errorKey": "es-down", "errorMessage": "no shards"})
    # When
    summary = run_batch_check(settings, deps(table, grid))
    # Then
    assert [table.get(i)["progress_state"] for i in ids] == [6, 7, 3]
    failed = table.get(ids[2])
    assert failed["attempts"] == 1
    assert failed["last_error"] == "media-api: HTTP 500: no shards"
    assert summary.states == {6: 1, 7: 1, 3: 1}
    assert summary.failures == 1


def test_batch_check_gives_up_after_max_attempts(table, grid, settings):
    image = grid_id(1)
    enqueued(table, [image])
    grid.fail(image, "image", 503)  # also retried by the client, every time
    run_batch_check(settings, deps(table, grid))
    run_batch_check(settings, deps(table, grid))
    item = table.get(image)
    assert (item["progress_state"], item["attempts"]) == (8, 2)


def test_batch_check_waits_for_thrall_to_catch_up(table, grid, settings):
    # Given images enqueued just now, and a check that wants them five minutes old
    enqueued(table, [grid_id(1)])
    patient = replace(settings, min_age_seconds=300)
    summary = run_batch_check(patient, deps(table, grid))
    assert summary.claimed == 0 and not summary.finished_pass
    # Five minutes later they are checked
    later = lambda: utc_now() + timedelta(seconds=301)  # noqa: E731
    assert run_batch_check(patient, deps(table, grid, now=later)).claimed == 1


def test_batch_check_switches_its_rule_off_when_nothing_is_left(table, grid, settings, events):
    enqueued(table, [grid_id(i) for i in range(60)])
    first = run_batch_check(settings, deps(table, grid, events=events))
    assert first.claimed == 50 and events.describe_rule(Name=RULE)["State"] == "ENABLED"
    run_batch_check(settings, deps(table, grid, events=events))
    assert events.describe_rule(Name=RULE)["State"] == "ENABLED"
    last = run_batch_check(settings, deps(table, grid, events=events))
    assert last.finished_pass
    assert events.describe_rule(Name=RULE)["State"] == "DISABLED"
    assert table.count(S.VERIFIED) == 60


def test_a_dead_checkers_claims_come_back_after_the_lease(table, grid, settings):
    enqueued(table, [grid_id(1)])
    table.claim([Source(S.ENQUEUED)], S.LOOKING_FOR_IMAGE, 1, "dead-checker")
    assert run_batch_check(settings, deps(table, grid)).claimed == 0
    later = lambda: utc_now() + timedelta(seconds=settings.lease_seconds + 1)  # noqa: E731
    summary = run_batch_check(settings, deps(table, grid, now=later))
    assert (summary.claimed, summary.reclaimed) == (1, 1)
    assert table.get(grid_id(1))["progress_state"] == 6


def test_the_breaker_stops_a_check_when_media_api_is_down(table, grid, settings):
    ids = [grid_id(i) for i in range(50)]
    enqueued(table, ids)
    for image in ids:
        grid.fail(image, "image", 500)
    summary = run_batch_check(
        replace(settings, grid=replace(settings.grid, concurrency=2)), deps(table, grid)
    )
    assert summary.stopped_because == "breaker tripped: media-api 500"
    assert 20 <= summary.failures < 30
    assert summary.released == 50 - summary.failures
    assert table.count(S.ENQUEUED) == 50


def test_batch_check_stops_starting_lookups_when_time_runs_short(table, grid, settings):
    ids = [grid_id(i) for i in range(20)]
    enqueued(table, ids)
    budget = iter([900_000] * 5 + [1000] * 100)
    summary = run_batch_check(
        replace(settings, grid=replace(settings.grid, concurrency=1)),
        deps(table, grid, remaining=lambda: next(budget)),
    )
    assert summary.stopped_because == "invocation running out of time"
    assert table.count(S.VERIFIED) + table.count(S.ENQUEUED) == 20
    assert table.count(S.LOOKING_FOR_IMAGE) == 0
    assert 0 < table.count(S.VERIFIED) < 20
