"""The three Lambdas, their schedules, and exactly what each may touch.

- image-projection: reads the Grid API key; nothing else in AWS. Its reserved
  concurrency bounds the pass's projections in flight (with gridConcurrency).
- batch-index: the state table (its items and control item by key, the
  by-state index); puts records on thrall's stream (and asks its KMS key for
  data keys, through Kinesis only); reads thrall's iterator age and, when a
  stage names it, scans thrall's KCL lease table (its checkpoints); invokes
  image-projection; switches its own schedule off and on.
- batch-check: the state table, as batch-index; reads the Grid API key;
  switches its own schedule off and on.

Both workers run continuously: the schedule is a keep-alive every minute, a
tick that cannot start within a minute is dropped (never queued or retried),
and reserved concurrency caps how many invocations run at once.

Every function's environment is built from the variables its settings class
reads (`grid_reingest.settings`), and is loaded with that class at synth time:
a value a worker would refuse at cold start fails `cdk synth` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from grid_reingest import names, settings
from infra import asset
from infra import constants as c
from infra.asset import runtime_code
from infra.config import SETTINGS_CLASSES, ConfigError, StageConfig

_RETENTION = {
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


@dataclass(frozen=True)
class Worker:
    """One deployed function, with its schedule when it has one."""

    function: lambda_.Function
    log_group: logs.LogGroup
    rule: events.Rule | None


def function_environments(config: StageConfig) -> dict[str, dict[str, str]]:
    """Each function's environment variables, by service name."""
    stage = config.stage
    known: dict[str, str] = {
        settings.STAGE.name: stage,
        settings.STATE_TABLE_NAME.name: c.resource_name(None, stage),
        settings.THRALL_STREAM_NAME.name: config.thrall_stream_arn,
        settings.MAX_ITERATOR_AGE_MS.name: str(config.max_iterator_age_ms),
        settings.GRID_CONCURRENCY.name: str(config.grid_concurrency),
        settings.GRID_API_KEY_PARAMETER.name: config.api_key_parameter,
        settings.PROJECTION_FUNCTION_NAME.name: c.resource_name(names.IMAGE_PROJECTION, stage),
        **config.grid_service_urls,
        **config.worker_settings,
    }
    if config.grid_domain_root:
        known[settings.GRID_DOMAIN_ROOT.name] = config.grid_domain_root
    if config.backpressure_streams:
        known[settings.BACKPRESSURE_STREAMS.name] = ",".join(config.backpressure_streams)
    if config.thrall_checkpoint_table:
        known[settings.THRALL_CHECKPOINT_TABLE.name] = config.thrall_checkpoint_table
    per_function = {
        names.IMAGE_PROJECTION: {},
        names.BATCH_INDEX: {
            settings.SCHEDULE_RULE_NAME.name: c.resource_name(names.BATCH_INDEX, stage),
            settings.MAX_IN_FLIGHT.name: str(config.pass_in_flight),
            # What the stop margin is checked against: the function's own timeout.
            settings.PROJECTION_TIMEOUT_SECONDS.name: str(config.projection_timeout_seconds),
        },
        names.BATCH_CHECK: {
            settings.SCHEDULE_RULE_NAME.name: c.resource_name(names.BATCH_CHECK, stage),
            settings.CHECK_MAX_IN_FLIGHT.name: str(config.batch_check.max_in_flight),
        },
    }
    # batch-index invokes image-projection, so it never talks to the Grid itself.
    grid_only = {v.name for v in settings.variables(settings.GridSettings)} - {
        settings.GRID_CONCURRENCY.name
    }
    environments = {}
    for service, cls in SETTINGS_CLASSES.items():
        values = {**known, **per_function[service]}
        environment: dict[str, str] = {}
        for var in settings.variables(cls):
            if service == names.BATCH_INDEX and var.name in grid_only:
                continue
            # Defaults are written out too: the console then shows every knob
            # an operator may turn, with its current value.
            value = values.get(var.name, var.default)
            if value is not None:
                environment[var.name] = value
        environments[service] = environment
    return environments


def check_environments(config: StageConfig, environments: Mapping[str, Mapping[str, str]]) -> None:
    """Load each function's settings from its environment as Lambda will, or raise ConfigError."""
    problems = []
    for service, environment in environments.items():
        inside_lambda = {
            **environment,
            "AWS_LAMBDA_FUNCTION_NAME": c.resource_name(service, config.stage),
        }
        try:
            settings.load(SETTINGS_CLASSES[service], inside_lambda)
        except settings.SettingsError as error:
            problems.extend(f"{service} would refuse its settings: {p}" for p in error.problems)
    if problems:
        raise ConfigError(config.stage, problems)


