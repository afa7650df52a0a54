"""What the scheduled workers' handlers share: runtime built once, clock, table, rule, report."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.adapters.dynamodb.passes import PassTable
from grid_reingest.adapters.dynamodb.tables import WorkerTable
from grid_reingest.adapters.eventbridge import ScheduleRule
from grid_reingest.adapters.notify import TopicNotifier
from grid_reingest.domain.isotime import utc_now
from grid_reingest.flows.pass_end import PassEnd
from grid_reingest.flows.summary import Summary
from grid_reingest.ports import Notifier, PassStore

if TYPE_CHECKING:  # the workers' flows, imported by their own handlers alone
    from grid_reingest.flows.batch_check import CheckDeps
    from grid_reingest.flows.batch_index import IndexDeps

# Connections and threads for a worker's own table calls (the outcomes of a
# batch, completion checks) besides one per image in flight.
OWN_CALLS = 4


class SystemClock:
    """The Clock port on the real clock."""

    def now(self) -> datetime:
        """The current instant (UTC)."""
        return utc_now()

    def monotonic(self) -> float:
        """Seconds from an arbitrary start."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait."""
        time.sleep(seconds)


# The container an invocation runs in. On Lambda a process is one container, so always 0;
# a local schedule that runs two invocations of one function at once in one process, as
# a reserved concurrency of 2 does, gives each its own (devtools/local_stage.py).
CONTAINER: ContextVar[int] = ContextVar("container", default=0)


class Once[T]:
    """`build` run on a container's first invocation, its result reused by every later one
    (a build that raises, e.g. SettingsError, is tried again next time)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._built: dict[int, T] = {}

    def __call__(self) -> T:
        container = CONTAINER.get()
        if container not in self._built:
            self._built[container] = self._build()
        return self._built[container]

    def reset(self) -> None:
        """Forget what was built: the next call builds again (a new container)."""
        self._built.clear()


def worker_table(name: str, concurrency: int) -> WorkerTable:
    """The state table, its client and threads sized for `concurrency` images in flight."""
    pool = concurrency + OWN_CALLS
    return WorkerTable(name, make_client("dynamodb", max_pool_connections=pool), max_workers=pool)


def control_table(name: str) -> ControlTable:
    """The control item of the state table `name`."""
    return ControlTable(name, make_client("dynamodb"))


def pass_end(table: WorkerTable, report_topic: str | None) -> PassEnd:
    """How a worker ends the pass on `table`: its report on the pass's own topic, else on
    `report_topic` (the stage's), else on none."""

    def notifier_for(topic: str | None) -> Notifier | None:
        arn = topic or report_topic
        return None if arn is None else TopicNotifier(make_client("sns"), arn)

    return PassEnd(PassTable(table.name, table.client), table, utc_now, notifier_for)


def charged[T](passes: PassStore | None, memory_mb: int, run: Callable[[], T]) -> T:
    """`run`, its Lambda time (GB-seconds, as billed: elapsed time by memory) added to the
    running pass, if any, whatever it comes to: a pass's report says what its workers cost."""
    started = time.monotonic()
    try:
        return run()
    finally:
        used = (time.monotonic() - started) * memory_mb / 1024
        with contextlib.suppress(Exception):  # never fail an invocation for its accounting
            if passes is not None:
                passes.add_usage(used)


def invocation[D: IndexDeps | CheckDeps](deps: D, context: LambdaContext, **fields: Any) -> D:
    """A worker's deps for one invocation: the runtime's, with this invocation's id, its
    remaining time, and `fields`."""
    return dataclasses.replace(
        deps,
        remaining_ms=context.get_remaining_time_in_millis,
        invocation=context.aws_request_id,
        **fields,
    )


def run_scheduled(
    service: str,
    telemetry: tuple[Logger, Metrics],
    context: LambdaContext,
    passes: PassStore | None,
    run: Callable[[], Summary],
    **extra: Any,
) -> dict[str, Any]:
    """One scheduled invocation of a worker: `run`, its Lambda time charged to the running
    pass, its summary logged as one line and added as metrics (with `extra`). A flow that
    fails loudly carries its summary (`error.summary`): it is reported too, then raised."""
    logger, metrics = telemetry
    try:
        summary = charged(passes, context.memory_limit_in_mb, run)
    except Exception as error:
        failed: Summary | None = getattr(error, "summary", None)
        if failed is not None:
            report(service, logger, metrics, failed, error=str(error), **extra)
        raise
    return report(service, logger, metrics, summary, **extra)


def schedule_rule(rule: str | None, logger: Logger) -> ScheduleRule | None:
    """This worker's own rule (client made on first use), or None without a rule."""
    if rule is None:
        return None
    return ScheduleRule(
        rule, lambda: make_client("events"), lambda what: logger.info(what, extra={"rule": rule})
    )


def report(
    service: str, logger: Logger, metrics: Metrics, summary: Summary, **extra: Any
) -> dict[str, Any]:
    """Log an invocation's summary as one line, add it as metrics; the summary as returned."""
    line = {**summary.as_dict(), **extra}
    logger.info(f"{service} invocation", extra={"summary": line})
    for name, value in summary.metric_counts().items():
        unit = MetricUnit.Milliseconds if name.endswith("Ms") else MetricUnit.Count
        metrics.add_metric(name=name, unit=unit, value=value)
    return line
