"""The stream's answers, told apart: configuration refusals, transient failures, throughput."""

import boto3
import pytest
from botocore.stub import Stubber

from grid_reingest.adapters.kinesis import MAX_SEND_ROUNDS, Publisher


@pytest.fixture
def client():
    return boto3.client(
        "kinesis", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


RECORDS = [("a" * 40, b"one"), ("b" * 40, b"two")]


@pytest.mark.parametrize(
    "code",
    [
        "AccessDeniedException",
        "KMSAccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException",
    ],
)
def test_kinesis_publisher_a_configuration_error_is_a_refusal(client, code):
    with Stubber(client) as stub:
        stub.add_client_error("put_records", service_error_code=code, http_status_code=400)
        result = Publisher(client, "thrall", sleep=lambda s: None).publish(RECORDS)
    assert result.refused and code in result.call_error
    assert result.unsent == [i for i, _ in RECORDS] and not result.accepted


def test_kinesis_publisher_a_transient_error_is_not_a_refusal(client):
    with Stubber(client) as stub:
        stub.add_client_error(
            "put_records", service_error_code="InternalFailure", http_status_code=500
        )
        result = Publisher(client, "thrall", sleep=lambda s: None).publish(RECORDS)
    assert result.call_error and not result.refused


def test_kinesis_publisher_a_records_kms_refusal_refuses_the_call(client):
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            {
                "FailedRecordCount": 1,
                "Records": [
                    {"SequenceNumber": "1", "ShardId": "s"},
                    {"ErrorCode": "KMSDisabledException", "ErrorMessage": "key disabled"},
                ],
            },
        )
        result = Publisher(client, "thrall", sleep=lambda s: None).publish(RECORDS)
    assert result.accepted == ["a" * 40]
    assert result.refused and result.unsent == ["b" * 40]


def test_kinesis_publisher_throughput_rejections_after_retries_are_overload(client):
    throttled = {
        "ErrorCode": "ProvisionedThroughputExceededException",
        "ErrorMessage": "slow down",
    }
    with Stubber(client) as stub:
        for _ in range(MAX_SEND_ROUNDS):
            stub.add_response("put_records", {"FailedRecordCount": 1, "Records": [throttled]})
        result = Publisher(client, "thrall", sleep=lambda s: None).publish(RECORDS[:1])
    assert result.overloaded == ["a" * 40]
    assert "ProvisionedThroughputExceededException" in result.rejected["a" * 40]


def test_kinesis_publisher_says_where_each_accepted_record_landed(client):
    # Given a call whose first record is rejected once, the second accepted at once
    seq = "49590338271490256608559692538361571095921575989136588898"
    with Stubber(client) as stub:
        stub.add_response(
            "put_records",
            {
                "FailedRecordCount": 1,
                "Records": [
                    {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
                    {"SequenceNumber": seq, "ShardId": "shardId-000000000001"},
                ],
            },
        )
        stub.add_response(
            "put_records",
            {"Records": [{"SequenceNumber": seq + "1", "ShardId": "shardId-000000000002"}]},
        )
        # When both are published
        result = Publisher(client, "thrall", sleep=lambda s: None).publish(RECORDS)
    # Then each accepted record's shard and (exact) sequence number come back, in order
    assert result.positions == [
        ("shardId-000000000001", int(seq)),
        ("shardId-000000000002", int(seq + "1")),
    ]
