"""The scheduled repair's handler against the emulator: a bucket's originals loaded into a
check-first pass, the workers switched on, a second run refused while the pass runs."""

from __future__ import annotations

import json

import boto3
import pytest

from devtools.local_lambda import FakeContext, invoke
from grid_reingest.adapters import s3_listing
from grid_reingest.adapters.dynamodb.passes import PassTable
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.passes import Kind, Status
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.repair import RepairRefused
from grid_reingest.handlers import repair

BUCKET = "media-service-images-test"
INDEX_RULE, CHECK_RULE = "index-rule-TEST", "check-rule-TEST"


def grid_key(n: int) -> tuple[str, str]:
    image_id = f"{n:040x}"[::-1]  # spread over the hex prefixes
    return image_id, "/".join(image_id[:6]) + "/" + image_id


@pytest.fixture
def world(aws, table_name, dynamodb, monkeypatch):
    # One range a hex prefix: a bucket of 40 keys needs no more, and moto reads the whole
    # bucket for each request (the listing.s splitting: tests/integration/test_ids_from_bucket.py).
    monkeypatch.setattr(s3_listing, "split_levels", lambda hex_prefix: 0)
    s3 = boto3.client("s3", endpoint_url=aws)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    ids = []
    for n in range(1, 41):
        image_id, key = grid_key(n)
        ids.append(image_id)
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"jpeg")
    s3.put_object(Bucket=BUCKET, Key="optimised/x.png", Body=b"png")  # not an original
    events = boto3.client("events", endpoint_url=aws)
    for rule in (INDEX_RULE, CHECK_RULE):
        events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="DISABLED")
    sns = boto3.client("sns", endpoint_url=aws)
    topic = sns.create_topic(Name="reingest-reports")["TopicArn"]
    queue = boto3.client("sqs", endpoint_url=aws)
    queue_url = queue.create_queue(QueueName="reports")["QueueUrl"]
    queue_arn = queue.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    env = {
        "STAGE": "TEST",
        "STATE_TABLE_NAME": table_name,
        "REPAIR_SOURCE_BUCKET": BUCKET,
        "INDEX_RULE_NAME": INDEX_RULE,
        "CHECK_RULE_NAME": CHECK_RULE,
        "REPORT_TOPIC_ARN": topic,
    }
    return {
        "ids": ids,
        "env": env,
        "events": events,
        "table": OperatorTable(table_name, dynamodb),
        "passes": PassTable(table_name, dynamodb),
        "messages": lambda: [
            json.loads(m["Body"])
            for m in queue.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
        ],
    }


def test_repair_loads_the_buckets_originals_and_switches_the_workers_on(world):
    # When the schedule runs the repair
    summary = invoke(repair, world["env"], {"source": "aws.events"}, FakeContext("repair"))
    # Then every original is loaded for a check-first pass, and the pass runs
    assert summary["idsLoaded"] == 40 and summary["running"]
    record = world["passes"].current()
    assert (record.kind, record.status, record.started_by) == (
        Kind.CHECK_FIRST,
        Status.RUNNING,
        "schedule",
    )
    assert record.source == f"s3://{BUCKET}/"
    table = world["table"]
    assert table.count(S.ENQUEUED) == 40
    item = table.get(world["ids"][0])
    assert (item["check_first"], item["pass"]) == (1, record.id)
    for rule in (CHECK_RULE, INDEX_RULE):
        assert world["events"].describe_rule(Name=rule)["State"] == "ENABLED"


def test_repair_refuses_a_run_while_its_pass_runs_and_says_so(world):
    invoke(repair, world["env"], {"source": "aws.events"}, FakeContext("repair"))
    with pytest.raises(RepairRefused, match="still running"):
        invoke(repair, world["env"], {"source": "aws.events"}, FakeContext("repair"))
    refused = [m for m in world["messages"]() if "refused" in m.get("Subject", "")]
    assert refused and "still running" in refused[0]["Message"]
    assert world["table"].count(S.ENQUEUED) == 40  # nothing loaded twice


class ShortOfTime(FakeContext):
    """An invocation with time for one part of the source, and no more."""

    def get_remaining_time_in_millis(self) -> int:
        self._asked = getattr(self, "_asked", 0) + 1
        return 900_000 if self._asked == 1 else 1_000


def test_repair_carries_on_in_another_invocation_when_time_runs_out(world, monkeypatch):
    # Given an invocation with time for about nothing
    resumed = []
    monkeypatch.setattr(repair, "InvokeAgain", lambda client, name: resumed.append)
    short = ShortOfTime("repair")
    summary = invoke(repair, world["env"], {"source": "aws.events"}, short)
    # Then it asked for another invocation, which carries on to the end
    assert summary["partsLeft"] > 0 and resumed == [summary["passId"]]
    done = invoke(repair, world["env"], {"continue": summary["passId"]}, FakeContext("repair"))
    assert done["running"] and world["table"].count(S.ENQUEUED) == 40
