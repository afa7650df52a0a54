"""A stage on this machine: what `grid-reingest-<STAGE>` deploys, made on moto's server, and
an in-process schedule that runs the real batch-index and batch-check handlers.

`reingest ... --stage S` finds everything from the stack's outputs, so a local
stage is a stack with those outputs (the table, both rules, both functions with
the environment the handlers read) plus thrall's stream. Lambda cannot run on
the emulator without Docker, so `LocalSchedule` plays EventBridge and Lambda:
whenever a worker's rule is on it invokes that worker's handler in this process
(in the background, each worker on its own schedule, as deployed), a thrall
stand-in indexes in the simulated Grid what reached its stream, and Lambda's
stream poller hands the state table's new stream records to state-counts (the
tally `watch` reads). Used by
the integration tests, `make demo` and `make local`::

    with moto_server() as endpoint, GridSim() as grid:
        stage, schedule = local_stage(endpoint, table, grid, "DEMO")
        with schedule.running():           # or monkeypatch watch.sleep = schedule
            reingest(["run", "ids.txt", "--stage", "DEMO"])
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3

from devtools.local_lambda import FakeContext, environment
from devtools.local_streams import StreamPoller
from devtools.thrall_consumer import StreamFollower
from devtools.thrall_metrics import report_iterator_age
from grid_reingest import names

STREAM = "thrall-low-priority"
# thrall keeping up: an iterator age well under batch-index's threshold (60 s).
THRALL_AGE_MS = 850.0
# A fresh iterator-age point this often: the window the workers read never runs dry.
THRALL_REPORT_SECONDS = 20.0
# An invocation that keeps its rule on this many times in a row is a worker that never
# finishes: the schedule stops invoking it and records why.
MAX_INVOCATIONS = 100
WORKERS = {"index": names.BATCH_INDEX, "check": names.BATCH_CHECK}


def rule_names(stage: str) -> dict[str, str]:
    """The two schedule rules of `stage`, by worker ("index", "check")."""
    return {
        "index": f"grid-reingest-batch-index-{stage}",
        "check": f"grid-reingest-batch-check-{stage}",
    }


@dataclass
class Stage:
    """What `grid-reingest-<name>` deployed, made directly on the emulator."""

    name: str
    table: Any  # an OperatorTable
    events: Any
    rules: dict[str, str]

    def rule(self, worker: str) -> str:
        """ "ENABLED" or "DISABLED": the state of `worker`'s rule now."""
        return self.events.describe_rule(Name=self.rules[worker])["State"]


def deploy_stage(
    endpoint: str,
    table: Any,
    name: str = "TEST",
    *,
    functions: Mapping[str, Mapping[str, str]] | None = None,
    **function_env: str,
) -> Stage:
    """A stack with the outputs the commands read and its two rules (off). `functions`
    ("index"/"check" -> environment) are deployed and named in the outputs; `function_env`
    alone deploys a batch-index configured with it."""
    events = boto3.client("events", endpoint_url=endpoint)
    rules = rule_names(name)
    for rule in rules.values():
        events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="DISABLED")
    outputs = {
        names.STATE_TABLE_OUTPUT: table.name,
        names.RULE_OUTPUTS[names.BATCH_INDEX]: rules["index"],
        names.RULE_OUTPUTS[names.BATCH_CHECK]: rules["check"],
    }
    deployed = dict(functions or {})
    if function_env:
        deployed["index"] = {**deployed.get("index", {}), **function_env}
    for worker, env in deployed.items():
        function = f"grid-reingest-{WORKERS[worker]}-{name}"
        _function(endpoint, function, env)
        outputs[names.FUNCTION_OUTPUTS[WORKERS[worker]]] = function
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


def _function(endpoint: str, name: str, env: Mapping[str, str]) -> None:
    """A function whose configuration (memory, environment) the commands read; never run."""
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
        Runtime="python3.13",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        MemorySize=1024,
        Architectures=["arm64"],
        Environment={"Variables": dict(env)},
    )


