"""Working through a batch of claims: bounded concurrency, a circuit breaker, a deadline.

Shared by batch-index and batch-check. Knows nothing of AWS or the Grid: it
runs a function over claims and hands results back as they finish.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from grid_reingest.state_table import Claim

R = TypeVar("R")


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


@dataclass
class Run(Generic[R]):
    """What happened to a batch: results as they came, and the claims never started."""

    not_started: list[Claim] = field(default_factory=list)
    stopped_because: str | None = None


def run_bounded(
    claims: Sequence[Claim],
    work: Callable[[str], R],
    concurrency: int,
    keep_going: Callable[[], str | None],
    run: Run[R],
) -> Iterator[tuple[Claim, R]]:
    """Apply `work` to each claim's id, at most `concurrency` at once, yielding as each finishes.

    Before starting each item `keep_going()` is asked; when it returns a reason
    (time is short, the breaker tripped) nothing more starts: items already in
    flight finish and are yielded, the rest land in `run.not_started`.
    """
    waiting = list(reversed(claims))
    in_flight: dict[Future[R], Claim] = {}
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="batch") as pool:
        while waiting or in_flight:
            while waiting and len(in_flight) < concurrency and run.stopped_because is None:
                reason = keep_going()
                if reason is not None:
                    run.stopped_because = reason
                    break
                claim = waiting.pop()
                in_flight[pool.submit(work, claim.id)] = claim
            if run.stopped_because is not None:
                run.not_started.extend(reversed(waiting))
                waiting.clear()
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield in_flight.pop(future), future.result()
