"""batch-check: confirm in media-api that enqueued images arrived.

Claims enqueued ids (old enough for thrall to have indexed them) progressively,
as batch-index does (flows/loop.py), and asks media-api about each: 200
verified, 404 not found, anything else back to enqueued with one more attempt.
Failures the whole system shares — media-api refusing the key (401/403), or
the breaker tripping — are not the images': their claims go back with no
attempt and the invocation fails loudly. No AWS here: the ports come in
through `CheckDeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from grid_reingest import names
from grid_reingest.domain.backpressure import OVERLOAD_STATUSES, OverloadWindow
from grid_reingest.domain.claims import Claim, Source, Transition, failure_transition, lease_cutoff
from grid_reingest.domain.runner import Breaker
from grid_reingest.domain.states import ProgressState
from grid_reingest.flows.invocation import Limits, LoopDeps
from grid_reingest.flows.loop import Loop
from grid_reingest.flows.summary import Summary, finish_if_done
from grid_reingest.ports import ClaimStore, Clock, ImageLookup, Pace, Presence, RuleSwitch
from grid_reingest.settings import BatchCheckSettings

HELD = ProgressState.LOOKING_FOR_IMAGE
# media-api's answer -> the image's new state; any other answer is a failure.
ANSWERS = {200: ProgressState.VERIFIED, 404: ProgressState.NOT_FOUND_IN_MEDIA_API}
# media-api refusing the key: every image would get the same answer.
REFUSED = frozenset({401, 403})


class SystemicFailure(RuntimeError):
    """media-api failed for every image alike; raised after the claims went back."""

    def __init__(self, message: str, summary: CheckSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class CheckDeps:
    """Everything one invocation works with."""

    store: ClaimStore
    lookup: ImageLookup
    pace: Pace
    clock: Clock
    remaining_ms: Callable[[], int]
    worker: str
    rule: RuleSwitch | None


@dataclass
class CheckSummary(Summary):
    """What one invocation of batch-check did."""

    breaker_tripped_by: str | None = None

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts = super().metric_counts()
        counts[names.VERIFIED] = self.states.get(int(ProgressState.VERIFIED), 0)
        counts[names.BREAKER_TRIPS] = int(self.breaker_tripped_by is not None)
        return counts


def run_batch_check(settings: BatchCheckSettings, deps: CheckDeps) -> CheckSummary:
    """One invocation of batch-check; SystemicFailure (after the claims went back) when media-api
    refuses the key or the breaker trips."""
    summary = CheckSummary()
    if deps.remaining_ms() < settings.stop_margin_seconds * 1000:
        summary.stopped_because = "too little time left to start"
        return summary
    loop = _CheckLoop(settings, deps, summary)
    loop.run()
    if loop.systemic is not None:
        raise SystemicFailure(f"media-api failed for every image alike: {loop.systemic}", summary)
    if loop.exhausted:
        finish_if_done(deps.store, [settings.start_state, HELD], summary, deps.rule)
    return summary


class _CheckLoop(Loop[Presence]):
    held = HELD

    def __init__(self, settings: BatchCheckSettings, deps: CheckDeps, summary: CheckSummary):
        limits = Limits.of(settings)
        loop_deps = LoopDeps(deps.store, deps.pace, deps.clock, deps.remaining_ms, deps.worker)
        super().__init__(loop_deps, limits, summary)
        self.settings = settings
        self.lookup = deps.lookup
        self.check_summary = summary
        # Its share is taken over the images that finished.
        self.breaker = Breaker(settings.breaker_share, settings.breaker_min_results)
        self.window = OverloadWindow()
        self.failed: list[tuple[Claim, str, bool]] = []  # (claim, error, overloaded): see flush
        # Overload failures seen while the window showed overload across many images.
        self.systemic_overloads: set[str] = set()
        self.systemic: str | None = None

    def sources(self) -> Sequence[Source]:
        now = self.deps.clock.now()
        return [
            Source(HELD, lease_cutoff(now, self.settings.lease_seconds), reclaim=True),
            Source(
                self.settings.start_state,
                min(self.started_at, now - timedelta(seconds=self.settings.min_age_seconds)),
            ),
        ]

    def work(self, image_id: str) -> Presence:
        return self.lookup(image_id)

    def surprise(self, image_id: str, error: Exception) -> Presence:
        return Presence(None, f"{type(error).__name__}: {error}")

    def halt(self) -> str | None:
        if self.systemic is None and self.breaker.tripped_by is not None:
            self.check_summary.breaker_tripped_by = self.breaker.tripped_by
            self.systemic = f"breaker tripped: media-api {self.breaker.tripped_by}"
        return self.systemic

    def finish(self, claim: Claim, result: Presence) -> bool:
        state = ANSWERS.get(result.status) if result.status is not None else None
        overloaded = result.status in OVERLOAD_STATUSES
        self.window.record(overloaded)
        if state is not None:
            self.breaker.record(None)
            self.pending.append(Transition(claim.id, HELD, state, worker=self.deps.worker))
            return False
        reason = str(result.status if result.status is not None else "no-response")
        self.breaker.record(reason)
        error = f"media-api: HTTP {reason}: {result.message}"
        if result.status in REFUSED:
            self.systemic = self.systemic or f"HTTP {reason}: the API key is refused"
        self.failed.append((claim, error, overloaded))
        if self.window.systemic():
            # Those that came before the window had seen enough are judged with it: an
            # invocation's first overload answers are no more the images' than the rest.
            self.systemic_overloads.update(c.id for c, _, over in self.failed if over)
        return overloaded

    def flush(self, final: bool) -> None:
        if final:
            self.pending += [self._failure(*failed) for failed in self.failed]
            self.failed = []
        self.record(self.take_pending())

    def _failure(self, claim: Claim, error: str, overloaded: bool) -> Transition:
        overload = overloaded and (claim.id in self.systemic_overloads or self.window.systemic())
        if self.systemic is not None or overload:
            # Not the image's fault: back with no attempt.
            self.summary.released += 1
            self.summary.infra_released += 1
            return Transition(claim.id, HELD, claim.claimed_from, self.deps.worker, error=error)
        self.summary.failures += 1
        return failure_transition(claim, HELD, self.deps.worker, error, self.settings.max_attempts)
