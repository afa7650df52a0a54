"""batch-check: confirm in media-api that enqueued images arrived, while batch-index runs.

Claims enqueued ids progressively, as batch-index does (flows/loop.py), paced
by the same controller on media-api's answers (its Grid loop: latency and
overload), and asks media-api about each: 200 verified, 404 not found (or,
for an item of a check-first pass not yet re-projected, back to 0 for
batch-index: docs/state-table.md, "Passes"), anything else back to enqueued
with one more attempt — when the failure is the image's own. It runs beside
batch-index: when an image is first asked about, and when media-api's 404 is a
verdict rather than "not yet" (the claim is then held and asked again every
30 s), is flows/check_timing.py's to say. An image whose failure the
invocation put back waits `CHECK_MIN_AGE_SECONDS` before it is asked again.
While batch-index still has work, a claim that finds nothing is tried again a
few seconds later rather than ending the invocation; after, the invocation
waits for the oldest enqueued image to come of age when that is sooner than
the next tick; only once neither has work left does it switch its schedule
off. Whose a failure is follows the one rule both workers share
(domain/systemic.py, flows/triage.py): media-api refusing the key (401/403), or
failing for the images alike, is the system's; their claims go back with no
attempt and the invocation fails loudly. No AWS here: the ports come in
through `CheckDeps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from grid_reingest import names
from grid_reingest.domain.claims import Claim, Source, lease_cutoff, outcome_transition
from grid_reingest.domain.passes import missing_transition, verified_counts
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import Cause, Judge, Symptom, cause_of
from grid_reingest.domain.thrall_state import Lag
from grid_reingest.flows.check_timing import CheckTiming
from grid_reingest.flows.invocation import (
    LONGEST_WAIT_SECONDS,
    Limits,
    LoopDeps,
    SystemicFailure,
    rules_of,
)
from grid_reingest.flows.loop import Loop
from grid_reingest.flows.pass_end import PassEnd, end_if_over
from grid_reingest.flows.record import Recorder
from grid_reingest.flows.strategy import Flushed
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
# An image whose 404 is not final yet is asked again this often (at most).
LOOK_AGAIN_SECONDS = 30.0
# An image already old enough that a claim did not find (the index is eventually
# consistent) is looked for again after this long.
SOONEST_AGAIN_SECONDS = 1.0
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
    # How far behind thrall is, as batch-index last judged it (None: unknown).
    thrall_lag: Callable[[], Lag | None] = lambda: None


@dataclass
class CheckSummary(Summary):
    """What one invocation of batch-check did."""

    sent_back: int = 0  # check-first items media-api lacks, back to batch-index
    present: int = 0  # check-first items verified without re-projection
    repaired: int = 0  # re-projected items of a check-first pass, verified
    not_yet: int = 0  # 404s before the image's was final: asked again later

    def details(self) -> dict[str, Any]:
        """What only batch-check counts, for the log line."""
        return {
            "sentBack": self.sent_back,
            "present": self.present,
            "repaired": self.repaired,
            "notYet": self.not_yet,
        }

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
    timing = CheckTiming(settings, deps.clock, deps.store, deps.thrall_lag)
    check = _CheckStrategy(settings, deps, summary, recorder, triage, timing)
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

    # An enqueued image's time in 3 is its age, which its verdict waits on.
    keeps_place: ClassVar[bool] = True
    settings: BatchCheckSettings
    deps: CheckDeps
    summary: CheckSummary
    recorder: Recorder
    triage: FailureTriage
    timing: CheckTiming
    index_woken_until: float = 0.0  # monotonic time before which it is not switched on again
    # Check-first claims verified, their outcome not written yet.
    verified_claims: dict[str, Claim] = field(default_factory=dict)
    # Since when each image held for a later look has been (monotonic seconds).
    held_since: dict[str, float] = field(default_factory=dict)
    # Images this invocation put back after a failure, and when (monotonic seconds).
    put_back: dict[str, float] = field(default_factory=dict)

    def sources(self, started_at: datetime) -> Sequence[Source]:
        now = self.deps.clock.now()
        held = Source(HELD, lease_cutoff(now, self.settings.loop.lease_seconds), reclaim=True)
        age = self.timing.first_look_age()
        if age is None:
            return [held]
        # Enqueued long enough before what thrall is reaching now. Images enqueued while this
        # invocation runs count too (it runs beside batch-index); one it put back itself
        # waits as long again before it is asked about once more.
        return [held, Source(self.settings.start_state, now - timedelta(seconds=age))]

    def again_in(self) -> float | None:
        # While batch-index has work, more comes within this invocation. Once it has none,
        # the invocation waits for the oldest enqueued image to be old enough, if that comes
        # sooner than the next tick would: the last minutes of a pass are not left to
        # ticks that each find the tail a little too young.
        if self.timing.index_busy():
            return WAIT_FOR_MORE_SECONDS
        age = self.timing.first_look_age()
        if age is None:
            return None
        oldest = self.deps.store.oldest_change(self.settings.start_state)
        if oldest is None:
            return None
        due_in = (oldest + timedelta(seconds=age) - self.deps.clock.now()).total_seconds()
        return max(due_in, SOONEST_AGAIN_SECONDS) if due_in <= LONGEST_WAIT_SECONDS else None

    def admit(self, claim: Claim) -> float | None:
        # An image whose failure this invocation put back is not asked again within seconds
        # (the failure may be a moment's overload, and each answer counts): it waits as long
        # as a newly enqueued image waits to be final, bounded by half the lease.
        at = self.put_back.get(claim.id)
        if at is None:
            return None
        wait = min(self.settings.min_age_seconds, self.settings.loop.lease_seconds / 2)
        left = at + wait - self.deps.clock.monotonic()
        if left <= 0:
            del self.put_back[claim.id]
            return None
        return left

    def work(self, image_id: str) -> Presence:
        self.timing.ask(image_id)
        return self.deps.lookup(image_id)

    def surprise(self, image_id: str, error: Exception) -> Presence:
        return Presence(None, f"{type(error).__name__}: {error}")

    def halt(self) -> str | None:
        return self.triage.stop_reason

    def cap(self, limit: int) -> int:
        return limit

    def timed(self, result: Presence) -> bool:
        return result.status in ANSWERS

    def finish(self, claim: Claim, result: Presence) -> bool:
        found_before = self.timing.answered(claim.id)
        state = ANSWERS.get(result.status) if result.status is not None else None
        if state is not None:
            self.triage.served(claim.id if state is ProgressState.VERIFIED else None)
            if state is ProgressState.VERIFIED:
                self.timing.found(claim)
            if state is ProgressState.NOT_FOUND_IN_MEDIA_API and claim.check_first:
                self.recorder.add(missing_transition(claim, HELD, self.deps.invocation))
                return False
            if state is ProgressState.NOT_FOUND_IN_MEDIA_API and self._hold_for_later(
                claim, found_before
            ):
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

    def _hold_for_later(self, claim: Claim, found_before: datetime | None) -> bool:
        """An image media-api does not have yet, whose 404 is not final yet: held, to be asked
        again once it may be (back in 3 with its place kept, should the invocation end
        first)."""
        wait = self.timing.final_in(claim)
        if wait is None:
            if self.timing.thrall_passed(claim, found_before):
                self.held_since.pop(claim.id, None)
                return False
            wait = LOOK_AGAIN_SECONDS
        # Asked again at least this often: thrall may be quicker than its lag said.
        wait = min(wait, LOOK_AGAIN_SECONDS)
        now = self.deps.clock.monotonic()
        held_since = self.held_since.setdefault(claim.id, now)
        if now + wait - held_since > self.settings.loop.lease_seconds / 2:
            # thrall stalled, or fell that far behind: a claim is not held that long. The
            # item goes back with its place kept (its enqueue time is what the order of
            # media-api's answers is judged by), to be claimed again on a fresh lease.
            self.held_since.pop(claim.id)
            self.recorder.release(claim, keep_place=True)
        else:
            self.recorder.later(claim, now + wait)
        self.summary.not_yet += 1
        return True

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
        now = self.deps.clock.monotonic()
        for decided in self.triage.decide(final=final):
            transition = verdict_transition(
                decided, HELD, self.deps.invocation, self.settings.loop.max_attempts, self.summary
            )
            if transition.new is self.settings.start_state:
                self.put_back[transition.id] = now
            self.recorder.add(transition)
