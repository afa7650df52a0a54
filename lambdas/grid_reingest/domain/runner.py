"""Working through a batch of claims: bounded concurrency, a circuit breaker, a deadline.

Shared by batch-index and batch-check. Knows nothing of AWS or the Grid: it
runs a function over claims and hands results back as they finish.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from grid_reingest.domain.claims import Claim

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
class Run:
    """How a batch went: why it stopped early, the claims never started, whether all started."""

    not_started: list[Claim] = field(default_factory=list)
    stopped_because: str | None = None
    all_started: bool = False


def run_bounded(
    claims: Iterable[Claim],
    work: Callable[[str], R],
    concurrency: int,
    keep_going: Callable[[], str | None],
    run: Run,
    *,
    on_start: Callable[[Claim], None] = lambda claim: None,
) -> Iterator[tuple[Claim, R]]:
    """Apply `work` to each claim's id, at most `concurrency` at once, yielding as each finishes.

    `claims` may be a stream: work starts on each claim as soon as it arrives.
    Before starting each item `keep_going()` is asked; when it returns a reason
    (time is short, the breaker tripped) nothing more starts: items in flight
    finish and are yielded, and the rest of `claims` lands in `run.not_started`
    (a stream is drained: what it already took must be given back).
    """
    source = iter(claims)
    in_flight: dict[Future[R], Claim] = {}
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="batch") as pool:
        while True:
            while len(in_flight) < concurrency and not run.all_started:
                reason = keep_going()
                if reason is not None:
                    run.stopped_because = reason
                    run.not_started.extend(source)
                    run.all_started = True
                    break
                claim = next(source, None)
                if claim is None:
                    run.all_started = True
                    break
                on_start(claim)
                in_flight[pool.submit(work, claim.id)] = claim
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                yield in_flight.pop(future), future.result()
