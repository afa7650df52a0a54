"""The scheduled repair (off unless the stage's cdk.json `repair` asks for it).

One function on its schedule (deployed on: that is what asking for it means)
that starts a check-first pass over the Grid's image bucket or its newest S3
Inventory, loads the pass's ids, then switches both workers' schedules on
(flows/repair.py). It may: list the image bucket (or read the inventory's
prefix), write the state table's items and pass records, enable the two
workers' rules, publish on the report topic, and invoke itself to carry on.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from grid_reingest import names, settings
from infra import constants as c
from infra.config import ConfigError, RepairConfig, StageConfig
from infra.constructs.functions import Schedule, Worker, ack, build_function, role_of

# One invocation at a time: a pass is loaded by one loader (the pass record says so too).
RESERVED_CONCURRENCY = 1


def repair_environment(config: StageConfig, repair: RepairConfig) -> dict[str, str]:
    """The repair function's environment, checked as the function will load it."""
    stage = config.stage
    known = {
        settings.STAGE.name: stage,
        settings.STATE_TABLE_NAME.name: c.resource_name(None, stage),
        settings.INDEX_RULE_NAME.name: c.resource_name(names.BATCH_INDEX, stage),
        settings.CHECK_RULE_NAME.name: c.resource_name(names.BATCH_CHECK, stage),
        settings.REPORT_TOPIC_ARN.name: repair.report_topic_arn,
    }
    if repair.source_bucket:
        known[settings.REPAIR_SOURCE_BUCKET.name] = repair.source_bucket
    if repair.inventory_url:
        known[settings.REPAIR_INVENTORY_URL.name] = repair.inventory_url
    if repair.instance:
        known[settings.REPAIR_INSTANCE.name] = repair.instance
    environment = {}
    for var in settings.variables(settings.RepairSettings):
        value = known.get(var.name, var.default)
        if value is not None:
            environment[var.name] = value
    try:
        settings.load(settings.RepairSettings, environment)
    except settings.SettingsError as error:
        problems = [f"repair would refuse its settings: {p}" for p in error.problems]
        raise ConfigError(stage, problems) from None
    return environment


class Repair(Construct):
    """The scheduled repair's function, its schedule and its permissions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        repair: RepairConfig,
        table: dynamodb.ITable,
        code: lambda_.Code,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._repair = repair
        self.worker: Worker = build_function(
            self,
            config,
            names.REPAIR,
            code,
            repair_environment(config, repair),
            timeout_seconds=c.LAMBDA_MAX_TIMEOUT_SECONDS,
            reserved_concurrency=RESERVED_CONCURRENCY,
            description="Starts a check-first pass over the Grid's originals on its schedule "
            "(unless one runs), loads its ids, then switches both workers on",
            schedule=Schedule(
                events.Schedule.expression(repair.schedule),
                enabled=True,
                description="Starts a scheduled repair pass of {name}: deployed on, because "
                "the stage's cdk.json asks for it.",
            ),
        )
        self._grant(table)

    def _grant(self, table: dynamodb.ITable) -> None:
        function = self.worker.function
        stack = Stack.of(self)
        stage = self._config.stage
        # The upload: reads by key, PartiQL INSERTs of new ids, conditional puts to re-arm;
        # the pass records by key.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:PartiQLInsert",
                ],
                resources=[table.table_arn],
            )
        )
        rules = [
            stack.format_arn(
                service="events", resource="rule", resource_name=c.resource_name(w, stage)
            )
            for w in (names.BATCH_INDEX, names.BATCH_CHECK)
        ]
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:DescribeRule", "events:EnableRule"], resources=rules
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self._repair.report_topic_arn])
        )
        # Itself, by name (its ARN would make the role's policy depend on the function).
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[
                    stack.format_arn(
                        service="lambda",
                        resource="function",
                        resource_name=c.resource_name(names.REPAIR, stage),
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self._grant_source(function)

    def _grant_source(self, function: lambda_.Function) -> None:
        repair = self._repair
        if repair.source_bucket:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[f"arn:aws:s3:::{repair.source_bucket}"]
                )
            )
            return
        assert repair.inventory_url is not None
        bucket, _, prefix = repair.inventory_url[len("s3://") :].partition("/")
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:aws:s3:::{bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )
        objects = f"arn:aws:s3:::{bucket}/{prefix}*"
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[objects])
        )
        Validations.of(role_of(function)).acknowledge(
            ack(
                f"AwsSolutions-IAM5[Resource::{objects}]",
                "S3 Inventory writes each day's manifest and data files under dated folders it "
                "names itself below the configured prefix: the prefix is the narrowest "
                "resource, and it holds nothing but the inventory's reports.",
            )
        )
