"""thrall's checkpoints read from a KCL lease table on the emulator."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.adapters.thrall_checkpoints import (
    SHARD_ENDED,
    lease_table_problem,
    read_checkpoints,
)
from grid_reingest.domain.thrall_progress import ThrallProgress

# A Kinesis sequence number as the KCL stores it: 56 digits, about 2**185.
SEQUENCE = "49654373411429787343592539423547233867312094327611457586"


@pytest.fixture
def lease_table(dynamodb) -> str:
    """An empty lease table as the KCL creates it: hash key leaseKey, on demand."""
    name = f"thrall-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def put_lease(dynamodb, table: str, lease_key: str, checkpoint: dict | None) -> None:
    """One lease item with the KCL's other attributes beside the checkpoint."""
    item = {
        "leaseKey": {"S": lease_key},
        "leaseOwner": {"S": "thrall-worker-1"},
        "leaseCounter": {"N": "42"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        "checkpointSubSequenceNumber": {"N": "0"},
    }
    if checkpoint is not None:
        item["checkpoint"] = checkpoint
    dynamodb.put_item(TableName=table, Item=item)


def record_scans(dynamodb) -> list[dict]:
    """Records the parameters of each Scan call the client makes."""
    calls: list[dict] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Scan", lambda params, **_: calls.append(dict(params))
    )
    return calls


def test_thrall_checkpoints_reads_every_shard_over_several_pages(dynamodb, lease_table):
    # Given five checkpointed shards, in single- and multi-stream key forms
    expected = {}
    for shard in range(3):
        shard_id = f"shardId-{shard:012d}"
        put_lease(dynamodb, lease_table, shard_id, {"S": str(1000 + shard)})
        expected[shard_id] = 1000 + shard
    multi = "123456789012:media-service-TEST-ThrallLowPriorityMessageStream:1700000000"
    put_lease(dynamodb, lease_table, f"{multi}:shardId-000000000007", {"S": SEQUENCE})
    put_lease(dynamodb, lease_table, f"{multi}:shardId-000000000008", {"S": "7"})
    expected |= {"shardId-000000000007": int(SEQUENCE), "shardId-000000000008": 7}
    scans = record_scans(dynamodb)

    # When read two items a page
    checkpoints = read_checkpoints(dynamodb, lease_table, page_size=2)

    # Then every shard's checkpoint is there, keyed by its shard id, as an exact int
    assert checkpoints == expected
    # ... read over several pages, each only the two attributes (by placeholder)
    assert len(scans) >= 3
    names = scans[0]["ExpressionAttributeNames"]
    projected = {names[p.strip()] for p in scans[0]["ProjectionExpression"].split(",")}
    assert projected == {"leaseKey", "checkpoint"}


