"""batch-index Lambda: claim, project and publish on thrall's stream until the budget is spent.

Runs on its EventBridge schedule (a keep-alive, deployed switched off). Settings:
see `grid_reingest.settings.BatchIndexSettings`; `python -m
grid_reingest.handlers.batch_index` prints them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.cloudwatch import iterator_age_points
from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.adapters.lambda_projector import LambdaProjector
from grid_reingest.adapters.thrall_checkpoints import read_checkpoints
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.flows.probes import ProjectionProbe
from grid_reingest.handlers import common
from grid_reingest.handlers.telemetry import telemetry
from grid_reingest.settings import BatchIndexSettings, SettingsError, describe, load, stream_name

SERVICE = names.BATCH_INDEX
logger, metrics = telemetry(SERVICE)


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation: settings, clients, the pace."""

    settings: BatchIndexSettings
    deps: IndexDeps  # worker and remaining time filled per invocation


def _build() -> Runtime:
    settings = load(BatchIndexSettings)
    metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
    clock = common.SystemClock()
    control = common.control_table(settings.table_name)
    cloudwatch = make_client("cloudwatch")
    controller = Controller(
        Tuning(max_limit=settings.max_in_flight, max_iterator_age_ms=settings.max_iterator_age_ms)
    )
    checkpoints = None
    if settings.checkpoint_table:
        dynamodb = make_client("dynamodb")
        table = settings.checkpoint_table

        def checkpoints() -> dict[str, int]:
            return read_checkpoints(dynamodb, table)

    pace = ControlledPace(
        controller,
        control,
        lambda: iterator_age_points(cloudwatch, settings.watched_streams, clock.now()),
        clock,
        refresh_seconds=settings.loop.refresh_seconds,
        checkpoints=checkpoints,
    )
    projector = _projector(settings)
    store = common.worker_table(settings.table_name, settings.max_in_flight)
    deps = IndexDeps(
        store=store,
        projector=projector,
        publisher=Publisher(make_client("kinesis"), settings.stream),
        pace=pace,
        clock=clock,
        remaining_ms=lambda: 0,
        invocation="",
        rule=common.schedule_rule(settings.schedule_rule, logger),
        control=control,
        probe=ProjectionProbe(projector),
        pass_end=common.pass_end(store, settings.report_topic),
    )
    return Runtime(settings, deps)


runtime = common.Once(_build)


def _projector(settings: BatchIndexSettings) -> Any:
    if settings.projection_function:
        # A projection can take image-projection's whole timeout: wait for it.
        client = make_client(
            "lambda",
            max_pool_connections=settings.max_in_flight,
            read_timeout=settings.projection_timeout_seconds,
            max_attempts=1,
        )
        return LambdaProjector(client, settings.projection_function)
    # Local runs: project in this process, through the same interface. Imported
    # here so that the deployed worker, which invokes image-projection, does not
    # pay for requests and the Grid client on its cold start.
    from grid_reingest.adapters.api_key import load_api_key  # noqa: PLC0415
    from grid_reingest.adapters.grid import GridClient  # noqa: PLC0415
    from grid_reingest.adapters.grid_projector import (  # noqa: PLC0415
        GridProjector,
        OutcomeProjector,
    )

    if settings.grid is None:  # settings require the Grid without a function
        raise SettingsError(["the Grid's settings are needed to project in-process"])
    projector = GridProjector(GridClient(settings.grid, load_api_key(settings.grid)))
    return OutcomeProjector(projector, settings.max_message_bytes)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled invocation."""
    current = runtime()
    deps = common.invocation(current.deps, context)
    return common.run_scheduled(
        SERVICE,
        (logger, metrics),
        context,
        deps.pass_end.passes if deps.pass_end else None,
        lambda: run_batch_index(current.settings, deps),
        stream=stream_name(current.settings.stream),
    )


if __name__ == "__main__":
    print(describe(BatchIndexSettings))
    sys.exit(0)