class Workers(Construct):
    """image-projection, batch-index and batch-check, with their schedules (deployed off)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        environments = function_environments(config)
        check_environments(config, environments)
        code = runtime_code()
        self.projection = self._build_worker(
            names.IMAGE_PROJECTION,
            code,
            environments[names.IMAGE_PROJECTION],
            timeout_seconds=config.projection_timeout_seconds,
            # Every projection batch-index can have in flight (the pass's ceiling is
            # at most this): a throttle is then a fault worth an alarm (another
            # caller), not a pass running at full speed.
            reserved_concurrency=config.projection_reserved_concurrency,
            description="Projects one Grid image: image-loader's re-projection merged with "
            "the data services",
        )
        self.batch_index = self._build_worker(
            names.BATCH_INDEX,
            code,
            environments[names.BATCH_INDEX],
            timeout_seconds=c.WORKER_TIMEOUT_SECONDS,
            reserved_concurrency=config.batch_index.reserved_concurrency,
            schedule_minutes=config.batch_index.schedule_minutes,
            description="Claims ids, projects them and posts reingest-image messages on "
            "thrall's low-priority stream until its time budget is spent",
        )
        self.batch_check = self._build_worker(
            names.BATCH_CHECK,
            code,
            environments[names.BATCH_CHECK],
            timeout_seconds=c.WORKER_TIMEOUT_SECONDS,
            reserved_concurrency=config.batch_check.reserved_concurrency,
            schedule_minutes=config.batch_check.schedule_minutes,
            description="Claims enqueued ids and records whether media-api has them, until "
            "its time budget is spent",
        )
        self.projection_url = self._build_projection_url()
        self._grant_batch_index(table)
        self._grant_batch_check(table)
        self._grant_api_key(self.projection)
        self._grant_api_key(self.batch_check)

    @property
    def by_service(self) -> dict[str, Worker]:
        """Each worker by its service name."""
        return {
            names.IMAGE_PROJECTION: self.projection,
            names.BATCH_INDEX: self.batch_index,
            names.BATCH_CHECK: self.batch_check,
        }

    # -- building ---------------------------------------------------------

    def _build_worker(
        self,
        service: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        *,
        timeout_seconds: int,
        description: str,
        reserved_concurrency: int | None = None,
        schedule_minutes: int | None = None,
    ) -> Worker:
        config = self._config
        name = c.resource_name(service, config.stage)
        construct_id = "".join(part.title() for part in service.split("-"))
        # Created here rather than by Lambda on first write, so that it has a
        # retention and goes (or stays, in PROD) with the stack.
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=_RETENTION[config.log_retention_days],
            removal_policy=(
                RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY
            ),
        )
        # A role of its own with no managed policy: the AWS-managed basic
        # execution policy would allow writing to every log group.
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{name}: only what docs/infra.md lists for {service}",
        )
        log_group.grant_write(role)
        scheduled = schedule_minutes is not None
        function = lambda_.Function(
            self,
            construct_id,
            function_name=name,
            description=description,
            # The interpreter the code and its tests run on (and the asset's .pyc files).
            runtime=asset.RUNTIME,
            # The asset is pure Python, and Graviton costs ~20% less per GB-second.
            architecture=lambda_.Architecture.ARM_64,
            handler=c.HANDLERS[service],
            code=code,
            memory_size=c.MEMORY_MB[service],
            timeout=Duration.seconds(timeout_seconds),
            environment=dict(environment),
            role=role,
            log_group=log_group,
            reserved_concurrent_executions=reserved_concurrency,
            # The schedule is a keep-alive: a tick that fails or cannot start
            # within a minute (reserved concurrency reached: invocations are
            # already at work) is dropped, never retried or queued behind them.
            retry_attempts=0 if scheduled else None,
            max_event_age=(
                Duration.seconds(c.SCHEDULED_EVENT_MAX_AGE_SECONDS) if scheduled else None
            ),
        )
        Validations.of(function).acknowledge(
            _ack(
                "AwsSolutions-L1",
                "python3.13, not the newest python3.14: both run on Amazon Linux 2023 and "
                "AWS deprecates both on the same date, and 3.13 is the interpreter the code "
                "and its tests run on and the asset's .pyc files are compiled for; a newer "
                "runtime is a change to all three together.",
            )
        )
        rule = None
        if scheduled:
            rule = events.Rule(
                self,
                f"{construct_id}Schedule",
                rule_name=name,
                description=f"Keeps {name} running. Deployed off: enable it to start; "
                "the worker disables it when it finds nothing left to do.",
                schedule=events.Schedule.rate(Duration.minutes(schedule_minutes)),
                enabled=False,
                targets=[targets.LambdaFunction(function)],
            )
        return Worker(function=function, log_group=log_group, rule=rule)

    def _build_projection_url(self) -> lambda_.FunctionUrl | None:
        # Off unless a stage asks: batch-index invokes image-projection directly,
        # and a URL with auth NONE lets anyone on the internet start a slow
        # re-projection (the handler's X-Gu-Media-Key check runs only after
        # the invocation has been paid for).
        if not self._config.projection_function_url:
            return None
        return self.projection.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)

    # -- permissions ------------------------------------------------------

    def _rule_arn(self, service: str) -> str:
        # From the rule's fixed name, not rule.rule_arn: the rule already
        # depends on the function (its target), so the function's policy
        # depending on the rule would be a cycle.
        return Stack.of(self).format_arn(
            service="events",
            resource="rule",
            resource_name=c.resource_name(service, self._config.stage),
        )

    def _grant_own_rule(self, service: str, worker: Worker) -> None:
        worker.function.add_to_role_policy(
            iam.PolicyStatement(
                # Enable: a worker that disabled its rule and then found new work
                # (an upload raced its last look) switches it back on.
                actions=["events:DescribeRule", "events:DisableRule", "events:EnableRule"],
                resources=[self._rule_arn(service)],
            )
        )

    def _grant_table(self, worker: Worker, table: dynamodb.ITable) -> None:
        # What a worker does to the table, exactly: claims and outcomes are
        # conditional UpdateItems, the control item is read by key, and work is
        # found through the by-state index. No Scan, Put, Delete or batch call:
        # those are the operators' (the `reingest` commands run as a person).
        function = worker.function
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{table.table_arn}/index/{names.STATE_INDEX}"],
            )
        )

    def _grant_batch_index(self, table: dynamodb.ITable) -> None:
        config = self._config
        function = self.batch_index.function
        self._grant_table(self.batch_index, table)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kinesis:PutRecords"], resources=[config.thrall_stream_arn]
            )
        )
        # thrall's stream is encrypted: each PutRecords needs a data key (SPEC §5),
        # which Kinesis asks for on the caller's behalf; the key is no use otherwise.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey"],
                resources=[config.thrall_stream_key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"kinesis.{config.region}.amazonaws.com"}
                },
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:GetMetricStatistics"],
                resources=["*"],
            )
        )
        if config.thrall_checkpoint_table:
            # thrall's checkpoints, a fresher view of its progress than
            # CloudWatch's. The table is thrall's: Scan only, nothing that
            # writes; the table alone (the lease table has no index); in the
            # stack's account and region, as the worker names it (no ARN).
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:Scan"],
                    resources=[
                        Stack.of(self).format_arn(
                            service="dynamodb",
                            resource="table",
                            resource_name=config.thrall_checkpoint_table,
                        )
                    ],
                )
            )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[self.projection.function.function_arn],
            )
        )
        self._grant_own_rule(names.BATCH_INDEX, self.batch_index)
        Validations.of(function.role).acknowledge(
            _ack(
                "AwsSolutions-IAM5[Resource::*]",
                "cloudwatch:GetMetricStatistics has no resource-level permissions: AWS only "
                "accepts '*' for it. It is read-only (thrall's iterator age, SPEC §6).",
            ),
        )

    def _grant_batch_check(self, table: dynamodb.ITable) -> None:
        self._grant_table(self.batch_check, table)
        self._grant_own_rule(names.BATCH_CHECK, self.batch_check)

    def _grant_api_key(self, worker: Worker) -> None:
        config = self._config
        worker.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[
                    Stack.of(self).format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name=config.api_key_parameter.lstrip("/"),
                    )
                ],
            )
        )
        # With the default aws/ssm key no KMS permission is needed: its key
        # policy lets every principal of the account decrypt through SSM. A
        # customer-managed key needs kms:Decrypt, and only through SSM.
        if config.api_key_kms_key_arn:
            worker.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[config.api_key_kms_key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"ssm.{config.region}.amazonaws.com"}
                    },
                )
            )


def _ack(rule_id: str, reason: str) -> Acknowledgment:
    return Acknowledgment(id=rule_id, reason=reason)
