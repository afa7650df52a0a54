"""batch-index: claim images, project them, publish them on thrall's stream, record each outcome.

Runs continuously inside one invocation (flows/loop.py, given this module's
strategy), as many images in flight as the pace allows; ready records go out
through the outbox (flows/outbox.py). No AWS here: the ports come in through
`IndexDeps`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from grid_reingest import names
from grid_reingest.domain.claims import (
    Claim,
    Source,
    Transition,
    lease_cutoff,
    outcome_transition,
)
from grid_reingest.domain.outcome import Failed, NotFound, Outcome, Ready, TooBig
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import Cause, Judge, Symptom, Verdict, cause_of
from grid_reingest.flows.invocation import Limits, LoopDeps, SystemicFailure, rules_of
from grid_reingest.flows.loop import Loop
from grid_reingest.flows.outbox import QUIET_SECONDS, BackgroundOutbox, enqueue_writer
from grid_reingest.flows.pass_end import PassEnd, end_if_over
from grid_reingest.flows.record import Recorder
from grid_reingest.flows.strategy import Flushed
from grid_reingest.flows.summary import Summary, finish_if_done
from grid_reingest.flows.triage import FailureTriage, verdict_transition
from grid_reingest.flows.turned_away import Next, TurnedAway
from grid_reingest.ports import (
    ClaimStore,
    Clock,
    ControlStore,
    Outbox,
    Pace,
    Probe,
    Projector,
    Publisher,
    PublishResult,
    RuleSwitch,
    Sent,
)
from grid_reingest.settings import BatchIndexSettings

HELD = ProgressState.IN_PROGRESS
# Outcomes other than publishing are written in groups too.
RECORD_MIN = 50
# The image-projection function's invoke errors: 429 and 5xx are the Lambda
# service's (throttles, its own faults), never the image's.
INFRASTRUCTURE = frozenset({names.IMAGE_PROJECTION})
# thrall's stream, as a failing service: judged on the window alone (no probe).
STREAM = "kinesis"
# Images in these states were projected: any of them serves as a probe.
PROJECTED = (ProgressState.ENQUEUED, ProgressState.VERIFIED)
# The invocation's last flush sends what went again after this long, until each record is
# taken or judged: a busy second is over by then, and a record to go alone has its quiet
# second.
RESEND_WAIT_SECONDS = QUIET_SECONDS
# Invocations in a row whose stream refused its calls before the worker switches
# its own schedule off (the configuration needs a person).
REFUSALS_BEFORE_STOP = 3


class StreamRefused(RuntimeError):
    """thrall's stream refused whole calls for its configuration; raised after recording."""

    def __init__(self, message: str, summary: IndexSummary) -> None:
        super().__init__(message)
        self.summary = summary


class RecordMismatch(RuntimeError):
    """A record was about to be published under another image's id."""


@dataclass
class IndexDeps:
    """Everything one invocation works with."""

    store: ClaimStore
    projector: Projector
    publisher: Publisher
    pace: Pace
    clock: Clock
    remaining_ms: Callable[[], int]
    invocation: str
    rule: RuleSwitch | None  # None: no rule configured
    control: ControlStore | None = None  # counts refused invocations; None: not counted
    probe: Probe | None = None  # decides whose a failure is; None: the window alone
    pass_end: PassEnd | None = None  # ends the pass once nothing is left; None: never


