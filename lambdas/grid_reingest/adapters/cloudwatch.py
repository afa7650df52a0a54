"""thrall's iterator age, read from CloudWatch (the back-pressure signal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from grid_reingest.names import ITERATOR_AGE_METRIC, KINESIS_NAMESPACE, STREAM_DIMENSION

# The Grid's own batch index looks at the last five minutes, one-minute points.
WINDOW = timedelta(minutes=5)
PERIOD_SECONDS = 60


def iterator_age_ms(
    cloudwatch: Any, streams: Sequence[str], now: datetime
) -> tuple[float | None, list[str]]:
    """The highest iterator age of `streams` over the window; None if any stream has no data.

    Returns the age and the names of streams without data points.
    """
    highest: float | None = None
    silent = []
    for stream in streams:
        points = cloudwatch.get_metric_statistics(
            Namespace=KINESIS_NAMESPACE,
            MetricName=ITERATOR_AGE_METRIC,
            Dimensions=[{"Name": STREAM_DIMENSION, "Value": stream}],
            StartTime=now - WINDOW,
            EndTime=now,
            Period=PERIOD_SECONDS,
            Statistics=["Maximum"],
        )["Datapoints"]
        if not points:
            silent.append(stream)
            continue
        peak = max(p["Maximum"] for p in points)
        highest = peak if highest is None else max(highest, peak)
    return (None if silent else highest), silent


def iterator_age_points(
    cloudwatch: Any, streams: Sequence[str], now: datetime
) -> tuple[float, float | None] | None:
    """The latest and the previous one-minute maxima of thrall's iterator age, the highest over
    `streams`; None when a stream has no point in the window (CloudWatch's points arrive a few
    minutes late: the latest visible one is what there is)."""
    per_minute: dict[datetime, float] = {}
    for stream in streams:
        points = cloudwatch.get_metric_statistics(
            Namespace=KINESIS_NAMESPACE,
            MetricName=ITERATOR_AGE_METRIC,
            Dimensions=[{"Name": STREAM_DIMENSION, "Value": stream}],
            StartTime=now - WINDOW,
            EndTime=now,
            Period=PERIOD_SECONDS,
            Statistics=["Maximum"],
        )["Datapoints"]
        if not points:
            return None
        for point in points:
            at = point["Timestamp"]
            per_minute[at] = max(per_minute.get(at, 0.0), point["Maximum"])
    ordered = [per_minute[at] for at in sorted(per_minute)]
    return ordered[-1], (ordered[-2] if len(ordered) > 1 else None)
