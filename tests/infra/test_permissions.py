"""What each function may touch: every statement of every role, exactly."""

from __future__ import annotations

from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import (
    VARIANT_OVERRIDES,
    function_id,
    function_props,
    resources,
    role_statements,
    single_id,
)

pytestmark = pytest.mark.slow

STREAM = (
    "arn:aws:kinesis:eu-west-1:123456789012:stream/"
    "media-service-TEST-ThrallLowPriorityMessageStream"
)
STREAM_KEY = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-4000-8000-000000000001"

TABLE_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:GetItem",
    "dynamodb:Scan",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
]
# CDK's grant_read_write_data adds stream reads; the table has no stream, so
# they reach nothing.
TABLE_STREAM_ACTIONS = ["dynamodb:GetRecords", "dynamodb:GetShardIterator"]


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
    resources_ = [table, {"Fn::Join": ["", [table, "/index/*"]]}]
    return [allow(TABLE_ACTIONS, resources_), allow(TABLE_STREAM_ACTIONS, resources_)]


def api_key_statement(stage: str = "TEST") -> dict[str, Any]:
    return allow(
        "ssm:GetParameter", arn("ssm", f"parameter/{stage}/media-service/grid-reingest/api-key")
    )


def own_rule_statement(service: str) -> dict[str, Any]:
    return allow(
        ["events:DescribeRule", "events:DisableRule"],
        arn("events", f"rule/{c.resource_name(service, 'TEST')}"),
    )


def test_permissions_image_projection_reads_only_the_api_key(assembly):
    raw = assembly.raw("TEST")

    assert role_statements(raw, c.IMAGE_PROJECTION) == [
        logs_statement(raw, c.IMAGE_PROJECTION),
        api_key_statement(),
    ]


def test_permissions_batch_index(assembly):
    raw = assembly.raw("TEST")

    assert role_statements(raw, c.BATCH_INDEX) == [
        logs_statement(raw, c.BATCH_INDEX),
        *table_statements(raw),
        allow("kinesis:PutRecords", STREAM),
        allow("kms:GenerateDataKey", STREAM_KEY),
        # CloudWatch has no resource-level permissions for this read.
        allow("cloudwatch:GetMetricStatistics", "*"),
        allow(
            "lambda:InvokeFunction", {"Fn::GetAtt": [function_id(raw, c.IMAGE_PROJECTION), "Arn"]}
        ),
        own_rule_statement(c.BATCH_INDEX),
    ]


def test_permissions_batch_check(assembly):
    raw = assembly.raw("TEST")

    assert role_statements(raw, c.BATCH_CHECK) == [
        logs_statement(raw, c.BATCH_CHECK),
        *table_statements(raw),
        own_rule_statement(c.BATCH_CHECK),
        api_key_statement(),
    ]


@pytest.mark.parametrize("stage", c.STAGES)
def test_permissions_no_wildcard_resource_but_the_cloudwatch_read(assembly, stage):
    raw = assembly.raw(stage)
    wildcards = [
        statement["Action"]
        for policy in resources(raw, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Resource"] == "*"
        or (isinstance(statement["Resource"], list) and "*" in statement["Resource"])
    ]

    assert wildcards == ["cloudwatch:GetMetricStatistics"]


@pytest.mark.parametrize("stage", c.STAGES)
def test_permissions_roles_have_no_managed_policies(assembly, stage):
    roles = resources(assembly.raw(stage), "AWS::IAM::Role")

    assert len(roles) == 3
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

    for service in (c.IMAGE_PROJECTION, c.BATCH_CHECK):
        assert decrypt in role_statements(raw, service)
    assert decrypt not in role_statements(raw, c.BATCH_INDEX)


def test_permissions_prod_names_prod_resources(assembly):
    raw = assembly.raw("PROD")
    statements = role_statements(raw, c.BATCH_INDEX, "PROD")

    assert (
        allow(
            "kinesis:PutRecords",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/media-service-PROD-ThrallLowPriorityMessageStream",
        )
        in statements
    )
    assert (
        allow(
            ["events:DescribeRule", "events:DisableRule"],
            arn("events", "rule/grid-reingest-batch-index-PROD"),
        )
        in statements
    )
    assert api_key_statement("PROD") in role_statements(raw, c.BATCH_CHECK, "PROD")
