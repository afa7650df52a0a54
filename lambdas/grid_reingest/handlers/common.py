"""What the scheduled workers' handlers share: metrics from a summary, the rule switch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from grid_reingest.aws import make_client
from grid_reingest.schedule import disable_rule


def emit(metrics: Metrics, counts: dict[str, float]) -> None:
    """Add a summary's counts as metrics (names ending in Ms are milliseconds)."""
    for name, value in counts.items():
        unit = MetricUnit.Milliseconds if name.endswith("Ms") else MetricUnit.Count
        metrics.add_metric(name=name, unit=unit, value=value)


def rule_switch(rule: str | None, logger: Logger) -> Callable[[], bool] | None:
    """A function that switches this worker's own rule off, or None without a rule."""
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
