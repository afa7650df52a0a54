"""batch-check: confirm in media-api that enqueued images arrived, while batch-index runs.

Claims enqueued ids progressively, as batch-index does (flows/loop.py), paced
by the same controller on media-api's answers (its Grid loop: latency and
overload), and asks media-api about each: 200 verified, 404 not found (or,
for an item of a check-first pass not yet re-projected, back to 0 for
batch-index: docs/state-table.md, "Passes"), anything else back to enqueued
with one more attempt — when the failure is the image's own. It runs beside
batch-index: an id is checked once it was enqueued `CHECK_MIN_AGE_SECONDS`
before the records thrall is reaching (its lag as batch-index last judged it),
and while batch-index still has work a
claim that finds nothing is tried again a few seconds later rather than
ending the invocation; only once neither has work left does it switch its
schedule off. Whose a failure is follows the one rule
both workers share (domain/systemic.py, flows/triage.py): media-api refusing
the key (401/403), or failing for the images alike, is the system's; their
claims go back with no attempt and the invocation fails loudly. No AWS here:
the ports come in through `CheckDeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from grid_reingest import names
from grid_reingest.domain.claims import Claim, Source, lease_cutoff, outcome_transition
from grid_reingest.domain.passes import missing_transition, verified_counts
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import Cause, Judge, Symptom, cause_of
from grid_reingest.flows.invocation import Limits, LoopDeps, SystemicFailure, rules_of
from grid_reingest.flows.loop import Flushed, Loop
from grid_reingest.flows.pass_end import PassEnd, end_if_over
from grid_reingest.flows.record import Recorder
from grid_reingest.flows.summary import Summary, finish_if_done
from grid_reingest.flows.triage import FailureTriage, verdict_transition
from grid_reingest.ports import (
    ClaimStore,
    Clock,
    ImageLookup,
    Pace,
    PassStore,
    Presence,
    Probe,
    RuleSwitch,
)
from grid_reingest.settings import BatchCheckSettings

HELD = ProgressState.LOOKING_FOR_IMAGE
MEDIA_API = "media-api"
# batch-index's rule is switched on at most this often while items go back to it (it
# switches itself off when it finds nothing, which it may do between two send-backs).
WAKE_INDEX_EVERY_SECONDS = 60.0
# While batch-index has work, a claim that found nothing is tried again after this long.
WAIT_FOR_MORE_SECONDS = 5.0
# media-api's answer -> the image's new state; any other answer is a failure.
ANSWERS = {200: ProgressState.VERIFIED, 404: ProgressState.NOT_FOUND_IN_MEDIA_API}


@dataclass
class CheckDeps:
    """Everything one invocation works with."""

    store: ClaimStore
    lookup: ImageLookup
    pace: Pace
    clock: Clock
    remaining_ms: Callable[[], int]
    invocation: str
    rule: RuleSwitch | None
    probe: Probe | None = None  # decides whose a failure is; None: the window alone
    # The pass records: present and repaired counted on them; None: not counted.
    passes: PassStore | None = None
    # batch-index's rule, switched on when a check-first item goes back to it.
    index_rule: RuleSwitch | None = None
    pass_end: PassEnd | None = None  # ends the pass once nothing is left; None: never
    # How far behind thrall is, in seconds, as batch-index last judged it (None: unknown).
    thrall_lag: Callable[[], float | None] = lambda: None


@dataclass
class CheckSummary(Summary):
    """What one invocation of batch-check did."""

    sent_back: int = 0  # check-first items media-api lacks, back to batch-index
    present: int = 0  # check-first items verified without re-projection
    repaired: int = 0  # re-projected items of a check-first pass, verified

    def details(self) -> dict[str, Any]:
        """What only batch-check counts, for the log line."""
        return {"sentBack": self.sent_back, "present": self.present, "repaired": self.repaired}

    def worker_metrics(self) -> dict[str, float]:
        """What only batch-check counts, as metrics."""
        return {names.VERIFIED: self.states.get(int(ProgressState.VERIFIED), 0)}


def run_batch_check(settings: BatchCheckSettings, deps: CheckDeps) -> CheckSummary:
    """One invocation of batch-check; SystemicFailure (after the claims went back) when media-api
    fails for the images alike or refuses the key."""
    summary = CheckSummary()
    limits = Limits.of(settings)
    if limits.out_of_time(deps.remaining_ms()):
        summary.stopped_because = "too little time left to start"
        return summary
    recorder = Recorder(HELD, LoopDeps.of(deps), limits, summary)
    triage = FailureTriage(
        Judge(rules_of(settings)),
        deps.probe,
        deps.clock,
        lambda: deps.store.sample([ProgressState.VERIFIED]),
    )
    check = _CheckStrategy(settings, deps, summary, recorder, triage)
    loop = Loop(recorder, check)
    loop.run()
    summary.systemic = check.triage.stop_reason
    if summary.systemic is not None:
        raise SystemicFailure(summary.systemic, summary)
    if loop.exhausted:
        finish_if_done(deps.store, work_states(settings), summary, deps.rule)
        end_if_over(deps.pass_end, summary)
    return summary


def work_states(settings: BatchCheckSettings) -> list[ProgressState]:
    """The states that mean the pass has work left for batch-check: its own, and batch-index's
    (what is still to be indexed, or re-projected in a check-first pass, will be checked)."""
    return [settings.index_start_state, ProgressState.IN_PROGRESS, settings.start_state, HELD]


@dataclass
class _CheckStrategy:
    """The loop's strategy for batch-check (flows/loop.py): ask media-api, judge its answers."""

    settings: BatchCheckSettings
    deps: CheckDeps
    summary: CheckSummary
    recorder: Recorder
    triage: FailureTriage
    index_woken_until: float = 0.0  # monotonic time before which it is not switched on again
    # Check-first claims verified, their outcome not written yet.
    verified_claims: dict[str, Claim] = field(default_factory=dict)
    index_busy_at: float | None = None  # when batch-index last had work, seen here

    def sources(self, started_at: datetime) -> Sequence[Source]:
        now = self.deps.clock.now()
        # Enqueued long enough before what thrall is reaching now. Images enqueued while this
        # invocation runs count too (it runs beside batch-index); one it put back itself
        # waits as long again before it is asked about once more.
        wait = self.settings.min_age_seconds + (self.deps.thrall_lag() or 0.0)
        return [
            Source(HELD, lease_cutoff(now, self.settings.loop.lease_seconds), reclaim=True),
            Source(self.settings.start_state, now - timedelta(seconds=wait)),
        ]

    def again_in(self) -> float | None:
        # While batch-index has work, more comes within this invocation, and once it has
        # just finished, until its last images are old enough. Otherwise the invocation
        # ends: what it put back itself waits for the next one anyway (claims take only
        # what changed before it began).
        now = self.deps.clock.monotonic()
        if self.deps.store.has_any([self.settings.index_start_state, ProgressState.IN_PROGRESS]):
            self.index_busy_at = now
            return WAIT_FOR_MORE_SECONDS
        if self.index_busy_at is None:
            return None
        aging = (
            self.settings.min_age_seconds + (self.deps.thrall_lag() or 0.0) + WAIT_FOR_MORE_SECONDS
        )
        return WAIT_FOR_MORE_SECONDS if now - self.index_busy_at < aging else None

    def work(self, image_id: str) -> Presence:
        return self.deps.lookup(image_id)

    def surprise(self, image_id: str, error: Exception) -> Presence:
        return Presence(None, f"{type(error).__name__}: {error}")

    def halt(self) -> str | None:
        return self.triage.stop_reason

    def cap(self, limit: int) -> int:
        return limit

    def finish(self, claim: Claim, result: Presence) -> bool:
        state = ANSWERS.get(result.status) if result.status is not None else None
        if state is not None:
            self.triage.served(claim.id if state is ProgressState.VERIFIED else None)
            if state is ProgressState.NOT_FOUND_IN_MEDIA_API and claim.check_first:
                self.recorder.add(missing_transition(claim, HELD, self.deps.invocation))
                return False
            if state is ProgressState.VERIFIED and (claim.check_first or claim.reprojected):
                self.verified_claims[claim.id] = claim
            self.recorder.add(outcome_transition(claim, HELD, state, self.deps.invocation))
            return False
        symptom = Symptom(MEDIA_API, cause_of(result.status))
        status = f"HTTP {result.status}" if result.status is not None else "no response"
        self.triage.failed(claim, symptom, f"media-api: {status}: {result.message}")
        self._settle_failures(final=False)
        return symptom.cause is Cause.OVERLOAD

    def flush(self, *, final: bool, idle: bool) -> Flushed:
        self._settle_failures(final=final)
        pending = self.recorder.take_pending()
        applied = self.recorder.record(pending)
        verified, sent_back = [], 0
        for transition, ok in zip(pending, applied, strict=True):
            claim = self.verified_claims.pop(transition.id, None)
            if not ok:
                continue
            if claim is not None and transition.new is ProgressState.VERIFIED:
                verified.append(claim)
            sent_back += int(transition.reproject)
        self._count_verified(verified)
        self._send_back(sent_back)
        return Flushed()

    def _count_verified(self, claims: list[Claim]) -> None:
        """Present and repaired counted on the pass record as soon as they are written, so
        that whichever worker ends the pass reads them."""
        for counted in verified_counts(claims):
            self.summary.present += counted.present
            self.summary.repaired += counted.repaired
            if self.deps.passes is not None:
                self.deps.passes.count_verified(counted)

    def _send_back(self, sent_back: int) -> None:
        """Items went back to 0: batch-index may have switched itself off meanwhile."""
        if not sent_back:
            return
        self.summary.sent_back += sent_back
        now = self.deps.clock.monotonic()
        if self.deps.index_rule is not None and now >= self.index_woken_until:
            self.deps.index_rule.enable()
            self.index_woken_until = now + WAKE_INDEX_EVERY_SECONDS

    def close(self) -> None:
        self.triage.close()

    def _settle_failures(self, *, final: bool) -> None:
        for decided in self.triage.decide(final=final):
            self.recorder.add(
                verdict_transition(
                    decided,
                    HELD,
                    self.deps.invocation,
                    self.settings.loop.max_attempts,
                    self.summary,
                )
            )