@dataclass
class IndexSummary(Summary):
    """What one invocation of batch-index did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    would: Counter[int] = field(default_factory=Counter)  # dry run: states not written
    kinesis_calls: int = 0
    kinesis_refused: int = 0  # whole calls refused for the stream's configuration
    skipped: str | None = None
    dry_run: bool = False

    def details(self) -> dict[str, Any]:
        """What only batch-index counts, for the log line."""
        return {
            "outcomes": dict(self.outcomes),
            "wouldBe": {str(k): v for k, v in sorted(self.would.items())},
            "kinesisCalls": self.kinesis_calls,
            "kinesisRefused": self.kinesis_refused,
            "skipped": self.skipped,
            "dryRun": self.dry_run,
        }

    def worker_metrics(self) -> dict[str, float]:
        """What only batch-index counts, as metrics (names from telemetry)."""
        return {
            names.ENQUEUED: self.states.get(int(ProgressState.ENQUEUED), 0),
            names.KINESIS_CALLS: self.kinesis_calls,
            names.KINESIS_REFUSED: self.kinesis_refused,
            names.BACKPRESSURE_SKIPS: int(self.claimed == 0 and self.idle_reason is not None),
        }


def run_batch_index(settings: BatchIndexSettings, deps: IndexDeps) -> IndexSummary:
    """One invocation of batch-index; StreamRefused (after recording) when the stream refuses,
    SystemicFailure when the Grid fails for every image alike (domain/systemic.py)."""
    summary = IndexSummary(dry_run=settings.dry_run)
    limits = Limits.of(settings)
    if limits.out_of_time(deps.remaining_ms()):
        summary.skipped = "too little time left to start"
        return summary
    recorder = Recorder(HELD, LoopDeps.of(deps), limits, summary)
    writer = enqueue_writer(recorder, deps.invocation, HELD)
    outbox = BackgroundOutbox(deps.publisher, deps.clock, writer)
    triage = FailureTriage(
        Judge(rules_of(settings)),
        deps.probe,
        deps.clock,
        lambda: deps.store.sample(PROJECTED),
        unprobed=[STREAM],
    )
    index = _IndexStrategy(settings, deps, summary, recorder, outbox, triage)
    loop = Loop(recorder, index)
    loop.run()
    summary.systemic = index.triage.stop_reason
    if summary.claimed == 0 and summary.idle_reason is not None:
        summary.skipped = summary.idle_reason
    if index.refused is not None:
        _count_refusal(deps, summary, refused=True)
        raise StreamRefused(f"thrall's stream refused records: {index.refused}", summary)
    if summary.systemic is not None:
        raise SystemicFailure(summary.systemic, summary)
    if index.verified:
        _count_refusal(deps, summary, refused=False)
    if loop.exhausted and not settings.dry_run:
        # A dry run changes nothing, its schedule included.
        finish_if_done(deps.store, [settings.start_state, HELD], summary, deps.rule)
        end_if_over(deps.pass_end, summary)
    return summary


def _count_refusal(deps: IndexDeps, summary: IndexSummary, *, refused: bool) -> None:
    if deps.control is None:
        return
    runs = deps.control.count_refusal(refused)
    if refused and runs >= REFUSALS_BEFORE_STOP and deps.rule is not None:
        deps.rule.disable()
        summary.stopped_because = (
            f"{summary.stopped_because}; {runs} invocations in a row refused: schedule switched off"
        )


@dataclass
class _IndexStrategy:
    """The loop's strategy for batch-index (flows/loop.py): project, publish, judge failures."""

    # An image's place in 0 says nothing: what this invocation gives back waits for the next.
    keeps_place: ClassVar[bool] = False
    settings: BatchIndexSettings
    deps: IndexDeps
    summary: IndexSummary
    recorder: Recorder
    outbox: Outbox
    triage: FailureTriage
    verified: bool = False  # the stream accepted a call of this invocation
    refused: str | None = None  # why the stream refused a whole call for its configuration
    call_error: str | None = None  # why a whole call failed otherwise
    turned_away: TurnedAway = field(default_factory=TurnedAway)  # flows/turned_away.py

    def sources(self, started_at: datetime) -> Sequence[Source]:
        cutoff = lease_cutoff(self.deps.clock.now(), self.settings.loop.lease_seconds)
        return [
            Source(HELD, cutoff, reclaim=True),
            Source(self.settings.start_state, started_at),
        ]

    def work(self, image_id: str) -> Outcome:
        return self.deps.projector.project(image_id)

    def surprise(self, image_id: str, error: Exception) -> Outcome:
        return Failed(image_id, "batch-index", None, f"{type(error).__name__}: {error}")

    def halt(self) -> str | None:
        if self.refused is not None or self.call_error is not None:
            return f"thrall's stream refused records: {self.refused or self.call_error}"
        return self.triage.stop_reason

    def admit(self, claim: Claim) -> float | None:
        # What this invocation put back waits for the next one (sources()' cutoff).
        return None

    def cap(self, limit: int) -> int:
        # Until the stream has taken a call, one image at a time: a stream that
        # refuses (no access, a KMS key, a wrong ARN) wastes one projection, not a wave.
        return limit if self.verified or self.settings.dry_run else min(limit, 1)

    def again_in(self) -> float | None:
        return None

    def timed(self, result: Outcome) -> bool:
        return not isinstance(result, Failed)

    def finish(self, claim: Claim, result: Outcome) -> bool:
        self.summary.outcomes[_kind(result)] += 1
        overloaded = False
        if isinstance(result, Failed) and not result.known:
            infrastructure = result.service in INFRASTRUCTURE
            symptom = Symptom(
                result.service, cause_of(result.status, infrastructure=infrastructure)
            )
            overloaded = symptom.cause is Cause.OVERLOAD
            self.triage.failed(claim, symptom, result.describe())
        else:
            self.triage.served(claim.id if isinstance(result, Ready) else None)
        match result:
            case Ready() if self.settings.dry_run:
                self._settle(claim, ProgressState.ENQUEUED)
            case Ready():
                if result.image_id != claim.id:
                    raise RecordMismatch(
                        f"record of image {result.image_id} about to be published as {claim.id}"
                    )
                self.outbox.add(claim, result.record)
            case NotFound():
                self._settle(claim, ProgressState.NOT_FOUND)
            case TooBig():
                error = f"record of {result.record_bytes} bytes exceeds {result.limit}"
                self._settle(claim, ProgressState.TOO_BIG, error=error)
            case Failed() if result.known:
                self._settle(claim, ProgressState.KNOWN_ERROR, error=result.describe())
        self._settle_failures(final=False)
        return overloaded

    # -- publishing and recording --------------------------------------------------------

    def flush(self, *, final: bool, idle: bool) -> Flushed:
        flushed = Flushed()
        self._take(self.outbox.collect(block=final), flushed)
        if self.outbox.due(eager=final or not self.verified):
            self._take(self.outbox.collect(block=True), flushed)  # one call at a time, in order
            self.outbox.send()
            if final or not self.verified:
                self._take(self.outbox.collect(block=True), flushed)
        while final and self.outbox.due(eager=True) and self._time_to_resend():
            # What the stream turned away in the last calls goes again (a bounded number
            # of times) before the invocation ends; what is left then goes back unjudged.
            self.deps.clock.sleep(RESEND_WAIT_SECONDS)
            self.outbox.send()
            self._take(self.outbox.collect(block=True), flushed)
        self._settle_failures(final=final)
        if final or len(self.recorder.pending) >= RECORD_MIN or idle:
            self.recorder.record(self.recorder.take_pending())
        return flushed

    def _time_to_resend(self) -> bool:
        """Whether a resend and the writes after it still fit in the time left."""
        left_ms = self.deps.remaining_ms() - RESEND_WAIT_SECONDS * 1000
        return left_ms >= self.recorder.limits.record_budget_ms

    def close(self) -> None:
        flushed = Flushed()
        self._take(self.outbox.close(), flushed, again=False)  # the outbox takes no more
        self.summary.overloaded += flushed.overloaded
        self.triage.close()

    def _take(self, sent: Sent | None, flushed: Flushed, *, again: bool = True) -> None:
        """One call's answer: accepted images written, the rest judged or given back; with
        `again`, a record turned away for throughput may go again first
        (flows/turned_away.py)."""
        if sent is None:
            return
        result = sent.result
        self._absorb(result)
        flushed.published += [(s, q, sent.published_at) for s, q in result.positions]
        overloaded = set(result.overloaded)
        for _ in result.accepted:
            self.triage.served(channel=STREAM)
        taken = [(image_id, sent.records[image_id]) for image_id in result.accepted]
        self.turned_away.accepted(sent.published_at, taken)
        for image_id, error in result.rejected.items():
            cause = Cause.OVERLOAD if image_id in overloaded else Cause.ERROR
            flushed.overloaded += int(image_id in overloaded)
            claim = sent.claims[image_id]
            symptom = Symptom(STREAM, cause)
            if cause is Cause.OVERLOAD:
                self._turned_away(claim, symptom, error, sent, again=again)
            else:
                self.triage.failed(claim, symptom, f"kinesis: {error}", STREAM)
        self._settle_failures(final=False)
        # Whole calls failed: not the images' fault, no attempt counted.
        for image_id in result.unsent:
            self.recorder.release(sent.claims[image_id], result.call_error)
        applied = self.recorder.written(sent.enqueued, sent.applied, sent.error)
        self.recorder.resolved(sent.enqueued, applied)

    def _turned_away(
        self, claim: Claim, symptom: Symptom, error: str, sent: Sent, *, again: bool
    ) -> None:
        data = sent.records[claim.id]
        match self.turned_away.judge(claim.id, data, sent.published_at, resend=again):
            # Counted all the same when sent again: the window must show how much the
            # stream turns away, or a stream turning away half of every call would look
            # healthy.
            case Next.AGAIN:
                self.outbox.add(claim, data)
                self.triage.counted(symptom, STREAM)
            case Next.QUIET:
                self.outbox.add_alone(claim, data)
                self.triage.counted(symptom, STREAM)
            case Next.OWN:
                self.triage.own(claim, symptom, f"kinesis: {error}", STREAM)
            case Next.SYSTEM:
                self.triage.failed(claim, symptom, f"kinesis: {error}", STREAM)

    def _absorb(self, result: PublishResult) -> None:
        self.summary.kinesis_calls += result.calls
        if result.accepted:
            self.verified = True
        if result.call_error is None:
            return
        if result.refused:
            self.refused = result.call_error
            self.summary.kinesis_refused += 1
        else:
            self.call_error = result.call_error

    def _settle_failures(self, *, final: bool) -> None:
        """Failures whose verdict is known (flows/triage.py)."""
        for decided in self.triage.decide(final=final):
            transition = verdict_transition(
                decided, HELD, self.deps.invocation, self.settings.loop.max_attempts, self.summary
            )
            if decided.verdict is Verdict.SYSTEMIC:
                self.recorder.add(transition)  # given back, dry run or not
            else:
                self._settle_transition(transition)

    def _settle(self, claim: Claim, state: ProgressState, *, error: str | None = None) -> None:
        self._settle_transition(
            outcome_transition(claim, HELD, state, self.deps.invocation, error=error)
        )

    def _settle_transition(self, transition: Transition) -> None:
        if self.settings.dry_run:
            self.summary.would[int(transition.new)] += 1
            self.recorder.release(self.recorder.unresolved[transition.id])
            return
        self.recorder.add(transition)


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
