"""batch-index: one invocation's work, over the state table, a projector and thrall's stream.

Claim ids (conditionally), project them with bounded concurrency, publish the
ready ones on thrall's stream, record each image's outcome on its own item.
No AWS here: the ports come in through `IndexDeps`.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grid_reingest import names
from grid_reingest.domain.backpressure import Verdict
from grid_reingest.domain.claims import (
    Claim,
    Source,
    Transition,
    failure_transition,
    lease_cutoff,
    release_transition,
)
from grid_reingest.domain.outcome import Failed, NotFound, Outcome, Ready, TooBig
from grid_reingest.domain.read_ahead import read_ahead
from grid_reingest.domain.runner import Breaker, Run, run_bounded
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.thrall_message import (
    PUT_RECORDS_MAX_BYTES,
    PUT_RECORDS_MAX_RECORDS,
    record_size,
)
from grid_reingest.flows.summary import Summary, finish_if_done
from grid_reingest.ports import ClaimStore, Projector, Publisher, PublishResult, RuleSwitch
from grid_reingest.settings import BatchIndexSettings

HELD = ProgressState.IN_PROGRESS
# Records published before the batch's last images finish: only this many or
# more, so that every PutRecords call but the last carries at least 100.
EARLY_PUBLISH_MIN = 100


@dataclass
class IndexDeps:
    """Everything one invocation works with."""

    table: ClaimStore
    projector: Projector
    publisher: Publisher
    backpressure: Callable[[], Verdict]
    disable_schedule: RuleSwitch | None  # None: no rule configured
    remaining_ms: Callable[[], int]
    worker: str
    now: Callable[[], datetime]


@dataclass
class IndexSummary(Summary):
    """What one invocation of batch-index did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    would: Counter[int] = field(default_factory=Counter)  # dry run: states not written
    kinesis_calls: int = 0
    breaker_tripped_by: str | None = None
    batch: int = 0
    iterator_age_ms: float | None = None
    skipped: str | None = None
    dry_run: bool = False
    durations_ms: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The summary as one structured log line."""
        return {
            **super().as_dict(),
            "outcomes": dict(self.outcomes),
            "breakerTrippedBy": self.breaker_tripped_by,
            "wouldBe": {str(k): v for k, v in sorted(self.would.items())},
            "kinesisCalls": self.kinesis_calls,
            "batch": self.batch,
            "iteratorAgeMs": self.iterator_age_ms,
            "skipped": self.skipped,
            "dryRun": self.dry_run,
            "durationsMs": self.durations_ms,
        }

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts = super().metric_counts()
        counts[names.ENQUEUED] = self.states.get(int(ProgressState.ENQUEUED), 0)
        counts[names.KINESIS_CALLS] = self.kinesis_calls
        counts[names.BACKPRESSURE_SKIPS] = int(self.batch == 0 and self.skipped is not None)
        counts[names.BREAKER_TRIPS] = int(self.breaker_tripped_by is not None)
        counts[names.DURATION] = sum(self.durations_ms.values())
        if self.iterator_age_ms is not None:
            counts[names.ITERATOR_AGE] = self.iterator_age_ms
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
    batch = _Batch(settings, deps, summary, clock)
    # Projection starts on the first claims while the next are taken one round ahead.
    claims = read_ahead(
        [deps.table.claim_stream(sources, HELD, verdict.batch, deps.worker, stop=batch.stopping)],
        depth=settings.concurrency,
        name="claims",
    )
    batch.process(claims)
    if summary.claimed == 0:
        # A dry run changes nothing, its schedule included.
        disable = None if settings.dry_run else deps.disable_schedule
        finish_if_done(deps.table, [settings.start_state, HELD], summary, disable)
    return summary


@dataclass
class _Sent:
    """One publish of ready records and the outcomes it wrote."""

    result: PublishResult
    transitions: list[Transition]
    applied: list[bool]
    failures: int


class _Batch:
    """One batch of claims on its way through projection, publishing and recording."""

    def __init__(
        self,
        settings: BatchIndexSettings,
        deps: IndexDeps,
        summary: IndexSummary,
        clock: _Clock,
    ) -> None:
        self.settings = settings
        self.deps = deps
        self.summary = summary
        self.clock = clock
        self.run = Run()
        self.unresolved: dict[str, Claim] = {}
        self.breaker = Breaker(settings.breaker_share, settings.breaker_min_results)
        self.ready: list[tuple[Claim, bytes]] = []
        self.ready_bytes = 0
        self.transitions: list[Transition] = []
        self.publish_error: str | None = None
        self.background: Future[_Sent] | None = None

    def stopping(self) -> bool:
        """True once the batch stopped starting images (no more claims wanted)."""
        return self.run.stopped_because is not None

    def process(self, claims: Iterable[Claim]) -> None:
        sender = ThreadPoolExecutor(1, thread_name_prefix="publish")
        try:
            for claim, outcome in run_bounded(
                claims,
                self._project,
                self.settings.concurrency,
                self._keep_going,
                self.run,
                on_start=self._track,
            ):
                self.summary.outcomes[_kind(outcome)] += 1
                self.breaker.record(outcome.reason if isinstance(outcome, Failed) else None)
                self._handle(claim, outcome)
                if (
                    self.run.all_started
                    and self.background is None
                    and len(self.ready) >= EARLY_PUBLISH_MIN
                ):
                    # Every image has started: publish what is ready while the
                    # last ones finish, then only the stragglers remain to send.
                    self.background = sender.submit(self._send, self._take_ready())
            self.clock.lap("project")
            final = self._send(self._take_ready()) if self.ready else None
            self._join_background()
            if final is not None:
                self._absorb(final)
            self.clock.lap("publish")
            self.summary.stopped_because = self.run.stopped_because or self.publish_error
            self.summary.breaker_tripped_by = self.breaker.tripped_by
            for claim in self.run.not_started:
                self._track(claim)
                self._release(claim)
            self._record()
            self.clock.lap("record")
        finally:
            self._join_background()
            sender.shutdown()
            self._release_leftovers()

    # -- per image ------------------------------------------------------------

    def _track(self, claim: Claim) -> None:
        self.unresolved[claim.id] = claim
        self.summary.claimed += 1
        self.summary.reclaimed += int(claim.reclaimed)

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
                self.ready.append((claim, outcome.record))
                self.ready_bytes += record_size(claim.id, outcome.record)
                if (
                    len(self.ready) >= PUT_RECORDS_MAX_RECORDS
                    or self.ready_bytes >= PUT_RECORDS_MAX_BYTES
                ):
                    self._absorb(self._send(self._take_ready()))
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
                self.summary.failures += 1
                self._settle_transition(self._failure(claim, outcome))

    # -- publishing -------------------------------------------------------------

    def _take_ready(self) -> list[tuple[Claim, bytes]]:
        ready, self.ready, self.ready_bytes = self.ready, [], 0
        return ready

    def _send(self, ready: list[tuple[Claim, bytes]]) -> _Sent:
        """Publish records and write their images' outcomes; touches no state of the batch,
        so it may run beside the main thread."""
        claims = {claim.id: claim for claim, _ in ready}
        result = self.deps.publisher.publish([(c.id, data) for c, data in ready])
        transitions = [
            self._transition(claims[i], ProgressState.ENQUEUED, attempts=0) for i in result.accepted
        ]
        transitions += [
            self._failure(claims[i], Failed(i, "kinesis", None, error))
            for i, error in result.rejected.items()
        ]
        # The stream refused whole calls: not the images' fault, no attempt counted.
        transitions += [
            release_transition(claims[i], HELD, self.deps.worker, result.call_error)
            for i in result.unsent
        ]
        return _Sent(
            result, transitions, self.deps.table.apply(transitions), failures=len(result.rejected)
        )

    def _absorb(self, sent: _Sent) -> None:
        self.summary.kinesis_calls += sent.result.calls
        self.summary.failures += sent.failures
        self.summary.released += len(sent.result.unsent)
        if sent.result.call_error:
            self.publish_error = sent.result.call_error
        self._count(sent.transitions, sent.applied)

    def _join_background(self) -> None:
        if self.background is None:
            return
        background, self.background = self.background, None
        # Should it have failed, its images stay unresolved and are given back.
        with contextlib.suppress(Exception):
            self._absorb(background.result())

    # -- recording --------------------------------------------------------------

    def _transition(
        self,
        claim: Claim,
        state: ProgressState,
        *,
        error: str | None = None,
        attempts: int | None = None,
    ) -> Transition:
        return Transition(
            claim.id, HELD, state, worker=self.deps.worker, attempts=attempts, error=error
        )

    def _failure(self, claim: Claim, failure: Failed) -> Transition:
        return failure_transition(
            claim, HELD, self.deps.worker, failure.describe(), self.settings.max_attempts
        )

    def _settle(self, claim: Claim, state: ProgressState, *, error: str | None = None) -> None:
        self._settle_transition(self._transition(claim, state, error=error))

    def _settle_transition(self, transition: Transition) -> None:
        if self.settings.dry_run:
            self.summary.would[int(transition.new)] += 1
            self._release(self.unresolved[transition.id])
            return
        self.transitions.append(transition)

    def _release(self, claim: Claim) -> None:
        self.summary.released += 1
        self.transitions.append(release_transition(claim, HELD, self.deps.worker))

    def _record(self) -> None:
        if not self.transitions:
            return
        batch, self.transitions = self.transitions, []
        self._count(batch, self.deps.table.apply(batch))

    def _count(self, transitions: list[Transition], applied: list[bool]) -> None:
        for transition in transitions:
            self.unresolved.pop(transition.id, None)
        self.summary.count(transitions, applied)

    def _release_leftovers(self) -> None:
        """After a crash mid-batch, give back what was neither recorded nor released."""
        self.transitions = [
            release_transition(claim, HELD, self.deps.worker) for claim in self.unresolved.values()
        ]
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
