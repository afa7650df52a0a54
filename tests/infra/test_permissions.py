"""What each function may touch: every statement of every role, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from grid_reingest import names
from infra import constants as c
from infra.app import cdk_json_context
from tests.infra.conftest import (
    VARIANT_OVERRIDES,
    Assembly,
    function_id,
    function_props,
    resources,
    role_statements,
    single_id,
    synthesize,
)

pytestmark = pytest.mark.slow

STREAM = (
    "arn:aws:kinesis:eu-west-1:123456789012:stream/"
    "media-service-TEST-ThrallLowPriorityMessageStream"
)
STREAM_KEY = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000001"

# What a worker does to the state table: conditional UpdateItems (claims,
# outcomes, the control item), GetItem (the control item), Query on the index.
ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
# The operators' bulk calls: no worker may make them.
OPERATOR_ACTIONS = {
    "dynamodb:Scan",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable",
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
}


def arn(service: str, resource: str) -> dict[str, Any]:
    """An ARN in the stack's own account and region, as CDK's format_arn renders it."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":{service}:eu-west-1:",
                {"Ref": "AWS::AccountId"},
                f":{resource}",
            ],
        ]
    }


def allow(actions: str | list[str], resource: Any, **extra: Any) -> dict[str, Any]:
    return {"Action": actions, "Effect": "Allow", "Resource": resource, **extra}


def logs_statement(raw: dict, service: str) -> dict[str, Any]:
    log_group = function_props(raw, service)["LoggingConfig"]["LogGroup"]["Ref"]
    return allow(["logs:CreateLogStream", "logs:PutLogEvents"], {"Fn::GetAtt": [log_group, "Arn"]})


def table_statements(raw: dict) -> list[dict[str, Any]]:
    table = {"Fn::GetAtt": [single_id(raw, "AWS::DynamoDB::Table"), "Arn"]}
    index = {"Fn::Join": ["", [table, f"/index/{names.STATE_INDEX}"]]}
    return [allow(ITEM_ACTIONS, table), allow("dynamodb:Query", index)]


def stream_key_statement(key: str = STREAM_KEY, region: str = "eu-west-1") -> dict[str, Any]:
    return allow(
        "kms:GenerateDataKey",
        key,
        Condition={"StringEquals": {"kms:ViaService": f"kinesis.{region}.amazonaws.com"}},
    )


def checkpoint_statement(stage: str = "TEST") -> dict[str, Any]:
    """Scan on thrall's KCL lease table (named after its stream), and nothing else."""
    return allow(
        "dynamodb:Scan",
        arn("dynamodb", f"table/media-service-{stage}-ThrallLowPriorityMessageStream"),
    )


def api_key_statement(stage: str = "TEST") -> dict[str, Any]:
    return allow(
        "ssm:GetParameter", arn("ssm", f"parameter/{stage}/media-service/grid-reingest/api-key")
    )


def own_rule_statement(service: str) -> dict[str, Any]:
    return allow(
        ["events:DescribeRule", "events:DisableRule", "events:EnableRule"],
        arn("events", f"rule/{c.resource_name(service, 'TEST')}"),
    )


def test_permissions_image_projection_reads_only_the_api_key(assembly):
    raw = assembly.raw("TEST")

    assert role_statements(raw, names.IMAGE_PROJECTION) == [
        logs_statement(raw, names.IMAGE_PROJECTION),
        api_key_statement(),
    ]


def test_permissions_batch_index(assembly):
    raw = assembly.raw("TEST")

    assert role_statements(raw, names.BATCH_INDEX) == [
        logs_statement(raw, names.BATCH_INDEX),
        *table_statements(raw),
        allow("kinesis:PutRecords", STREAM),
        stream_key_statement(),
        # CloudWatch has no resource-level permissions for this read.
        allow("cloudwatch:GetMetricStatistics", "*"),
        checkpoint_statement(),
        allow(
            "lambda:InvokeFunction",
            {"Fn::GetAtt": [function_id(raw, names.IMAGE_PROJECTION), "Arn"]},
        ),
        own_rule_statement(names.BATCH_INDEX),
    ]


def test_permissions_batch_check(assembly):
    raw = assembly.raw("TEST")

    assert role_statements(raw, names.BATCH_CHECK) == [
        logs_statement(raw, names.BATCH_CHECK),
        *table_statements(raw),
        own_rule_statement(names.BATCH_CHECK),
        # batch-index's switched on (never off) when a check-first item goes back to it
        allow(
            ["events:DescribeRule", "events:EnableRule"],
            arn("events", "rule/grid-reingest-batch-index-TEST"),
        ),
        api_key_statement(),
    ]


def test_permissions_state_counts_reads_the_stream_and_writes_only_its_tally(assembly):
    raw = assembly.raw("TEST")
    table = single_id(raw, "AWS::DynamoDB::Table")

    assert role_statements(raw, names.STATE_COUNTS) == [
        logs_statement(raw, names.STATE_COUNTS),
        # Lambda's poller lists streams; DynamoDB has no resource-level permission for it.
        allow("dynamodb:ListStreams", "*"),
        allow(
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            {"Fn::GetAtt": [table, "StreamArn"]},
        ),
        allow(
            ["dynamodb:UpdateItem", "dynamodb:PutItem"],
            {"Fn::GetAtt": [table, "Arn"]},
            Condition={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["~counts*"]}},
        ),
    ]


