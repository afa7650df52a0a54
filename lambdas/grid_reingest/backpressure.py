"""Back-pressure: how much work thrall can take now, from its stream's iterator age."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

METRIC_NAMESPACE = "AWS/Kinesis"
METRIC_NAME = "GetRecords.IteratorAgeMilliseconds"
STREAM_DIMENSION = "StreamName"
# The Grid's own batch index looks at the last five minutes, one-minute points.
WINDOW = timedelta(minutes=5)
PERIOD_SECONDS = 60
# Below this share of the threshold thrall is keeping up: take a full batch.
# Between it and the threshold, take less the closer the age gets, so a run
# slows down before it has to stop instead of swinging between full and none.
EASY_SHARE = 0.5
SMALLEST_SHARE = 0.1


@dataclass(frozen=True)
class Verdict:
    """How many ids to take this time, and why."""

    batch: int
    iterator_age_ms: float | None
    reason: str


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
            Namespace=METRIC_NAMESPACE,
            MetricName=METRIC_NAME,
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


def decide(age_ms: float | None, silent: Sequence[str], threshold_ms: int, batch: int) -> Verdict:
    """The batch to take for an iterator age (pure)."""
    if silent:
        return Verdict(0, None, f"no iterator-age data for {', '.join(silent)}: not taking work")
    assert age_ms is not None
    if age_ms > threshold_ms:
        return Verdict(0, age_ms, f"iterator age {age_ms:.0f} ms is above {threshold_ms} ms")
    easy = threshold_ms * EASY_SHARE
    if age_ms <= easy:
        return Verdict(batch, age_ms, f"iterator age {age_ms:.0f} ms: full batch")
    headroom = (threshold_ms - age_ms) / (threshold_ms - easy)
    share = max(SMALLEST_SHARE, headroom)
    size = max(1, int(batch * share))
    return Verdict(size, age_ms, f"iterator age {age_ms:.0f} ms: batch cut to {size} of {batch}")