@pytest.mark.parametrize("sentinel", ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"])
def test_thrall_checkpoints_leaves_out_shards_not_yet_checkpointed(dynamodb, lease_table, sentinel):
    # Given a shard at a sentinel, one with no checkpoint, and one checkpointed
    put_lease(dynamodb, lease_table, "shardId-000000000000", {"S": sentinel})
    put_lease(dynamodb, lease_table, "shardId-000000000001", None)
    put_lease(dynamodb, lease_table, "shardId-000000000002", {"S": "12"})

    # When read, Then only the checkpointed shard is there
    assert read_checkpoints(dynamodb, lease_table) == {"shardId-000000000002": 12}


def test_thrall_checkpoints_a_closed_shard_is_past_every_record(dynamodb, lease_table):
    # Given a parent shard closed by a reshard: thrall processed all of it
    put_lease(dynamodb, lease_table, "shardId-000000000000", {"S": "SHARD_END"})
    # Then it reads as a checkpoint beyond any sequence number
    checkpoint = read_checkpoints(dynamodb, lease_table)["shardId-000000000000"]
    assert checkpoint == SHARD_ENDED > int("9" * 128)


def test_thrall_checkpoints_a_table_that_cannot_be_read_is_said_in_words(dynamodb, lease_table):
    assert lease_table_problem(dynamodb, lease_table) is None
    missing = lease_table_problem(dynamodb, "no-such-table")
    assert missing is not None and missing.startswith("ResourceNotFoundException")
    put_lease(dynamodb, lease_table, "shardId-000000000001", {"S": "bogus"})
    malformed = lease_table_problem(dynamodb, lease_table)
    assert malformed is not None and "'bogus' is neither a sequence number" in malformed


def test_thrall_checkpoints_empty_table_has_none(dynamodb, lease_table):
    assert read_checkpoints(dynamodb, lease_table) == {}


@pytest.mark.parametrize(
    ("checkpoint", "shown"),
    [
        ({"S": "12abc"}, "'12abc'"),
        ({"S": "-5"}, "'-5'"),
        ({"S": " 5"}, "' 5'"),
        ({"S": "1" * 130}, repr("1" * 130)),  # longer than Kinesis's 129 digits
        ({"S": "007"}, "'007'"),  # Kinesis writes no leading zero
        ({"S": ""}, "''"),
        ({"N": "5"}, "{'N': '5'}"),
    ],
)
def test_thrall_checkpoints_refuses_a_checkpoint_that_is_no_sequence_number(
    dynamodb, lease_table, checkpoint, shown
):
    # Given a lease whose checkpoint is neither a sentinel nor a sequence number
    put_lease(dynamodb, lease_table, "shardId-000000000004", checkpoint)

    # When read, Then the error names the table, the lease and the value
    with pytest.raises(ValueError) as caught:
        read_checkpoints(dynamodb, lease_table)
    message = str(caught.value)
    assert lease_table in message
    assert "'shardId-000000000004'" in message
    assert f"checkpoint {shown} is neither" in message


def test_thrall_checkpoints_refuses_two_leases_of_one_shard(dynamodb, lease_table):
    # Given leases of two streams in one table, for the same shard id
    put_lease(dynamodb, lease_table, "1:stream-a:1:shardId-000000000000", {"S": "1"})
    put_lease(dynamodb, lease_table, "1:stream-b:1:shardId-000000000000", {"S": "2"})

    # When read, Then it refuses to pick one, naming both
    with pytest.raises(ValueError, match=r"stream-a.*stream-b|stream-b.*stream-a"):
        read_checkpoints(dynamodb, lease_table)


def test_thrall_checkpoints_missing_table_is_a_client_error(dynamodb):
    # Given no such table, When read, Then DynamoDB's error comes through unchanged
    with pytest.raises(ClientError) as caught:
        read_checkpoints(dynamodb, "no-such-lease-table")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_thrall_checkpoints_against_records_published_tell_what_thrall_has_not_reached(
    aws, dynamodb, lease_table
):
    # Given ten records published on a real (emulated) stream, their positions remembered
    kinesis = boto3.client("kinesis", endpoint_url=aws)
    stream = f"thrall-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    result = Publisher(kinesis, stream).publish([(f"{i:040x}", b"{}") for i in range(10)])
    assert len(result.positions) == 10
    progress = ThrallProgress()
    progress.observe(read_checkpoints(dynamodb, lease_table), at=0.0)
    progress.published([(shard, seq, float(k)) for k, (shard, seq) in enumerate(result.positions)])
    # When thrall's lease says it processed the fifth, as the KCL writes it
    shard, fifth = result.positions[4]
    put_lease(dynamodb, lease_table, shard, {"S": "TRIM_HORIZON"})
    progress.observe(read_checkpoints(dynamodb, lease_table), at=20.0)
    put_lease(dynamodb, lease_table, shard, {"S": str(fifth)})
    progress.observe(read_checkpoints(dynamodb, lease_table), at=20.0)
    # Then the oldest record thrall had not reached is the sixth (published at 5 s): 15 s
    assert progress.reading(20.0).age_s == pytest.approx(15.0)