def worker_environments(
    stage: str, table: str, grid_env: Mapping[str, str], stream: str = STREAM, **overrides: str
) -> dict[str, dict[str, str]]:
    """The environment each worker's function gets ("index", "check"), for a local stage
    whose Grid is `grid_env` (GridSim.env()); `overrides` go to both."""
    rules = rule_names(stage)
    common = {
        "STAGE": stage,
        "STATE_TABLE_NAME": table,
        "MAX_IN_FLIGHT": "32",
        "CHECK_MAX_IN_FLIGHT": "16",
        # Short timeouts locally: the stop margins must still cover them.
        "PROJECTION_TIMEOUT_SECONDS": "30",
        "RECORD_BUDGET_SECONDS": "20",
        "CHECK_STOP_MARGIN_SECONDS": "40",
        "GRID_CONCURRENCY": "32",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        **grid_env,
    }
    index = {
        **common,
        "THRALL_STREAM_NAME": stream,
        "SCHEDULE_RULE_NAME": rules["index"],
        "STOP_MARGIN_SECONDS": "60",
        **overrides,
    }
    # thrall has already indexed what it read: batch-check need not wait for its lag.
    check = {
        **common,
        "SCHEDULE_RULE_NAME": rules["check"],
        # A check-first item media-api lacks goes back to batch-index: its rule goes on.
        "INDEX_RULE_NAME": rules["index"],
        "CHECK_MIN_AGE_SECONDS": "0",
        **overrides,
    }
    return {"index": index, "check": check}


