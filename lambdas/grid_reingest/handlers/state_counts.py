"""state-counts Lambda: keep the items per state (`~counts`) from the state table's stream.

Invoked by the table's stream with a batch of records (every write to an item,
before and after); adds the batch's moves between states to the tally once
(adapters/dynamodb/tally.py). A batch that fails is sent again by Lambda, in
order, until it is counted. Settings: see
`grid_reingest.settings.StateCountsSettings`; `python -m
grid_reingest.handlers.state_counts` prints them.
"""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from grid_reingest import names
from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.tally import TallyTable, record_changes
from grid_reingest.domain.tally import deltas
from grid_reingest.handlers.common import Once
from grid_reingest.handlers.telemetry import telemetry
from grid_reingest.settings import StateCountsSettings, describe, load

SERVICE = names.STATE_COUNTS
logger, metrics = telemetry(SERVICE)


def _build() -> TallyTable:
    settings = load(StateCountsSettings)
    metrics.set_default_dimensions(**{names.STAGE_DIMENSION: settings.stage})
    return TallyTable(settings.table_name, make_client("dynamodb"))


runtime = Once(_build)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One batch of stream records."""
    records = event.get("Records") or []
    moved = deltas(record_changes(records))
    counted = True
    if records and moved:
        counted = runtime().add(records[0]["eventID"], moved)
    metrics.add_metric(name=names.TALLY_RECORDS, unit=MetricUnit.Count, value=len(records))
    if not counted:
        metrics.add_metric(name=names.TALLY_REPEATS, unit=MetricUnit.Count, value=1)
    summary = {"records": len(records), "moved": moved, "alreadyCounted": not counted}
    logger.info(f"{SERVICE} invocation", extra={"summary": summary})
    return summary


if __name__ == "__main__":
    print(describe(StateCountsSettings))
    sys.exit(0)
