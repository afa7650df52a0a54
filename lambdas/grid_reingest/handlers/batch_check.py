"""batch-check Lambda: confirm in media-api that enqueued images arrived, until the budget is spent.

Runs on its EventBridge schedule (a keep-alive, deployed switched off). Settings:
see `grid_reingest.settings.BatchCheckSettings`; `python -m
grid_reingest.handlers.batch_check` prints them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters.api_key import load_api_key, with_fresh_key
from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.control import CHECK_PACE, ControlTable
from grid_reingest.adapters.grid import GridClient
from grid_reingest.domain.systemic import REFUSED_STATUSES
from grid_reingest.flows.batch_check import MEDIA_API, CheckDeps, run_batch_check
from grid_reingest.flows.pace import ControlledPace, grid_only, thrall_lag
from grid_reingest.flows.probes import LookupProbe
from grid_reingest.handlers import common
from grid_reingest.handlers.telemetry import telemetry
from grid_reingest.ports import Presence
from grid_reingest.settings import BatchCheckSettings, describe, load

SERVICE = names.BATCH_CHECK
logger, metrics = telemetry(SERVICE)
# A revoked or rotated key reaches a warm container within this time.
KEY_MAX_AGE_SECONDS = 60


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation: settings, clients, the pace."""

    settings: BatchCheckSettings
    grid: GridClient
    deps: CheckDeps  # lookup, worker and remaining time filled per invocation


def _build() -> Runtime:
    settings = load(BatchCheckSettings)
    metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
    clock = common.SystemClock()
    grid = GridClient(settings.grid, load_api_key(settings.grid), pool_size=settings.max_in_flight)
    dynamodb = make_client("dynamodb")
    # Paced on media-api's answers, its state beside batch-index's in the control item.
    pace = ControlledPace(
        grid_only(settings.max_in_flight),
        ControlTable(settings.table_name, dynamodb, CHECK_PACE),
        lambda: None,
        clock,
        refresh_seconds=settings.loop.refresh_seconds,
    )
    store = common.worker_table(settings.table_name, settings.max_in_flight)
    end = common.pass_end(store, settings.report_topic)
    deps = CheckDeps(
        store=store,
        lookup=lambda image_id: Presence(None),
        pace=pace,
        clock=clock,
        remaining_ms=lambda: 0,
        invocation="",
        rule=common.schedule_rule(settings.schedule_rule, logger),
        passes=end.passes,
        index_rule=common.schedule_rule(settings.index_rule, logger),
        pass_end=end,
        thrall_lag=thrall_lag(ControlTable(settings.table_name, dynamodb), clock),
    )
    return Runtime(settings, grid, deps)


runtime = common.Once(_build)


def media_api_lookup(grid: GridClient, read_key: Callable[[int], str]) -> Callable[[str], Presence]:
    """media-api's GET /images/{id} with the key read now (cached briefly); after a 401 or 403
    the key is read once more, uncached, and the image asked again if it changed (a key
    rotated meanwhile): adapters/api_key.with_fresh_key, as image-projection does."""

    def lookup(image_id: str) -> Presence:
        response = with_fresh_key(
            lambda key: grid.with_key(key).image(image_id),
            lambda answer: answer.status in REFUSED_STATUSES,
            read_key,
            KEY_MAX_AGE_SECONDS,
        )
        return Presence(response.status, response.message)

    return lookup


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled invocation."""
    current = runtime()
    grid_settings = current.settings.grid
    lookup = media_api_lookup(
        current.grid, lambda max_age: load_api_key(grid_settings, max_age=max_age)
    )
    deps = common.invocation(
        current.deps,
        context,
        lookup=lookup,
        probe=LookupProbe(lookup, lambda: current.grid.health(MEDIA_API)),
    )
    return common.run_scheduled(
        SERVICE,
        (logger, metrics),
        context,
        deps.passes,
        lambda: run_batch_check(current.settings, deps),
    )


if __name__ == "__main__":
    print(describe(BatchCheckSettings))
    sys.exit(0)
