"""Metric names: what the workers emit and the dashboard and alarms read.

Shared with the CDK app, which imports these names; nothing here imports
Powertools, so infra can use it without the Lambda dependencies.
"""

from __future__ import annotations

NAMESPACE = "GridReingest"
# Dimensions on every metric: the worker's service name and the stage.
SERVICE_DIMENSION = "service"
STAGE_DIMENSION = "stage"

CLAIMED = "Claimed"
RECLAIMED = "Reclaimed"  # claims of a dead worker, taken over after the lease
ENQUEUED = "Enqueued"  # state 3: accepted by thrall's stream
VERIFIED = "Verified"  # state 6
FAILED = "Failed"  # unknown failures of one image (retried, or 8 when spent)
RELEASED = "Released"  # claims given back untouched (time, breaker, dry run)
LOST_CLAIMS = "LostClaims"  # outcomes not written: the claim had moved on
BACKPRESSURE_SKIPS = "BackPressureSkips"
ITERATOR_AGE = "ThrallIteratorAgeMs"
BREAKER_TRIPS = "BreakerTrips"
KINESIS_CALLS = "KinesisCalls"
COMPLETED = "PassFinished"  # the worker found nothing left and switched its rule off
DURATION = "DurationMs"


def state_metric(state: int) -> str:
    """Items moved into `state` by one invocation, e.g. "State3"."""
    return f"State{state}"
