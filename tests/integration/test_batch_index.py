"""batch-index against moto's server (DynamoDB, Kinesis, CloudWatch, EventBridge) over HTTP.

The flow's rules are tested on the in-memory store (tests/unit); here a few
whole runs prove the adapters carry them.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import boto3
import pytest

from devtools.aws_proxy import AwsProxy, Faults
from devtools.memory_control import MemoryControl
from devtools.testing import Scripted, Steady, grid_id
from devtools.thrall_consumer import read_stream
from devtools.thrall_metrics import report_iterator_age
from grid_reingest.adapters.aws import client_config
from grid_reingest.adapters.cloudwatch import iterator_age_points
from grid_reingest.adapters.dynamodb.schema import CHANGED_AT, ID
from grid_reingest.adapters.eventbridge import ScheduleRule
from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.domain.claims import Source
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.domain.isotime import format_instant, utc_now
from grid_reingest.domain.outcome import Failed, NotFound, TooBig
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.batch_index import IndexDeps, StreamRefused, run_batch_index
from grid_reingest.flows.invocation import SystemicFailure
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.handlers.common import SystemClock
from grid_reingest.settings import BatchIndexSettings, load

STREAM = "media-service-thrall-low-priority-TEST"
RULE = "grid-reingest-batch-index-TEST"
HOUR_MS = 3_600_000


@pytest.fixture
def kinesis(aws):
    client = boto3.client("kinesis", endpoint_url=aws)
    client.create_stream(StreamName=STREAM, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=STREAM)
    return client


@pytest.fixture
def events(aws):
    client = boto3.client("events", endpoint_url=aws)
    client.put_rule(Name=RULE, ScheduleExpression="rate(1 minute)", State="ENABLED")
    return client


@pytest.fixture
def settings(table_name):
    return load(
        BatchIndexSettings,
        {
            "STATE_TABLE_NAME": table_name,
            "THRALL_STREAM_NAME": STREAM,
            "PROJECTION_FUNCTION_NAME": "image-projection-TEST",
            "SCHEDULE_RULE_NAME": RULE,
            "MAX_IN_FLIGHT": "8",
            "MAX_ATTEMPTS": "3",
            "BREAKER_MIN_RESULTS": "10",
        },
    )


def age_claims(table, ids, age: timedelta) -> None:
    """Make the claims on `ids` look `age` old (their worker died that long ago)."""
    then = format_instant(utc_now() - age)
    for image in ids:
        if table.get(image)["progress_state"] == S.IN_PROGRESS:
            table.client.update_item(
                TableName=table.name,
                Key={ID: {"S": image}},
                UpdateExpression=f"SET {CHANGED_AT} = :then",
                ExpressionAttributeValues={":then": {"S": then}},
            )


def deps(
    table,
    kinesis,
    projector,
    *,
    events=None,
    pace=None,
    clock=None,
    publisher=None,
    control=None,
) -> IndexDeps:
    return IndexDeps(
        store=table,
        projector=projector,
        publisher=publisher or Publisher(kinesis, STREAM, sleep=lambda s: None),
        pace=pace or Steady(limit=8),
        clock=clock or SystemClock(),
        remaining_ms=lambda: 15 * 60 * 1000,
        invocation="invocation-1",
        rule=ScheduleRule(RULE, lambda: events, lambda what: None) if events else None,
        control=control or MemoryControl(),
    )


def rule_state(events) -> str:
    return events.describe_rule(Name=RULE)["State"]


def test_batch_index_records_every_outcome_on_its_own_item(table, kinesis, settings):
    # Given one image of each kind
    ids = [grid_id(i) for i in range(6)]
    table.put_new(ids)
    script = {
        ids[1]: NotFound(ids[1]),
        ids[2]: TooBig(ids[2], 2_000_000, 1_048_576),
        ids[3]: Failed(
            ids[3], "image-loader", 500, "boom", "org.im4java.core.CommandException", known=True
        ),
        ids[4]: Failed(ids[4], "leases", 500, "Internal Server Error"),
    }
    # When
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(script)))
    # Then
    states = {i: table.get(i)["progress_state"] for i in ids}
    assert states == {ids[0]: 3, ids[1]: 2, ids[2]: 9001, ids[3]: 4, ids[4]: 0, ids[5]: 3}
    assert table.get(ids[4])["attempts"] == 1
    assert table.get(ids[4])["last_error"] == "leases: HTTP 500: Internal Server Error"
    assert table.get(ids[4])["state_name"] == "reset because of failure"
    assert "CommandException" in table.get(ids[3])["last_error"]
    assert "2000000 bytes" in table.get(ids[2])["last_error"]
    assert summary.claimed == 6
    assert summary.states == {3: 2, 2: 1, 9001: 1, 4: 1, 0: 1}
    assert summary.kinesis_calls >= 1


def test_batch_index_messages_decode_as_thrall_reads_them(table, kinesis, settings):
    ids = [grid_id(i) for i in range(3)]
    table.put_new(ids)
    run_batch_index(settings, deps(table, kinesis, Scripted()))
    records = read_stream(kinesis, STREAM)
    assert sorted(key for key, _ in records) == sorted(ids)
    for key, message in records:
        assert message["subject"] == "reingest-image"
        assert message["image"]["id"] == key
        assert message["image"]["extraField"] == {"kept": True}
        assert message["lastModified"].endswith("Z")


def test_batch_index_gives_up_on_an_image_after_max_attempts(table, kinesis, settings):
    image = grid_id(1)
    table.put_new([image])
    failing = Scripted({image: Failed(image, "cropper", 500, "crash")})
    for attempt in range(1, 4):
        run_batch_index(settings, deps(table, kinesis, failing))
        item = table.get(image)
        assert item["attempts"] == attempt
    assert item["progress_state"] == 8
    assert item["last_error"] == "cropper: HTTP 500: crash"


def test_batch_index_retries_only_the_records_kinesis_rejected(table, aws, kinesis, settings):
    # Given a stream that rejects part of a third of the PutRecords calls
    ids = [grid_id(i) for i in range(40)]
    table.put_new(ids)
    faults = Faults(targets=("Kinesis_20131202.PutRecords",), partial_rate=0.5, seed=3)
    with AwsProxy(aws, faults=faults) as proxy:
        faulty = boto3.client("kinesis", endpoint_url=proxy.url)
        publisher = Publisher(faulty, STREAM, sleep=lambda s: None)
        # When
        summary = run_batch_index(settings, deps(table, kinesis, Scripted(), publisher=publisher))
    # Then every image is on the stream exactly once, and enqueued
    assert faults.counts["partial"] >= 1
    assert summary.kinesis_calls > 1
    keys = Counter(key for key, _ in read_stream(kinesis, STREAM))
    assert keys == Counter(ids)
    assert table.counts([S.ENQUEUED])[S.ENQUEUED] == 40


def test_batch_index_throughput_rejections_cost_no_attempt_and_no_projection(
    table, aws, kinesis, settings
):
    # Given a stream turning part of every call away (a record alone: always)
    ids = [grid_id(i) for i in range(30)]
    table.put_new(ids)
    faults = Faults(targets=("Kinesis_20131202.PutRecords",), partial_rate=1.0, seed=3)
    projector = Scripted()
    with AwsProxy(aws, faults=faults) as proxy:
        publisher = Publisher(
            boto3.client("kinesis", endpoint_url=proxy.url), STREAM, sleep=lambda s: None
        )
        # When an invocation runs (it may stop, if most of the window was turned away)
        try:
            summary = run_batch_index(
                settings, deps(table, kinesis, projector, publisher=publisher)
            )
        except SystemicFailure as failed:
            summary = failed.summary
    # Then what the stream took is enqueued, the rest is back at 0: none charged, and
    # each image projected once (what was turned away went again as it was)
    accepted = {key for key, _ in read_stream(kinesis, STREAM)}
    assert summary.overloaded > 0 and accepted
    assert set(projector.calls.values()) == {1}
    assert sum(table.get(i)["attempts"] for i in ids) == 0
    for image in ids:
        assert table.get(image)["progress_state"] == (3 if image in accepted else 0)


def test_batch_index_gives_the_claims_back_and_fails_when_the_stream_is_gone(table, aws, settings):
    # Given no stream at all (deleted, or the wrong name): every call is refused
    ids = [grid_id(i) for i in range(12)]
    table.put_new(ids)
    kinesis = boto3.client("kinesis", endpoint_url=aws, config=client_config(max_attempts=1))
    projector = Scripted()
    with pytest.raises(StreamRefused, match="ResourceNotFoundException") as caught:
        run_batch_index(settings, deps(table, kinesis, projector))
    # Then one projection found it out; every claim is back with no attempt
    assert len(projector.calls) == 1
    assert caught.value.summary.kinesis_refused == 1
    for image in ids:
        item = table.get(image)
        assert (item["progress_state"], item["attempts"]) == (0, 0)


def test_a_killed_workers_claims_come_back_after_the_lease(table, kinesis, settings):
    # Given a worker that claimed ids and died
    ids = [grid_id(i) for i in range(10)]
    table.put_new(ids)
    assert len(table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 10, "dead")) == 10

    # While the lease runs, nobody takes them, and the pass is not finished
    summary = run_batch_index(settings, deps(table, kinesis, Scripted()))
    assert summary.claimed == 0 and not summary.finished_pass

    # After it, the next invocation does, counting an attempt for each
    age_claims(table, ids, timedelta(seconds=settings.loop.lease_seconds + 1))
    summary = run_batch_index(settings, deps(table, kinesis, Scripted()))
    assert (summary.claimed, summary.reclaimed, summary.expired_claims) == (10, 10, 10)
    assert table.counts([S.ENQUEUED])[S.ENQUEUED] == 10
    assert {table.get(i)["attempts"] for i in ids} == {0}  # enqueued: attempts start again


def test_the_rule_switches_off_at_completion_and_not_before(table, kinesis, events, settings):
    ids = [grid_id(i) for i in range(60)]
    table.put_new(ids)
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "alive")
    # Work left held by a live worker: the rule stays on
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), events=events))
    assert summary.claimed == 59 and not summary.finished_pass
    assert rule_state(events) == "ENABLED"
    # Once the dead claim's lease ran out and nothing is left, the worker switches its rule off
    age_claims(table, ids, timedelta(seconds=settings.loop.lease_seconds + 1))
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), events=events))
    assert summary.finished_pass
    assert rule_state(events) == "DISABLED"


def test_batch_index_paces_itself_from_cloudwatch_and_the_control_item(
    table, kinesis, aws, settings
):
    # Given thrall far behind in CloudWatch, then caught up
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws)
    report_iterator_age(cloudwatch, STREAM, HOUR_MS, ago=timedelta(seconds=90))
    table.put_new([grid_id(i) for i in range(20)])
    clock, control = SystemClock(), MemoryControl()
    controller = Controller(Tuning(max_limit=8, max_iterator_age_ms=settings.max_iterator_age_ms))

    def pace():
        return ControlledPace(
            controller,
            control,
            lambda: iterator_age_points(cloudwatch, settings.watched_streams, clock.now()),
            clock,
            refresh_seconds=0.2,
        )

    fast = BatchIndexSettings(**{**vars(settings), "refresh_seconds": 1})
    summary = run_batch_index(fast, deps(table, kinesis, Scripted(), pace=pace(), control=control))
    # Then it took nothing and said why; the controller's state is in the control item
    assert summary.claimed == 0
    assert "back-pressure" in summary.skipped
    assert control.read().pace is not None
