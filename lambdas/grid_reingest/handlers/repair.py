"""The scheduled repair's Lambda: a check-first pass over the image bucket, on a schedule.

Deployed only where the stage's `repair` in cdk.json asks for it, its schedule
switched on. A scheduled event starts a pass (flows/repair.py) unless one is
still running — then it fails loudly (`RepairRefused`, the `repair-refused`
alarm, a message on the report topic); `{"continue": "<pass id>"}` (its own
asynchronous invoke) carries on loading. Settings: `python -m
grid_reingest.handlers.repair`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.passes import PassTable
from grid_reingest.adapters.dynamodb.reads import StateReads
from grid_reingest.adapters.dynamodb.upload import TableLoader, Uploads
from grid_reingest.adapters.eventbridge import ScheduleRule
from grid_reingest.adapters.id_sources import BucketSource, InventorySource
from grid_reingest.adapters.inventory_manifest import parse_s3_url
from grid_reingest.adapters.notify import TopicNotifier
from grid_reingest.adapters.resume import InvokeAgain
from grid_reingest.flows.repair import (
    RepairDeps,
    RepairRefused,
    RepairSummary,
    load_repair,
    start_repair,
)
from grid_reingest.handlers import common
from grid_reingest.handlers.telemetry import telemetry
from grid_reingest.ports import IdSource
from grid_reingest.settings import RepairSettings, describe, load

SERVICE = names.REPAIR
logger, metrics = telemetry(SERVICE)


@dataclass(frozen=True)
class Runtime:
    """What outlives one invocation."""

    settings: RepairSettings
    passes: PassTable
    loader: TableLoader


def _build() -> Runtime:
    settings = load(RepairSettings)
    metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
    dynamodb = make_client("dynamodb", max_pool_connections=32)
    table = TableHandle(settings.table_name, dynamodb)
    return Runtime(
        settings,
        PassTable(settings.table_name, dynamodb),
        TableLoader(Uploads(table, StateReads(table))),
    )


runtime = common.Once(_build)


def _source(settings: RepairSettings) -> IdSource:
    s3 = make_client("s3", max_pool_connections=16)
    if settings.inventory_url:
        bucket, prefix = parse_s3_url(settings.inventory_url.rstrip("/") + "/manifest.json")
        return InventorySource(s3, bucket, prefix.rsplit("/", 1)[0] + "/", settings.instance)
    assert settings.source_bucket is not None  # settings require one source
    return BucketSource(s3, settings.source_bucket, settings.instance)


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A scheduled run, or `{"continue": pass id}`."""
    current = runtime()
    settings = current.settings
    events = make_client("events")
    notifier = (
        TopicNotifier(make_client("sns"), settings.report_topic) if settings.report_topic else None
    )
    deps = RepairDeps(
        passes=current.passes,
        source=_source(settings),
        loader=current.loader,
        rules=[
            ScheduleRule(settings.check_rule, lambda: events, logger.info),
            ScheduleRule(settings.index_rule, lambda: events, logger.info),
        ],
        clock=common.SystemClock(),
        remaining_ms=context.get_remaining_time_in_millis,
        resume=InvokeAgain(make_client("lambda"), context.invoked_function_arn),
        notifier=notifier,
    )
    margin_ms = settings.stop_margin_seconds * 1000
    try:
        pass_id = event.get("continue") if isinstance(event, dict) else None
        if isinstance(pass_id, str):
            summary = load_repair(pass_id, deps, margin_ms=margin_ms)
        else:
            summary = start_repair(deps, topic=settings.report_topic, margin_ms=margin_ms)
    except RepairRefused:
        metrics.add_metric(names.REPAIR_REFUSED, MetricUnit.Count, 1)
        raise
    return _report(summary)


def _report(summary: RepairSummary) -> dict[str, Any]:
    metrics.add_metric(names.REPAIR_IDS_LOADED, MetricUnit.Count, summary.ids_loaded)
    metrics.add_metric(names.REPAIR_STARTED, MetricUnit.Count, int(summary.started))
    line = summary.as_dict()
    logger.info("repair invocation", extra={"summary": line})
    return line


if __name__ == "__main__":
    print(describe(RepairSettings))
    sys.exit(0)
