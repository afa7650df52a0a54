"""What CloudWatch says of thrall's stream: the iterator age back-pressure reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from grid_reingest.names import ITERATOR_AGE_METRIC as METRIC_NAME
from grid_reingest.names import KINESIS_NAMESPACE as METRIC_NAMESPACE
from grid_reingest.names import STREAM_DIMENSION


def report_iterator_age(
    cloudwatch: Any, stream: str, age_ms: float, ago: timedelta = timedelta(minutes=1)
) -> None:
    """Put one iterator-age data point for `stream`, `ago` in the past.

    In the past because moto leaves out of GetMetricStatistics a point stamped
    at the very end of the window asked for.
    """
    cloudwatch.put_metric_data(
        Namespace=METRIC_NAMESPACE,
        MetricData=[
            {
                "MetricName": METRIC_NAME,
                "Dimensions": [{"Name": STREAM_DIMENSION, "Value": stream}],
                "Timestamp": datetime.now(UTC) - ago,
                "Value": age_ms,
                "Unit": "Milliseconds",
            }
        ],
    )
