"""batch-check: one invocation's work: confirm in media-api that enqueued images arrived.

Claim enqueued ids (old enough for thrall to have indexed them), ask media-api
for each, concurrently: 200 verified, 404 not found, anything else back to
enqueued with one more attempt. No AWS here: the ports come in through
`CheckDeps`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from grid_reingest import names
from grid_reingest.domain.claims import (
    Claim,
    Source,
    Transition,
    failure_transition,
    lease_cutoff,
    release_transition,
)
from grid_reingest.domain.runner import Breaker, Run, run_bounded
from grid_reingest.domain.states import ProgressState
from grid_reingest.flows.summary import Summary, finish_if_done
from grid_reingest.ports import ClaimStore, ImageLookup, Presence, RuleSwitch
from grid_reingest.settings import BREAKER_FAILURE_SHARE, BREAKER_MIN_RESULTS, BatchCheckSettings

HELD = ProgressState.LOOKING_FOR_IMAGE


@dataclass
class CheckDeps:
    """Everything one invocation works with."""

    table: ClaimStore
    lookup: ImageLookup
    disable_schedule: RuleSwitch | None
    remaining_ms: Callable[[], int]
    worker: str
    now: Callable[[], datetime]


@dataclass
class CheckSummary(Summary):
    """What one invocation of batch-check did."""

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts = super().metric_counts()
        counts[names.VERIFIED] = self.states.get(int(ProgressState.VERIFIED), 0)
        return counts


# A media-api call is short (the service timeout); stop starting new ones with
# this much of the invocation left.
STOP_MARGIN_MS = 30_000
# batch-index's defaults: a media-api outage must not burn every image's attempts.
BREAKER = (BREAKER_FAILURE_SHARE.default_value, BREAKER_MIN_RESULTS.default_value)
# media-api's answer -> the image's new state; any other answer is a failure.
ANSWERS = {200: ProgressState.VERIFIED, 404: ProgressState.NOT_FOUND_IN_MEDIA_API}


def run_batch_check(settings: BatchCheckSettings, deps: CheckDeps) -> CheckSummary:
    """One invocation of batch-check."""
    summary = CheckSummary()
    now = deps.now()
    sources = [
        Source(HELD, lease_cutoff(now, settings.lease_seconds), reclaim=True),
        Source(settings.start_state, now - timedelta(seconds=settings.min_age_seconds)),
    ]
    claims = deps.table.claim(sources, HELD, settings.batch_size, deps.worker)
    summary.claimed = len(claims)
    summary.reclaimed = sum(1 for c in claims if c.reclaimed)
    if not claims:
        finish_if_done(deps.table, [settings.start_state, HELD], summary, deps.disable_schedule)
        return summary

    transitions = _check(settings, deps, claims, summary)
    summary.count(transitions, deps.table.apply(transitions))
    return summary


def _check(
    settings: BatchCheckSettings, deps: CheckDeps, claims: list[Claim], summary: CheckSummary
) -> list[Transition]:
    """Ask media-api about each claim; the transitions that record the answers."""
    breaker = Breaker(*BREAKER)
    failures: list[tuple[Claim, str, str]] = []
    transitions: list[Transition] = []

    def keep_going() -> str | None:
        if breaker.tripped_by is not None:
            return f"breaker tripped: media-api {breaker.tripped_by}"
        if deps.remaining_ms() < STOP_MARGIN_MS:
            return "invocation running out of time"
        return None

    run = Run()
    for claim, presence in run_bounded(
        claims, _safe(deps.lookup), settings.grid.concurrency, keep_going, run
    ):
        state = ANSWERS.get(presence.status) if presence.status is not None else None
        if state is not None:
            transitions.append(Transition(claim.id, HELD, state, worker=deps.worker))
            breaker.record(None)
        else:
            reason = str(presence.status if presence.status is not None else "no-response")
            breaker.record(reason)
            failures.append((claim, reason, presence.message))
    summary.stopped_because = run.stopped_because

    for claim, reason, message in failures:
        error = f"media-api: HTTP {reason}: {message}"
        summary.failures += 1
        transitions.append(
            failure_transition(claim, HELD, deps.worker, error, settings.max_attempts)
        )
    for claim in run.not_started:
        transitions.append(release_transition(claim, HELD, deps.worker))
        summary.released += 1
    return transitions


def _safe(lookup: ImageLookup) -> ImageLookup:
    def guarded(image_id: str) -> Presence:
        try:
            return lookup(image_id)
        except Exception as error:  # one image's surprise must not sink the batch
            return Presence(None, f"{type(error).__name__}: {error}")

    return guarded