@dataclass
class LocalSchedule:
    """EventBridge and Lambda for a local stage, with thrall beside them.

    In the background (`running()`), as AWS runs them: each worker invoked on its own
    schedule whenever its rule is on, thrall indexing and Lambda's stream poller counting
    all along. Or one serial "minute" at a time (`tick`; calling it is a `watch.sleep`
    stand-in: the workers move while the console waits). The handlers' runtimes are built once,
    in the caller's thread, under their function's environment: invocations then touch
    no environment variable, so they can run beside the console's own threads.
    """

    stage: Stage
    grid: Any  # the GridSim whose media-api thrall indexes into
    kinesis: Any
    cloudwatch: Any
    stream: str
    envs: dict[str, dict[str, str]]
    # Each invocation's time: with STOP_MARGIN_SECONDS 60, two minutes of starting work,
    # then the next "minute" invokes it again (a stuck worker cannot hold a demo long).
    timeout_seconds: float = 180.0
    # Invocations of a worker that may run at once in the background (its reserved
    # concurrency), each in a container of its own; 1 where not given (see `scale`).
    containers: dict[str, int] = field(default_factory=dict)
    invocations: list[str] = field(default_factory=list)
    reports: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _in_a_row: dict[str, int] = field(default_factory=dict)
    _reported_at: float = float("-inf")
    tally: StreamPoller | None = None

    def __post_init__(self) -> None:
        for worker in WORKERS:
            for container in range(self.containers.get(worker, 1)):
                _warm(worker, self.envs[worker], container)
        # Imported on first use, as the workers' handlers are (Powertools reads at import).
        from grid_reingest.handlers import state_counts

        with environment(self.envs["index"]):
            state_counts.runtime.reset()
            state_counts.runtime()
        endpoint = self.kinesis.meta.endpoint_url
        self.tally = StreamPoller(endpoint, self.stage.table.name, state_counts.handler)
        self._thrall = StreamFollower(self.kinesis, self.stream)

    def scale(self, worker: str, containers: int) -> None:
        """Let `worker` run `containers` invocations at once in the background (its reserved
        concurrency), each in a container of its own, built now (a cold start each)."""
        for container in range(self.containers.get(worker, 1), containers):
            _warm(worker, self.envs[worker], container)
        self.containers[worker] = containers

    def __call__(self, seconds: float = 0.0) -> None:
        self.tick()

    def tick(self) -> None:
        """One "minute" of the schedule."""
        on = {worker: self.stage.rule(worker) == "ENABLED" for worker in WORKERS}
        for worker in WORKERS:
            if not on[worker]:
                self._in_a_row[worker] = 0
        if on["index"]:
            self._invoke("index")
        if any(on.values()):
            self.thrall()
        if on["check"]:
            self._invoke("check")
        self.count()

    def count(self) -> int:
        """Lambda's part for state-counts: the table's new stream records counted."""
        return self.tally.drain() if self.tally is not None else 0

    def thrall(self) -> int:
        """thrall's part: index every image whose message is on the stream (media-api then
        has it) and say, now and then, that its iterator age is low; the messages read."""
        messages = self._thrall.read()
        self.grid.indexed.update(message["image"]["id"] for _, message in messages)
        if time.monotonic() - self._reported_at >= THRALL_REPORT_SECONDS:
            report_iterator_age(self.cloudwatch, self.stream, THRALL_AGE_MS)
            self._reported_at = time.monotonic()
        return len(messages)

    def _invoke(self, worker: str) -> None:
        runs = self._in_a_row.get(worker, 0) + 1
        self._in_a_row[worker] = runs
        if runs > MAX_INVOCATIONS:
            self.stage.events.disable_rule(Name=self.stage.rules[worker])
            self.errors.append(
                f"{WORKERS[worker]} still had its rule on after {MAX_INVOCATIONS} invocations "
                "in a row: rule switched off"
            )
            return
        self.invocations.append(worker)
        context = FakeContext(
            function_name=f"{WORKERS[worker]}-{self.stage.name}",
            timeout_ms=int(self.timeout_seconds * 1000),
        )
        self.reports.append((worker, _handler(worker).handler({"source": "aws.events"}, context)))

    @contextlib.contextmanager
    def running(
        self, every: float = 0.5, wait: float | None = None, stagger: float = 0.0
    ) -> Iterator[LocalSchedule]:
        """Run the stage in background threads until the block ends, as AWS would: each
        worker invoked on its own schedule, `every` seconds after its last invocation ends,
        in each of its `containers` (its reserved concurrency), while thrall indexes and Lambda's
        poller counts all along. Then wait at most `wait` seconds (default: an invocation's
        time) for the invocations running then. A handler that raises is recorded in
        `errors` (the schedule carries on, as Lambda's would). A worker's container k first
        runs k times `stagger` seconds in, as a schedule's ticks a minute apart start them."""
        stop = threading.Event()

        def repeat(name: str, step: Callable[[], object], first: float = 0.0) -> None:
            stop.wait(first)
            while not stop.is_set():
                try:
                    step()
                except Exception as error:  # Lambda logs it and carries on
                    self.errors.append(f"{name}: {type(error).__name__}: {error}")
                    traceback.print_exc()
                stop.wait(every)

        steps: dict[str, tuple[Callable[[], object], float]] = {
            f"{worker}-{container}": (
                functools.partial(self._scheduled, worker, container),
                container * stagger,
            )
            for worker in WORKERS
            for container in range(self.containers.get(worker, 1))
        }
        # thrall consumes its stream, and Lambda polls the table's, while the workers run.
        steps["thrall"] = (self._thrall_if_running, 0.0)
        steps["state-counts"] = (self.count, 0.0)
        threads = [
            threading.Thread(
                target=repeat, args=(name, step, first), name=f"local-{name}", daemon=True
            )
            for name, (step, first) in steps.items()
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            stop.set()
            waited = self.timeout_seconds if wait is None else wait
            deadline = time.monotonic() + waited
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(thread.is_alive() for thread in threads):
                self.errors.append(
                    f"an invocation was still running {waited:.0f} s after the schedule stopped"
                )

    def _scheduled(self, worker: str, container: int = 0) -> None:
        """One "minute" of `worker`'s own rule: invoked (in `container`) if the rule is on."""
        if self.stage.rule(worker) == "ENABLED":
            with _container(container):
                self._invoke(worker)
        else:
            self._in_a_row[worker] = 0

    def _thrall_if_running(self) -> None:
        if any(self.stage.rule(worker) == "ENABLED" for worker in WORKERS):
            self.thrall()


def local_stage(
    endpoint: str,
    table: Any,
    grid: Any,
    name: str = "TEST",
    *,
    stream: str = STREAM,
    **overrides: str,
) -> tuple[Stage, LocalSchedule]:
    """A whole local stage on the emulator: thrall's stream (keeping up), the stack with
    both functions configured for `grid` (`overrides`: more variables for both), and the
    schedule that runs them."""
    kinesis = boto3.client("kinesis", endpoint_url=endpoint)
    cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    report_iterator_age(cloudwatch, stream, THRALL_AGE_MS)
    envs = worker_environments(name, table.name, grid.env(), stream, **overrides)
    stage = deploy_stage(endpoint, table, name, functions=envs)
    return stage, LocalSchedule(stage, grid, kinesis, cloudwatch, stream, envs)


def _handler(worker: str) -> ModuleType:
    # Imported on first use: Powertools reads its variables at import.
    from grid_reingest.handlers import batch_check, batch_index

    return batch_index if worker == "index" else batch_check


def _warm(worker: str, env: Mapping[str, str], container: int = 0) -> None:
    """A new container's runtime for `worker`, built under `env` (a cold start). Powertools
    reads POWERTOOLS_METRICS_DISABLED at each invocation, from the process's environment."""
    with environment(env):
        module = _handler(worker)
        if container == 0:
            module.runtime.reset()
        with _container(container):
            module.runtime()


@contextlib.contextmanager
def _container(container: int) -> Iterator[None]:
    """Invocations in this thread run in `container` (its own runtime)."""
    # Imported on first use, as the handlers are.
    from grid_reingest.handlers.common import CONTAINER

    token = CONTAINER.set(container)
    try:
        yield
    finally:
        CONTAINER.reset(token)
