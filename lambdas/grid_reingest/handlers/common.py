"""What the scheduled workers' handlers share: their state table, the summary, the rule switch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.claims import ClaimTable
from grid_reingest.adapters.eventbridge import disable_rule
from grid_reingest.flows.summary import Summary

# Connections and threads for a worker's own table calls (the outcomes of a
# batch, completion checks) besides one per image in flight.
OWN_CALLS = 4


def worker_table(name: str, concurrency: int) -> ClaimTable:
    """The state table, its client and threads sized for `concurrency` images in flight."""
    pool = concurrency + OWN_CALLS
    return ClaimTable(name, make_client("dynamodb", max_pool_connections=pool), max_workers=pool)


def report(
    service: str, logger: Logger, metrics: Metrics, summary: Summary, **extra: Any
) -> dict[str, Any]:
    """Log an invocation's summary as one line, add it as metrics; the summary as returned."""
    line = {**summary.as_dict(), **extra}
    logger.info(f"{service} invocation", extra={"summary": line})
    _emit(metrics, summary.metric_counts())
    return line


def _emit(metrics: Metrics, counts: dict[str, float]) -> None:
    """Add a summary's counts as metrics (names ending in Ms are milliseconds)."""
    for name, value in counts.items():
        unit = MetricUnit.Milliseconds if name.endswith("Ms") else MetricUnit.Count
        metrics.add_metric(name=name, unit=unit, value=value)


def rule_switch(rule: str | None, logger: Logger) -> Callable[[], bool] | None:
    """A function that switches this worker's own rule off (its client made on first use),
    or None without a rule; built once per container."""
    if rule is None:
        return None
    events: Any = None

    def switch_off() -> bool:
        nonlocal events
        events = events or make_client("events")
        switched = disable_rule(events, rule)
        logger.info(
            "pass finished: schedule switched off"
            if switched
            else "pass finished: schedule was already off",
            extra={"rule": rule},
        )
        return switched

    return switch_off
