"""A stage on the emulator for the console's tests: a stack's outputs, its rules and table,
and workers that move the states when `watch` waits between looks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3

from grid_reingest import names
from grid_reingest.adapters.dynamodb.bulk import StateTable
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.states import ProgressState as S

STREAM = "thrall-low-priority"


def grid_id(n: int) -> str:
    return f"{n:040x}"


@dataclass
class Stage:
    """What `grid-reingest-<name>` deployed, made directly on the emulator."""

    name: str
    table: StateTable
    events: Any
    rules: dict[str, str]

    def rule(self, worker: str) -> str:
        return self.events.describe_rule(Name=self.rules[worker])["State"]


def deploy_stage(endpoint: str, table: StateTable, name: str = "TEST", **function_env) -> Stage:
    """A stack with the outputs the commands read, its two rules (off) and, with
    `function_env`, a batch-index function configured with it."""
    events = boto3.client("events", endpoint_url=endpoint)
    rules = {
        "index": f"grid-reingest-batch-index-{name}",
        "check": f"grid-reingest-batch-check-{name}",
    }
    for rule in rules.values():
        events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="DISABLED")
    outputs = {
        names.STATE_TABLE_OUTPUT: table.name,
        names.RULE_OUTPUTS[names.BATCH_INDEX]: rules["index"],
        names.RULE_OUTPUTS[names.BATCH_CHECK]: rules["check"],
    }
    if function_env:
        function = f"grid-reingest-batch-index-{name}"
        _function(endpoint, function, function_env)
        outputs[names.FUNCTION_OUTPUTS[names.BATCH_INDEX]] = function
    template = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": f"/{name}/grid-reingest/marker",
                    "Type": "String",
                    "Value": "x",
                },
            }
        },
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", endpoint_url=endpoint).create_stack(
        StackName=names.stack_name(name), TemplateBody=json.dumps(template)
    )
    return Stage(name, table, events, rules)


def _function(endpoint: str, name: str, env: dict[str, str]) -> None:
    import io
    import zipfile

    iam = boto3.client("iam", endpoint_url=endpoint)
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    boto3.client("lambda", endpoint_url=endpoint).create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        MemorySize=1024,
        Environment={"Variables": env},
    )


@dataclass
class FakeWorkers:
    """Moves states the way the workers would, one step each time watch waits.

    batch-index takes up to `per_tick` items from 0 to 3 (those in `fail` to 8) and
    switches its rule off when none is left; batch-check likewise from 3 to 6.
    """

    stage: Stage
    ids: list[str]
    per_tick: int = 1000
    fail: set[str] = field(default_factory=set)
    ticks: list[str] = field(default_factory=list)
    on_tick: Callable[[int], None] | None = None

    def __call__(self, seconds: float) -> None:
        if self.on_tick:
            self.on_tick(len(self.ticks))
        for worker, source, target in (
            ("index", S.NOT_STARTED, S.ENQUEUED),
            ("check", S.ENQUEUED, S.VERIFIED),
        ):
            if self.stage.rule(worker) != "ENABLED":
                continue
            self.ticks.append(worker)
            states = self._states()
            waiting = [i for i in self.ids if states.get(i) == source]
            self._move(waiting[: self.per_tick], source, target)
            if len(waiting) <= self.per_tick:
                self.stage.events.disable_rule(Name=self.stage.rules[worker])

    def _states(self) -> dict[str, int]:
        return {i: s for page in self.stage.table.scan(segments=1) for i, s in page}

    def _move(self, ids: Iterable[str], source: S, target: S) -> None:
        transitions = [
            Transition(i, source, S.UNKNOWN_ERROR if i in self.fail else target) for i in ids
        ]
        self.stage.table.apply(transitions)


@dataclass
class LambdaWorkers:
    """The real batch-index and batch-check handlers, invoked in this process whenever their
    rule is on and `watch` waits (one invocation a "minute"), thrall indexing what reached
    its stream in between (as scripts/demo.py does)."""

    stage: Stage
    grid: Any
    kinesis: Any
    index_env: dict[str, str]
    check_env: dict[str, str]
    invocations: list[str] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        from devtools.local_lambda import FakeContext, invoke
        from devtools.thrall_consumer import read_stream
        from grid_reingest.handlers import batch_check, batch_index

        if self.stage.rule("index") == "ENABLED":
            self.invocations.append("index")
            invoke(batch_index, self.index_env, {}, FakeContext(function_name="index"))
        elif self.stage.rule("check") == "ENABLED":
            messages = read_stream(self.kinesis, STREAM)
            self.grid.indexed.update(message["image"]["id"] for _, message in messages)
            self.invocations.append("check")
            invoke(batch_check, self.check_env, {}, FakeContext(function_name="check"))


def lambda_workers(endpoint: str, stage: Stage, grid: Any, batch_size: int = 100) -> LambdaWorkers:
    """thrall's stream (keeping up) and the two workers' environments, for `stage`."""
    from devtools.thrall_metrics import report_iterator_age

    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM)
    report_iterator_age(boto3.client("cloudwatch", endpoint_url=endpoint), STREAM, 100.0)
    common = {
        "STAGE": stage.name,
        "STATE_TABLE_NAME": stage.table.name,
        "MAX_IN_FLIGHT": str(batch_size),
        "CHECK_MAX_IN_FLIGHT": str(batch_size),
        # Short timeouts locally: the stop margin must still cover them.
        "PROJECTION_TIMEOUT_SECONDS": "30",
        "RECORD_BUDGET_SECONDS": "20",
        "CHECK_STOP_MARGIN_SECONDS": "40",
        "GRID_CONCURRENCY": "16",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        **grid.env(),
    }
    return LambdaWorkers(
        stage,
        grid,
        kinesis,
        index_env={
            **common,
            "THRALL_STREAM_NAME": STREAM,
            "SCHEDULE_RULE_NAME": stage.rules["index"],
            "STOP_MARGIN_SECONDS": "60",
        },
        check_env={
            **common,
            "SCHEDULE_RULE_NAME": stage.rules["check"],
            "CHECK_MIN_AGE_SECONDS": "0",
        },
    )
