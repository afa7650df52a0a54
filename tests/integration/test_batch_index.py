"""batch-index against moto's server (DynamoDB, Kinesis, CloudWatch, EventBridge) over HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from devtools.aws_proxy import AwsProxy, Faults
from devtools.thrall_consumer import read_stream
from devtools.thrall_metrics import report_iterator_age
from grid_reingest.adapters.aws import client_config
from grid_reingest.adapters.cloudwatch import iterator_age_ms
from grid_reingest.adapters.eventbridge import disable_rule
from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.domain import backpressure
from grid_reingest.domain.claims import Source
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.outcome import Failed, NotFound, Outcome, Ready, TooBig
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.domain.thrall_message import encode_message
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.settings import BatchIndexSettings, load

STREAM = "media-service-thrall-low-priority-TEST"
RULE = "grid-reingest-batch-index-TEST"
HOUR_MS = 3_600_000


def grid_id(n: int) -> str:
    return f"{n:040x}"


def ready(image_id: str) -> Ready:
    image = {"id": image_id, "uploadedBy": "someone@example.org", "extraField": {"kept": True}}
    return Ready(image_id, encode_message(image, utc_now()), 80)


class Scripted:
    """A projector answering from a script (default: ready), counting its calls."""

    def __init__(self, script: dict[str, Outcome] | None = None, gate=None) -> None:
        self.script = script or {}
        self.calls: Counter[str] = Counter()
        self.gate = gate
        self.lock = threading.Lock()

    def project(self, image_id: str) -> Outcome:
        with self.lock:
            self.calls[image_id] += 1
        if self.gate is not None:
            self.gate(image_id)
        return self.script.get(image_id) or ready(image_id)


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
            "BATCH_SIZE": "50",
            "GRID_CONCURRENCY": "8",
            "MAX_ATTEMPTS": "3",
            "BREAKER_MIN_RESULTS": "10",
        },
    )


def deps(
    table,
    kinesis,
    projector,
    *,
    events=None,
    verdict=None,
    remaining=None,
    worker="invocation-1",
    now=utc_now,
    publisher=None,
) -> IndexDeps:
    return IndexDeps(
        table=table,
        projector=projector,
        publisher=publisher or Publisher(kinesis, STREAM, sleep=lambda s: None),
        backpressure=verdict or (lambda: backpressure.Verdict(50, 10.0, "test: full batch")),
        disable_schedule=(lambda: disable_rule(events, RULE)) if events else None,
        remaining_ms=remaining or (lambda: 15 * 60 * 1000),
        worker=worker,
        now=now,
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
        ids[4]: Failed(ids[4], "leases", 503, "Service Unavailable"),
    }
    # When
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(script)))
    # Then
    states = {i: table.get(i)["progress_state"] for i in ids}
    assert states == {ids[0]: 3, ids[1]: 2, ids[2]: 9001, ids[3]: 4, ids[4]: 0, ids[5]: 3}
    assert table.get(ids[4])["attempts"] == 1
    assert table.get(ids[4])["last_error"] == "leases: HTTP 503: Service Unavailable"
    assert table.get(ids[4])["state_name"] == "reset because of failure"
    assert "CommandException" in table.get(ids[3])["last_error"]
    assert "2000000 bytes" in table.get(ids[2])["last_error"]
    assert summary.claimed == 6
    assert summary.states == {3: 2, 2: 1, 9001: 1, 4: 1, 0: 1}
    assert summary.kinesis_calls == 1


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


def test_batch_index_puts_back_images_kinesis_keeps_rejecting(table, aws, kinesis, settings):
    ids = [grid_id(i) for i in range(5)]
    table.put_new(ids)
    faults = Faults(targets=("Kinesis_20131202.PutRecords",), partial_rate=1.0, seed=3)
    with AwsProxy(aws, faults=faults) as proxy:
        publisher = Publisher(
            boto3.client("kinesis", endpoint_url=proxy.url), STREAM, sleep=lambda s: None
        )
        run_batch_index(settings, deps(table, kinesis, Scripted(), publisher=publisher))
    accepted = {key for key, _ in read_stream(kinesis, STREAM)}
    for image in ids:
        item = table.get(image)
        if image in accepted:
            assert item["progress_state"] == 3
        else:
            assert item["progress_state"] == 0
            assert item["attempts"] == 1
            assert "ProvisionedThroughputExceededException" in item["last_error"]
    assert len(accepted) < 5


def test_batch_index_releases_the_batch_when_the_stream_is_gone(table, aws, settings):
    # Given no stream at all (deleted, or the wrong name): every call fails whole
    ids = [grid_id(i) for i in range(12)]
    table.put_new(ids)
    kinesis = boto3.client("kinesis", endpoint_url=aws, config=client_config(max_attempts=1))
    summary = run_batch_index(settings, deps(table, kinesis, Scripted()))
    assert "ResourceNotFoundException" in summary.stopped_because
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

    # After it, the next invocation does
    later = lambda: utc_now() + timedelta(seconds=settings.lease_seconds + 1)  # noqa: E731
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), now=later))
    assert (summary.claimed, summary.reclaimed) == (10, 10)
    assert table.counts([S.ENQUEUED])[S.ENQUEUED] == 10


def test_four_overlapping_invocations_publish_each_image_exactly_once(table, kinesis, settings):
    # Given 2,000 ids and four invocations running at once, batch after batch
    ids = [grid_id(i) for i in range(2000)]
    table.put_new(ids)
    projector = Scripted()
    busy = replace(settings, batch_size=100, concurrency=16)
    start = threading.Barrier(4)
    errors = []

    def invocation(n: int) -> None:
        start.wait()
        try:
            while run_batch_index(
                busy, deps(table, kinesis, projector, worker=f"invocation-{n}")
            ).claimed:
                pass
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=invocation, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Then
    assert not errors
    assert set(projector.calls.values()) == {1}
    keys = Counter(key for key, _ in read_stream(kinesis, STREAM))
    assert len(keys) == 2000 and set(keys.values()) == {1}
    assert table.counts([S.ENQUEUED])[S.ENQUEUED] == 2000


def test_the_breaker_trips_when_the_loader_is_down(table, kinesis, settings):
    # Given the loader failing for every image, slowly enough that the breaker
    # trips before the batch is done
    ids = [grid_id(i) for i in range(50)]
    table.put_new(ids)
    down = {i: Failed(i, "image-loader", 502, "Bad Gateway") for i in ids}
    summary = run_batch_index(
        replace(settings, concurrency=2), deps(table, kinesis, Scripted(down))
    )
    # Then the images it tried count an attempt; the rest go back untouched
    assert summary.breaker_tripped_by == "image-loader:502"
    assert summary.stopped_because.startswith("breaker tripped")
    tried = summary.outcomes["failed"]
    assert settings.breaker_min_results <= tried < 20
    attempts = Counter(table.get(i)["attempts"] for i in ids)
    assert attempts == {1: tried, 0: 50 - tried}
    assert table.count(S.NOT_STARTED) == 50
    # Claims are taken a round ahead of the work: what was taken but not tried is given back
    assert summary.claimed < 50
    assert summary.released == summary.claimed - tried


def test_one_failing_service_does_not_trip_the_breaker_below_its_share(table, kinesis, settings):
    ids = [grid_id(i) for i in range(30)]
    table.put_new(ids)
    script = {i: Failed(i, "usage", 500, "x") for i in ids[:10]}
    # Judged on the whole batch: which images finish first is up to the claims' order.
    whole_batch = replace(settings, breaker_min_results=30)
    summary = run_batch_index(whole_batch, deps(table, kinesis, Scripted(script)))
    assert summary.breaker_tripped_by is None
    assert summary.states[3] == 20 and summary.failures == 10


def test_the_rule_switches_off_at_completion_and_not_before(table, kinesis, events, settings):
    ids = [grid_id(i) for i in range(60)]
    table.put_new(ids)
    # A first batch leaves work behind: the rule stays on
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), events=events))
    assert summary.claimed == 50 and not summary.finished_pass
    assert rule_state(events) == "ENABLED"
    # The second takes the rest: still on (nothing proves the end yet)
    run_batch_index(settings, deps(table, kinesis, Scripted(), events=events))
    assert rule_state(events) == "ENABLED"
    # The third finds nothing left: it switches its own rule off
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), events=events))
    assert summary.finished_pass
    assert rule_state(events) == "DISABLED"


def test_items_held_by_a_live_worker_keep_the_rule_on(table, kinesis, events, settings):
    table.put_new([grid_id(1)])
    table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "alive")
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), events=events))
    assert not summary.finished_pass
    assert rule_state(events) == "ENABLED"


def put_age(cloudwatch, age_ms: float) -> None:
    report_iterator_age(cloudwatch, STREAM, age_ms, ago=timedelta(seconds=30))


def cloudwatch_verdict(cloudwatch, settings):
    def verdict():
        age, silent = iterator_age_ms(cloudwatch, settings.watched_streams, datetime.now(UTC))
        return backpressure.decide(age, silent, settings.max_iterator_age_ms, settings.batch_size)

    return verdict


@pytest.mark.parametrize(("age_ms", "claimed"), [(None, 0), (HOUR_MS, 0), (1000, 50), (50_000, 16)])
def test_back_pressure_decides_how_much_to_take(table, kinesis, aws, settings, age_ms, claimed):
    # Given thrall's iterator age in CloudWatch (threshold 60 s): none, far above,
    # well below, close to it
    cloudwatch = boto3.client("cloudwatch", endpoint_url=aws)
    if age_ms is not None:
        put_age(cloudwatch, age_ms)
    table.put_new([grid_id(i) for i in range(60)])
    # When
    summary = run_batch_index(
        settings, deps(table, kinesis, Scripted(), verdict=cloudwatch_verdict(cloudwatch, settings))
    )
    # Then
    assert summary.claimed == claimed
    if claimed == 0:
        assert summary.skipped
        assert summary.metric_counts()["BackPressureSkips"] == 1
        assert table.count(S.NOT_STARTED) == 60


def test_batch_index_stops_claiming_work_when_time_runs_short(table, kinesis, settings):
    ids = [grid_id(i) for i in range(50)]
    table.put_new(ids)
    budget = iter([15 * 60_000] * 8 + [1000] * 1000)  # then the clock runs out
    summary = run_batch_index(
        replace(settings, concurrency=1),
        deps(table, kinesis, Scripted(), remaining=lambda: next(budget)),
    )
    assert summary.stopped_because == "invocation running out of time"
    enqueued = table.count(S.ENQUEUED)
    assert 0 < enqueued < 50
    assert table.count(S.NOT_STARTED) == 50 - enqueued
    assert table.count(S.IN_PROGRESS) == 0
    assert summary.released == summary.claimed - enqueued


def test_batch_index_does_not_start_with_too_little_time(table, kinesis, settings):
    table.put_new([grid_id(1)])
    summary = run_batch_index(settings, deps(table, kinesis, Scripted(), remaining=lambda: 1000))
    assert summary.skipped == "too little time left to start"
    assert table.count(S.NOT_STARTED) == 1


def test_dry_run_publishes_nothing_and_puts_every_id_back(table, kinesis, settings, events):
    ids = [grid_id(i) for i in range(4)]
    table.put_new(ids)
    script = {ids[1]: NotFound(ids[1]), ids[2]: Failed(ids[2], "leases", 500, "x")}
    summary = run_batch_index(
        replace(settings, dry_run=True), deps(table, kinesis, Scripted(script), events=events)
    )
    assert read_stream(kinesis, STREAM) == []
    assert summary.would == {3: 2, 2: 1, 0: 1}
    for image in ids:
        assert (table.get(image)["progress_state"], table.get(image)["attempts"]) == (0, 0)
    assert rule_state(events) == "ENABLED"


def test_a_projector_that_raises_fails_only_its_image(table, kinesis, settings):
    ids = [grid_id(i) for i in range(3)]
    table.put_new(ids)

    def explode(image_id):
        if image_id == ids[1]:
            raise RuntimeError("unexpected")

    run_batch_index(settings, deps(table, kinesis, Scripted(gate=explode)))
    assert [table.get(i)["progress_state"] for i in ids] == [3, 0, 3]
    assert "RuntimeError: unexpected" in table.get(ids[1])["last_error"]


def test_a_start_state_other_than_zero_is_where_failures_return(table, kinesis, settings):
    image = grid_id(7)
    table.put_new([image])
    table.reset([S.NOT_STARTED], S.NOT_FOUND_IN_MEDIA_API)
    run_batch_index(
        replace(settings, start_state=S.NOT_FOUND_IN_MEDIA_API),
        deps(table, kinesis, Scripted({image: Failed(image, "usage", 500, "x")})),
    )
    item = table.get(image)
    assert (item["progress_state"], item["attempts"]) == (7, 1)
