"""batch-check Lambda: confirm in media-api that enqueued images arrived.

Runs on its EventBridge schedule (deployed switched off). Settings: see
`grid_reingest.settings.BatchCheckSettings`; `python -m grid_reingest.handlers.batch_check`
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
from grid_reingest.adapters.api_key import load_api_key
from grid_reingest.adapters.dynamodb.bulk import StateTable
from grid_reingest.adapters.grid import GridClient
from grid_reingest.domain.isotime import utc_now
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.handlers.common import report, rule_switch, worker_table
from grid_reingest.ports import Presence
from grid_reingest.settings import BatchCheckSettings, describe, load

SERVICE = names.BATCH_CHECK
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=names.NAMESPACE, service=SERVICE)


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation: settings and clients."""

    settings: BatchCheckSettings
    table: StateTable
    grid: GridClient
    switch_off: Callable[[], bool] | None


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """Built on a container's first invocation; SettingsError (listing every problem) else."""
    global _runtime  # noqa: PLW0603 - one per container, reused by every invocation
    if _runtime is None:
        settings = load(BatchCheckSettings)
        table = worker_table(settings.table_name, settings.grid.concurrency)
        grid = GridClient(
            settings.grid, load_api_key(settings.grid), pool_size=settings.grid.concurrency
        )
        metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
        _runtime = Runtime(settings, table, grid, rule_switch(settings.schedule_rule, logger))
    return _runtime


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled invocation."""
    current = runtime()

    def lookup(image_id: str) -> Presence:
        response = current.grid.image(image_id)
        return Presence(response.status, response.message)

    deps = CheckDeps(
        table=current.table,
        lookup=lookup,
        disable_schedule=current.switch_off,
        remaining_ms=context.get_remaining_time_in_millis,
        worker=context.aws_request_id,
        now=utc_now,
    )
    return report(SERVICE, logger, metrics, run_batch_check(current.settings, deps))


if __name__ == "__main__":
    print(describe(BatchCheckSettings))
    sys.exit(0)
