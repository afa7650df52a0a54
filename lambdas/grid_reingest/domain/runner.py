"""The circuit breaker both workers keep over the images they finished (pure).

The loop that bounds concurrency and the deadline is flows/loop.py.
"""

from __future__ import annotations

from collections import Counter


class Breaker:
    """Trips when more than `share` of the finished items failed for one same reason.

    It waits for `min_results` finished items, so that two early failures do not
    stop a batch of five hundred; a batch smaller than that never trips, so the
    images of a small last batch that keep failing do run out of attempts.
    """

    def __init__(self, share: float, min_results: int) -> None:
        self.share = share
        self.min_results = max(1, min_results)
        self.finished = 0
        self.reasons: Counter[str] = Counter()
        self.tripped_by: str | None = None

    def record(self, failure_reason: str | None) -> bool:
        """Count one finished item; True once the breaker has tripped."""
        self.finished += 1
        if failure_reason is not None:
            self.reasons[failure_reason] += 1
        if self.tripped_by is None and self.finished >= self.min_results and self.reasons:
            reason, count = self.reasons.most_common(1)[0]
            if count / self.finished > self.share:
                self.tripped_by = reason
        return self.tripped_by is not None