@pytest.mark.parametrize("stage", c.STAGES)
def test_permissions_no_wildcard_resource_but_the_reads_aws_allows_no_other_way(assembly, stage):
    raw = assembly.raw(stage)
    wildcards = [
        statement["Action"]
        for policy in resources(raw, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == "*"
        or (isinstance(statement["Resource"], list) and "*" in statement["Resource"])
    ]

    assert wildcards == ["cloudwatch:GetMetricStatistics", "dynamodb:ListStreams"]


@pytest.mark.parametrize("stage", c.STAGES)
def test_permissions_roles_have_no_managed_policies(assembly, stage):
    roles = resources(assembly.raw(stage), "AWS::IAM::Role")

    assert len(roles) == 4
    for role in roles.values():
        assert "ManagedPolicyArns" not in role["Properties"]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
            }
        ]


def test_permissions_customer_managed_api_key_needs_decrypt_through_ssm_only(variant):
    raw = variant.raw("TEST")
    decrypt = allow(
        "kms:Decrypt",
        VARIANT_OVERRIDES["apiKeyKmsKeyArn"],
        Condition={"StringEquals": {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}},
    )

    for service in (names.IMAGE_PROJECTION, names.BATCH_CHECK):
        assert decrypt in role_statements(raw, service)
    assert decrypt not in role_statements(raw, names.BATCH_INDEX)


def test_permissions_prod_names_prod_resources(assembly):
    raw = assembly.raw("PROD")
    statements = role_statements(raw, names.BATCH_INDEX, "PROD")

    assert (
        allow(
            "kinesis:PutRecords",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/media-service-PROD-ThrallLowPriorityMessageStream",
        )
        in statements
    )
    assert (
        allow(
            ["events:DescribeRule", "events:DisableRule", "events:EnableRule"],
            arn("events", "rule/grid-reingest-batch-index-PROD"),
        )
        in statements
    )
    assert api_key_statement("PROD") in role_statements(raw, names.BATCH_CHECK, "PROD")
    assert checkpoint_statement("PROD") in statements


def test_permissions_no_worker_publishes_without_a_scheduled_repair(assembly):
    for service in (names.BATCH_INDEX, names.BATCH_CHECK):
        assert "sns:Publish" not in json.dumps(role_statements(assembly.raw("TEST"), service))


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


@pytest.mark.parametrize("stage", c.STAGES)
@pytest.mark.parametrize("service", (names.BATCH_INDEX, names.BATCH_CHECK))
def test_permissions_workers_make_no_operator_table_call(assembly, stage, service):
    # Given a worker's role, When its DynamoDB actions on the state table are collected
    statements = role_statements(assembly.raw(stage), service, stage)
    dynamodb = {
        a
        for a in actions_of([s for s in statements if s != checkpoint_statement(stage)])
        if a.startswith("dynamodb:")
    }

    # Then they are exactly what the worker calls: no scan, put, delete or batch call
    assert dynamodb == {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"}
    assert not dynamodb & OPERATOR_ACTIONS


@pytest.fixture(scope="module")
def without_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """TEST with no thrallCheckpointTable (one more synth, TEST only)."""
    context = cdk_json_context()
    del context[c.STAGES_CONTEXT_KEY]["TEST"]["thrallCheckpointTable"]
    return synthesize(tmp_path_factory.mktemp("cdk.out-no-checkpoints"), context, ["TEST"])


@pytest.mark.parametrize("stage", c.STAGES)
def test_permissions_only_batch_index_reads_thrall_checkpoints(assembly, stage):
    # Given each role of a stage that names thrall's lease table
    raw = assembly.raw(stage)
    scans = {
        service: [
            s for s in role_statements(raw, service, stage) if "dynamodb:Scan" in actions_of([s])
        ]
        for service in (names.IMAGE_PROJECTION, names.BATCH_INDEX, names.BATCH_CHECK)
    }

    # Then batch-index alone may Scan, that table alone
    assert scans == {
        names.IMAGE_PROJECTION: [],
        names.BATCH_INDEX: [checkpoint_statement(stage)],
        names.BATCH_CHECK: [],
    }


def test_permissions_no_checkpoint_table_no_scan(without_checkpoints):
    # Given a stage that names no lease table, When batch-index's role is read
    raw = without_checkpoints.raw("TEST")
    statements = role_statements(raw, names.BATCH_INDEX)

    # Then it is what it was before: no Scan anywhere
    assert checkpoint_statement() not in statements
    assert "dynamodb:Scan" not in actions_of(statements)
    assert without_checkpoints.nag_error is None


@pytest.mark.parametrize("service", (names.BATCH_INDEX, names.BATCH_CHECK))
def test_permissions_query_reaches_only_the_by_state_index(assembly, service):
    raw = assembly.raw("TEST")
    (query,) = [s for s in role_statements(raw, service) if s["Action"] == "dynamodb:Query"]

    # The index by name, never the table itself or index/*
    parts = query["Resource"]["Fn::Join"][1]
    assert parts[1] == "/index/by-state"
    assert parts[0] == {"Fn::GetAtt": [single_id(raw, "AWS::DynamoDB::Table"), "Arn"]}


@pytest.mark.parametrize("stage", c.STAGES)
def test_permissions_stream_key_only_through_kinesis(assembly, stage):
    statements = role_statements(assembly.raw(stage), names.BATCH_INDEX, stage)
    (key,) = [s for s in statements if s["Action"] == "kms:GenerateDataKey"]

    assert key["Condition"] == {
        "StringEquals": {"kms:ViaService": "kinesis.eu-west-1.amazonaws.com"}
    }
