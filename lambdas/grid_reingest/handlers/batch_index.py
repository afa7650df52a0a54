"""batch-index Lambda: claim a batch, project it, publish it on thrall's stream.

Runs on its EventBridge schedule (deployed switched off). Settings: see
`grid_reingest.settings.BatchIndexSettings`; `python -m grid_reingest.handlers.batch_index`
prints them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters import cloudwatch
from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.bulk import StateTable
from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.adapters.lambda_projector import LambdaProjector
from grid_reingest.domain import backpressure
from grid_reingest.domain.isotime import utc_now
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.handlers.common import report, rule_switch, worker_table
from grid_reingest.ports import Projector
from grid_reingest.settings import BatchIndexSettings, SettingsError, describe, load, stream_name

SERVICE = names.BATCH_INDEX
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=names.NAMESPACE, service=SERVICE)


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation: settings and clients."""

    settings: BatchIndexSettings
    table: StateTable
    projector: Projector
    publisher: Publisher
    cloudwatch: Any
    switch_off: Callable[[], bool] | None


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Built on a container's first invocation; SettingsError (listing every problem) else."""
    global _runtime  # noqa: PLW0603 - one per container, reused by every invocation
    if _runtime is None:
        settings = load(BatchIndexSettings)
        metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
        _runtime = Runtime(
            settings=settings,
            table=worker_table(settings.table_name, settings.concurrency),
            projector=_projector(settings),
            publisher=Publisher(make_client("kinesis"), settings.stream),
            cloudwatch=make_client("cloudwatch"),
            switch_off=rule_switch(settings.schedule_rule, logger),
        )
    return _runtime


def _projector(settings: BatchIndexSettings) -> Projector:
    if settings.projection_function:
        # A projection can take the loader's whole timeout: wait for it.
        client = make_client(
            "lambda",
            max_pool_connections=settings.concurrency,
            read_timeout=settings.stop_margin_seconds,
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
    # Pools sized by GRID_CONCURRENCY, which the Grid settings read too.
    projector = GridProjector(GridClient(settings.grid, load_api_key(settings.grid)))
    return OutcomeProjector(projector, settings.max_message_bytes)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled invocation."""
    current = runtime()
    settings = current.settings

    def verdict() -> backpressure.Verdict:
        age, silent = cloudwatch.iterator_age_ms(
            current.cloudwatch, settings.watched_streams, utc_now()
        )
        return backpressure.decide(age, silent, settings.max_iterator_age_ms, settings.batch_size)

    deps = IndexDeps(
        table=current.table,
        projector=current.projector,
        publisher=current.publisher,
        backpressure=verdict,
        disable_schedule=current.switch_off,
        remaining_ms=context.get_remaining_time_in_millis,
        worker=context.aws_request_id,
        now=utc_now,
    )
    summary = run_batch_index(settings, deps)
    return report(SERVICE, logger, metrics, summary, stream=stream_name(settings.stream))


if __name__ == "__main__":
    print(describe(BatchIndexSettings))
    sys.exit(0)
