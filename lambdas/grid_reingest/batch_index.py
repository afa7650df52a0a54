"""batch-index: one invocation's work, over the state table, a projector and thrall's stream.

Claim ids (conditionally), project them with bounded concurrency, publish the
ready ones on thrall's stream, record each image's outcome on its own item.
No AWS here: the adapters come in through `IndexDeps`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from grid_reingest import telemetry
from grid_reingest.backpressure import Verdict
from grid_reingest.batch_runner import Breaker, Run, run_bounded
from grid_reingest.outcomes import Failed, NotFound, Outcome, Ready, TooBig
from grid_reingest.settings import BatchIndexSettings
from grid_reingest.state_table import (
    Claim,
    Source,
    StateTable,
    Transition,
    lease_cutoff,
    release_transition,
)
from grid_reingest.states import RESET_LABEL, ProgressState
from grid_reingest.thrall import PUT_RECORDS_MAX_BYTES, PUT_RECORDS_MAX_RECORDS, PublishResult

HELD = ProgressState.IN_PROGRESS


class Projector(Protocol):
    def project(self, image_id: str) -> Outcome: ...


class Publisher(Protocol):
    def publish(self, records: list[tuple[str, bytes]]) -> PublishResult: ...


@dataclass
class IndexDeps:
    """Everything one invocation works with."""

    table: StateTable
    projector: Projector
    publisher: Publisher
    backpressure: Callable[[], Verdict]
    disable_schedule: Callable[[], bool] | None  # None: no rule configured
    remaining_ms: Callable[[], int]
    worker: str
    now: Callable[[], datetime]


@dataclass
class IndexSummary:
    """What one invocation did: logged as one line and emitted as metrics."""

    claimed: int = 0
    reclaimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    states: Counter[int] = field(default_factory=Counter)
    would: Counter[int] = field(default_factory=Counter)  # dry run: states not written
    released: int = 0
    failures: int = 0
    lost_claims: int = 0
    kinesis_calls: int = 0
    breaker_tripped_by: str | None = None
    batch: int = 0
    iterator_age_ms: float | None = None
    skipped: str | None = None
    stopped_because: str | None = None
    finished_pass: bool = False
    dry_run: bool = False
    durations_ms: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The summary as one structured log line."""
        return {
            "claimed": self.claimed,
            "reclaimed": self.reclaimed,
            "outcomes": dict(self.outcomes),
            "failures": self.failures,
            "breakerTrippedBy": self.breaker_tripped_by,
            "states": {str(k): v for k, v in sorted(self.states.items())},
            "wouldBe": {str(k): v for k, v in sorted(self.would.items())},
            "released": self.released,
            "lostClaims": self.lost_claims,
            "kinesisCalls": self.kinesis_calls,
            "batch": self.batch,
            "iteratorAgeMs": self.iterator_age_ms,
            "skipped": self.skipped,
            "stoppedBecause": self.stopped_because,
            "finishedPass": self.finished_pass,
            "dryRun": self.dry_run,
            "durationsMs": self.durations_ms,
        }

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts: dict[str, float] = {
            telemetry.CLAIMED: self.claimed,
            telemetry.RECLAIMED: self.reclaimed,
            telemetry.ENQUEUED: self.states.get(int(ProgressState.ENQUEUED), 0),
            telemetry.FAILED: self.failures,
            telemetry.RELEASED: self.released,
            telemetry.LOST_CLAIMS: self.lost_claims,
            telemetry.KINESIS_CALLS: self.kinesis_calls,
            telemetry.BACKPRESSURE_SKIPS: int(self.batch == 0 and self.skipped is not None),
            telemetry.BREAKER_TRIPS: int(self.breaker_tripped_by is not None),
            telemetry.COMPLETED: int(self.finished_pass),
            telemetry.DURATION: sum(self.durations_ms.values()),
        }
        if self.iterator_age_ms is not None:
            counts[telemetry.ITERATOR_AGE] = self.iterator_age_ms
        for state, n in self.states.items():
            counts[telemetry.state_metric(state)] = n
        return counts


