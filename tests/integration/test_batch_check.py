"""batch-check against moto's server and the simulated Grid's media-api, over HTTP.

The flow's rules are tested on the in-memory store (tests/unit); here whole
runs prove the adapters carry them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import boto3
import pytest

from devtools.testing import Steady, grid_id
from grid_reingest.adapters.dynamodb.schema import CHANGED_AT, ID
from grid_reingest.adapters.eventbridge import ScheduleRule
from grid_reingest.adapters.grid import GridClient
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.isotime import format_instant, utc_now
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.domain.systemic import Rules
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.flows.invocation import SystemicFailure
from grid_reingest.handlers.common import SystemClock
from grid_reingest.ports import Presence
from grid_reingest.settings import BatchCheckSettings, load

RULE = "grid-reingest-batch-check-TEST"


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
            "CHECK_MIN_AGE_SECONDS": "0",
            "MAX_ATTEMPTS": "2",
            **grid.env(GRID_CONCURRENCY="8"),
        },
    )


def enqueued(table, ids):
    table.put_new(ids)
    table.apply([Transition(i, S.NOT_STARTED, S.ENQUEUED) for i in ids])


def deps(table, grid, *, events=None, key=None) -> CheckDeps:
    client = GridClient(grid.settings(), key or grid.api_key)

    def lookup(image_id: str) -> Presence:
        response = client.image(image_id)
        return Presence(response.status, response.message)

    return CheckDeps(
        store=table,
        lookup=lookup,
        pace=Steady(limit=4),
        clock=SystemClock(),
        remaining_ms=lambda: 900_000,
        invocation="check-1",
        rule=ScheduleRule(RULE, lambda: events, lambda what: None) if events else None,
    )


def age_claims(table, ids, age: timedelta) -> None:
    """Make `ids` look `age` old (enqueued, or claimed by a worker that died, that long ago)."""
    then = format_instant(utc_now() - age)
    for image in ids:
        table.client.update_item(
            TableName=table.name,
            Key={ID: {"S": image}},
            UpdateExpression=f"SET {CHANGED_AT} = :then",
            ExpressionAttributeValues={":then": {"S": then}},
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
    # An image's own overload answers cost an attempt every few times (domain/systemic.py)
    for _ in range(settings.loop.max_attempts * Rules().overloads_per_attempt - 1):
        run_batch_check(settings, deps(table, grid))
    assert table.get(image)["progress_state"] == 3
    assert table.get(image)["overloads"] == Rules().overloads_per_attempt - 1
    run_batch_check(settings, deps(table, grid))
    item = table.get(image)
    assert (item["progress_state"], item["attempts"]) == (8, 2)


def test_batch_check_waits_for_thrall_to_catch_up(table, grid, settings):
    # Given images enqueued just now, and a check that first looks at them five minutes old
    enqueued(table, [grid_id(1)])
    patient = replace(settings, min_age_seconds=300, first_look_seconds=300)
    summary = run_batch_check(patient, deps(table, grid))
    assert summary.claimed == 0 and not summary.finished_pass
    # Five minutes later they are checked
    age_claims(table, [grid_id(1)], timedelta(seconds=301))
    assert run_batch_check(patient, deps(table, grid)).claimed == 1


def test_batch_check_switches_its_rule_off_when_nothing_is_left(table, grid, settings, events):
    enqueued(table, [grid_id(i) for i in range(60)])
    last = run_batch_check(settings, deps(table, grid, events=events))
    assert last.claimed == 60 and last.finished_pass
    assert events.describe_rule(Name=RULE)["State"] == "DISABLED"
    assert table.count(S.VERIFIED) == 60


def test_a_dead_checkers_claims_come_back_after_the_lease(table, grid, settings):
    enqueued(table, [grid_id(1)])
    table.claim([Source(S.ENQUEUED)], S.LOOKING_FOR_IMAGE, 1, "dead-checker")
    assert run_batch_check(settings, deps(table, grid)).claimed == 0
    age_claims(table, [grid_id(1)], timedelta(seconds=settings.loop.lease_seconds + 1))
    summary = run_batch_check(settings, deps(table, grid))
    assert (summary.claimed, summary.reclaimed, summary.expired_claims) == (1, 1, 1)
    assert table.get(grid_id(1))["progress_state"] == 6


def test_a_check_stops_at_no_cost_when_media_api_is_down(table, grid, settings):
    ids = [grid_id(i) for i in range(50)]
    enqueued(table, ids)
    for image in ids:
        grid.fail(image, "image", 500)
    with pytest.raises(SystemicFailure, match="media-api server error"):
        run_batch_check(settings, deps(table, grid))
    # Nobody's attempt was spent on media-api's outage
    assert table.count(S.ENQUEUED) == 50
    assert {table.get(i)["attempts"] for i in ids} == {0}


def test_batch_check_a_revoked_key_gives_the_claims_back(table, grid, settings):
    ids = [grid_id(i) for i in range(30)]
    enqueued(table, ids)
    with pytest.raises(SystemicFailure, match="401"):
        run_batch_check(settings, deps(table, grid, key="revoked"))
    assert table.count(S.ENQUEUED) == 30
    assert {table.get(i)["attempts"] for i in ids} == {0}
