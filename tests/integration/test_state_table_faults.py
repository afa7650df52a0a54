"""The state-table layer when DynamoDB throttles and leaves items unprocessed (injected)."""

from __future__ import annotations

import boto3
import pytest

from devtools.aws_proxy import AwsProxy, Faults
from grid_reingest.adapters.aws import client_config
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.states import ProgressState as S


@pytest.fixture
def faulty_dynamodb(aws):
    # Uploads write new ids by BatchExecuteStatement: throttle whole calls, and refuse
    # some statements of others with ThrottlingError, as DynamoDB does per statement.
    faults = Faults(
        targets=("DynamoDB_20120810.BatchExecuteStatement",),
        throttle_rate=0.2,
        partial_rate=0.2,
        seed=11,
    )
    with AwsProxy(aws, faults=faults) as proxy:
        yield boto3.client("dynamodb", endpoint_url=proxy.url, config=client_config(16)), faults


def test_upload_loses_no_id_when_a_fifth_of_calls_fail(table_name, faulty_dynamodb, monkeypatch):
    # Given a table behind a proxy that throttles 20% of the upload's write calls and
    # refuses part of another 20%
    client, faults = faulty_dynamodb
    monkeypatch.setattr("grid_reingest.domain.backoff.full_jitter", lambda attempt: 0.001)
    ids = [f"{i:040x}" for i in range(1000)]

    # When
    with OperatorTable(table_name, client, max_workers=8) as table:
        report = table.put_new(ids)
        counted = table.count(S.NOT_STARTED)

    # Then every id is stored, and the faults really happened
    assert report.written == 1000
    assert counted == 1000
    assert faults.counts["throttle"] > 2
    assert faults.counts["partial"] > 2