class _Clock:
    def __init__(self, summary: IndexSummary) -> None:
        self._summary = summary
        self._start = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self._summary.durations_ms[name] = int((now - self._start) * 1000)
        self._start = now


def run_batch_index(settings: BatchIndexSettings, deps: IndexDeps) -> IndexSummary:
    """One invocation of batch-index."""
    summary = IndexSummary(dry_run=settings.dry_run)
    clock = _Clock(summary)
    margin_ms = settings.stop_margin_seconds * 1000
    if deps.remaining_ms() < margin_ms:
        summary.skipped = "too little time left to start"
        return summary

    verdict = deps.backpressure()
    summary.iterator_age_ms = verdict.iterator_age_ms
    summary.batch = verdict.batch
    clock.lap("backpressure")
    if verdict.batch == 0:
        summary.skipped = verdict.reason
        return summary

    sources = [
        Source(HELD, lease_cutoff(deps.now(), settings.lease_seconds), reclaim=True),
        Source(settings.start_state),
    ]
    claims = deps.table.claim(sources, HELD, verdict.batch, deps.worker)
    summary.claimed = len(claims)
    summary.reclaimed = sum(1 for c in claims if c.reclaimed)
    clock.lap("claim")
    if not claims:
        _finish_if_done(settings, deps, summary)
        return summary

    _Batch(settings, deps, summary, claims).process()
    clock.lap("process")
    return summary


def _finish_if_done(settings: BatchIndexSettings, deps: IndexDeps, summary: IndexSummary) -> None:
    if deps.table.has_any([settings.start_state, HELD]):
        return  # claims still held by live workers, or the index lagging behind
    summary.finished_pass = True
    if deps.disable_schedule is not None and not settings.dry_run:
        deps.disable_schedule()


