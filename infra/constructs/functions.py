"""Building one of the stack's functions: the same shape for every one (workers.py, repair.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import asset
from infra import constants as c
from infra.config import StageConfig

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


@dataclass(frozen=True)
class Schedule:
    """A function's schedule rule: when, whether it is deployed on, and what it is for
    (`{name}` stands for the rule's name)."""

    expression: events.Schedule
    enabled: bool
    description: str
    # A keep-alive's tick that cannot start within a minute is dropped, never retried.
    keep_alive: bool = False


def keep_alive(minutes: int) -> Schedule:
    """A worker's keep-alive: every `minutes`, deployed off."""
    return Schedule(
        events.Schedule.rate(Duration.minutes(minutes)),
        enabled=False,
        description="Keeps {name} running. Deployed off: enable it to start; "
        "the worker disables it when it finds nothing left to do.",
        keep_alive=True,
    )


def build_function(
    scope: Construct,
    config: StageConfig,
    service: str,
    code: lambda_.Code,
    environment: Mapping[str, str],
    *,
    timeout_seconds: int,
    description: str,
    reserved_concurrency: int | None = None,
    schedule: Schedule | None = None,
) -> Worker:
    """One function of the stack: its log group, a role of its own, and its schedule (if any)."""
    name = c.resource_name(service, config.stage)
    construct_id = "".join(part.title() for part in service.split("-"))
    # Created here rather than by Lambda on first write, so that it has a
    # retention and goes (or stays, in PROD) with the stack.
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        log_group_name=f"/aws/lambda/{name}",
        retention=_RETENTION[config.log_retention_days],
        removal_policy=(RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY),
    )
    # A role of its own with no managed policy: the AWS-managed basic
    # execution policy would allow writing to every log group.
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{name}: only what docs/infra.md lists for {service}",
    )
    log_group.grant_write(role)
    keeps_alive = schedule is not None and schedule.keep_alive
    function = lambda_.Function(
        scope,
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
        retry_attempts=0 if keeps_alive else None,
        max_event_age=(
            Duration.seconds(c.SCHEDULED_EVENT_MAX_AGE_SECONDS) if keeps_alive else None
        ),
    )
    Validations.of(function).acknowledge(
        ack(
            "AwsSolutions-L1",
            "python3.13, not the newest python3.14: both run on Amazon Linux 2023 and "
            "AWS deprecates both on the same date, and 3.13 is the interpreter the code "
            "and its tests run on and the asset's .pyc files are compiled for; a newer "
            "runtime is a change to all three together.",
        )
    )
    rule = None
    if schedule is not None:
        rule = events.Rule(
            scope,
            f"{construct_id}Schedule",
            rule_name=name,
            description=schedule.description.format(name=name),
            schedule=schedule.expression,
            enabled=schedule.enabled,
            targets=[targets.LambdaFunction(function)],
        )
    return Worker(function=function, log_group=log_group, rule=rule)


def ack(rule_id: str, reason: str) -> Acknowledgment:
    """A cdk-nag finding acknowledged, with its reason."""
    return Acknowledgment(id=rule_id, reason=reason)


def role_of(function: lambda_.Function) -> iam.IRole:
    """A function's execution role (every function built here has one)."""
    role = function.role
    assert role is not None, function.node.path
    return role
