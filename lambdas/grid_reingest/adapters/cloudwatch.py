"""thrall's iterator age, read from CloudWatch (the back-pressure signal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from grid_reingest.names import ITERATOR_AGE_METRIC, KINESIS_NAMESPACE, STREAM_DIMENSION

# The Grid's own batch index looks at the last five minutes, one-minute points.
WINDOW = timedelta(minutes=5)
PERIOD_SECONDS = 60


def iterator_age_points(
    cloudwatch: Any, streams: Sequence[str], now: datetime
) -> tuple[float, float | None] | None:
    """The latest and the previous one-minute maxima of thrall's iterator age, the highest over
    `streams`; None when a stream has no point in the window (CloudWatch's points arrive a few
    minutes late: the latest visible one is what there is)."""
    per_minute: dict[datetime, float] = {}
    for stream in streams:
        points = _points(cloudwatch, stream, now)
        if not points:
            return None
        for point in points:
            at = point["Timestamp"]
            per_minute[at] = max(per_minute.get(at, 0.0), point["Maximum"])
    ordered = [per_minute[at] for at in sorted(per_minute)]
    return ordered[-1], (ordered[-2] if len(ordered) > 1 else None)


def _points(cloudwatch: Any, stream: str, now: datetime) -> list[dict[str, Any]]:
    """One stream's one-minute maxima over the window."""
    points: list[dict[str, Any]] = cloudwatch.get_metric_statistics(
        Namespace=KINESIS_NAMESPACE,
        MetricName=ITERATOR_AGE_METRIC,
        Dimensions=[{"Name": STREAM_DIMENSION, "Value": stream}],
        StartTime=now - WINDOW,
        EndTime=now,
        Period=PERIOD_SECONDS,
        Statistics=["Maximum"],
    )["Datapoints"]
    return points