class _Batch:
    """One batch of claims on its way through projection, publishing and recording."""

    def __init__(
        self,
        settings: BatchIndexSettings,
        deps: IndexDeps,
        summary: IndexSummary,
        claims: list[Claim],
    ) -> None:
        self.settings = settings
        self.deps = deps
        self.summary = summary
        self.unresolved = {c.id: c for c in claims}
        self.claims = claims
        self.breaker = Breaker(settings.breaker_share, settings.breaker_min_results)
        self.ready: list[tuple[str, bytes]] = []
        self.ready_bytes = 0
        self.transitions: list[Transition] = []
        self.publish_error: str | None = None

    def process(self) -> None:
        run: Run[Outcome] = Run()
        try:
            for claim, outcome in run_bounded(
                self.claims, self._project, self.settings.concurrency, self._keep_going, run
            ):
                self.summary.outcomes[_kind(outcome)] += 1
                self.breaker.record(outcome.reason if isinstance(outcome, Failed) else None)
                self._handle(claim, outcome)
            self._flush()
            self.summary.stopped_because = run.stopped_because or self.publish_error
            self.summary.breaker_tripped_by = self.breaker.tripped_by
            for claim in run.not_started:
                self._release(claim)
            self._record()
        finally:
            self._release_leftovers()

    # -- per image ------------------------------------------------------------

    def _project(self, image_id: str) -> Outcome:
        try:
            return self.deps.projector.project(image_id)
        except Exception as error:  # one image's surprise must not sink the batch
            return Failed(image_id, "batch-index", None, f"{type(error).__name__}: {error}")

    def _keep_going(self) -> str | None:
        if self.publish_error is not None:
            return f"thrall's stream refused records: {self.publish_error}"
        if self.breaker.tripped_by is not None:
            return f"breaker tripped: {self.breaker.tripped_by}"
        if self.deps.remaining_ms() < self.settings.stop_margin_seconds * 1000:
            return "invocation running out of time"
        return None

    def _handle(self, claim: Claim, outcome: Outcome) -> None:
        match outcome:
            case Ready():
                if self.settings.dry_run:
                    self._settle(claim, ProgressState.ENQUEUED)
                    return
                self.ready.append((claim.id, outcome.record))
                self.ready_bytes += len(outcome.record) + len(claim.id)
                if (
                    len(self.ready) >= PUT_RECORDS_MAX_RECORDS
                    or self.ready_bytes >= PUT_RECORDS_MAX_BYTES
                ):
                    self._flush()
            case NotFound():
                self._settle(claim, ProgressState.NOT_FOUND)
            case TooBig():
                self._settle(
                    claim,
                    ProgressState.TOO_BIG,
                    error=f"record of {outcome.record_bytes} bytes exceeds {outcome.limit}",
                )
            case Failed() if outcome.known:
                self._settle(claim, ProgressState.KNOWN_ERROR, error=outcome.describe())
            case Failed():
                self._failed(claim, outcome)

    def _flush(self) -> None:
        if not self.ready:
            return
        batch, self.ready, self.ready_bytes = self.ready, [], 0
        result = self.deps.publisher.publish(batch)
        self.summary.kinesis_calls += result.calls
        for image_id in result.accepted:
            self._settle(self.unresolved[image_id], ProgressState.ENQUEUED, attempts=0)
        for image_id, error in result.rejected.items():
            failure = Failed(image_id, "kinesis", None, error)
            self._failed(self.unresolved[image_id], failure)
        for image_id in result.unsent:
            # The stream refused whole calls: not the image's fault.
            self._release(self.unresolved[image_id], error=result.call_error)
        if result.call_error:
            self.publish_error = result.call_error
        self._record()

    # -- recording --------------------------------------------------------------

    def _failed(self, claim: Claim, failure: Failed) -> None:
        self.summary.failures += 1
        attempts = claim.attempts + 1
        if attempts >= self.settings.max_attempts:
            self._settle(
                claim, ProgressState.UNKNOWN_ERROR, error=failure.describe(), attempts=attempts
            )
        else:
            self._settle(
                claim,
                claim.claimed_from,
                error=failure.describe(),
                attempts=attempts,
                label=RESET_LABEL if claim.claimed_from == 0 else None,
            )

    def _settle(
        self,
        claim: Claim,
        state: ProgressState,
        *,
        error: str | None = None,
        attempts: int | None = None,
        label: str | None = None,
    ) -> None:
        if self.settings.dry_run:
            self.summary.would[int(state)] += 1
            self._release(claim)
            return
        self.unresolved.pop(claim.id, None)
        self.transitions.append(
            Transition(
                claim.id,
                HELD,
                state,
                worker=self.deps.worker,
                attempts=attempts,
                error=error,
                label=label,
            )
        )

    def _release(self, claim: Claim, error: str | None = None) -> None:
        self.unresolved.pop(claim.id, None)
        self.summary.released += 1
        self.transitions.append(release_transition(claim, HELD, self.deps.worker, error))

    def _record(self) -> None:
        if not self.transitions:
            return
        batch, self.transitions = self.transitions, []
        applied = self.deps.table.apply(batch)
        for transition, ok in zip(batch, applied, strict=True):
            if ok:
                self.summary.states[int(transition.new)] += 1
            else:
                self.summary.lost_claims += 1

    def _release_leftovers(self) -> None:
        """After a crash mid-batch, give back what was neither recorded nor released."""
        for claim in list(self.unresolved.values()):
            self._release(claim)
        # If this fails too, the lease brings the claims back; the first error is the one raised.
        with contextlib.suppress(Exception):
            self._record()


def _kind(outcome: Outcome) -> str:
    match outcome:
        case Ready():
            return "ready"
        case NotFound():
            return "notFound"
        case TooBig():
            return "tooBig"
        case Failed() if outcome.known:
            return "knownError"
    return "failed"
