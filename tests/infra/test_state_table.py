"""The state table: the keys and index the adapter expects, and what each stage keeps."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from grid_reingest import names
from grid_reingest.adapters.dynamodb import schema
from infra import constants as c
from tests.infra.conftest import single_id

pytestmark = pytest.mark.slow


class _RecordingClient:
    """Stands in for a DynamoDB client: keeps what create_table asks for."""

    def __init__(self) -> None:
        self.request: dict[str, Any] = {}

    def create_table(self, **request: Any) -> None:
        self.request = request

    def get_waiter(self, _name: str) -> Any:
        return self

    def update_time_to_live(self, **request: Any) -> None:
        self.request["TimeToLiveSpecification"] = request["TimeToLiveSpecification"]

    def wait(self, **_: Any) -> None:
        pass


def declared_schema() -> dict[str, Any]:
    """The table as `grid_reingest.adapters.dynamodb.schema.create_table` declares it."""
    client = _RecordingClient()
    schema.create_table(client, "ignored")
    return client.request


def test_state_table_matches_what_the_adapter_creates(assembly):
    # Given the schema the adapter's own create_table declares
    declared = declared_schema()

    # Then the deployed table has the same keys, attributes and index, on demand
    assembly.template("TEST").has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": c.resource_name(None, "TEST"),
            "KeySchema": declared["KeySchema"],
            "AttributeDefinitions": Match.array_equals(declared["AttributeDefinitions"]),
            "GlobalSecondaryIndexes": Match.array_equals(declared["GlobalSecondaryIndexes"]),
            "BillingMode": declared["BillingMode"],
            "StreamSpecification": {
                "StreamViewType": declared["StreamSpecification"]["StreamViewType"]
            },
            "TimeToLiveSpecification": declared["TimeToLiveSpecification"],
        },
    )


def test_state_table_index_is_by_state_keys_only(assembly):
    (index,) = assembly.raw("TEST")["Resources"][
        single_id(assembly.raw("TEST"), "AWS::DynamoDB::Table")
    ]["Properties"]["GlobalSecondaryIndexes"]

    assert index == {
        "IndexName": schema.INDEX_NAME,
        "KeySchema": [
            {"AttributeName": schema.STATE_SHARD, "KeyType": "HASH"},
            {"AttributeName": schema.CHANGED_AT, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }


@pytest.mark.parametrize("stage", c.STAGES)
def test_state_table_has_point_in_time_recovery(assembly, stage):
    assembly.template(stage).has_resource_properties(
        "AWS::DynamoDB::Table",
        {"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}},
    )


def test_state_table_test_stage_goes_with_its_stack(assembly):
    template = assembly.template("TEST")

    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Properties": Match.object_like({"DeletionProtectionEnabled": False}),
        },
    )


def test_state_table_prod_is_retained_and_protected(assembly):
    template = assembly.template("PROD")

    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {"TableName": c.resource_name(None, "PROD"), "DeletionProtectionEnabled": True}
            ),
        },
    )


def test_state_table_prod_stack_has_termination_protection(assembly):
    artifacts = assembly.manifest()["artifacts"]

    assert artifacts[names.stack_name("PROD")]["properties"].get("terminationProtection") is True
    assert not artifacts[names.stack_name("TEST")]["properties"].get("terminationProtection")


@pytest.mark.parametrize("stage", c.STAGES)
def test_state_table_one_table_per_stage(assembly, stage):
    assembly.template(stage).resource_count_is("AWS::DynamoDB::Table", 1)
    assembly.template(stage).resource_count_is("AWS::DynamoDB::GlobalTable", 0)


def test_state_table_names_the_infra_uses_are_the_adapters():
    # The CDK app takes the table's shape from names.py (it may not import the
    # adapter); the adapter declares it in schema.py: the two must agree.
    assert (
        names.STATE_INDEX,
        names.ID_ATTRIBUTE,
        names.STATE_SHARD_ATTRIBUTE,
        names.CHANGED_AT_ATTRIBUTE,
        names.TTL_ATTRIBUTE,
    ) == (schema.INDEX_NAME, schema.ID, schema.STATE_SHARD, schema.CHANGED_AT, schema.EXPIRES_AT)
