"""Waiting between retries of work that AWS accepted only in part.

botocore retries whole calls; the parts a call reports back as not done
(DynamoDB's UnprocessedItems, Kinesis's failed records) are ours to retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

# The first retry waits up to this long, each next one twice as long, none longer than the cap.
JITTER_BASE_SECONDS = 0.05
JITTER_CAP_SECONDS = 5.0


def full_jitter(
    attempt: int, base: float = JITTER_BASE_SECONDS, cap: float = JITTER_CAP_SECONDS
) -> float:
    """Seconds to wait before retry number `attempt` (0-based): AWS's "full jitter"."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - not for security


def sleep_before_retry(attempt: int, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait a jittered, growing time before retry number `attempt`."""
    sleep(full_jitter(attempt))
