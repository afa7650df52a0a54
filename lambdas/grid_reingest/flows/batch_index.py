"""batch-index: claim images, project them, publish them on thrall's stream, record each outcome.

Runs continuously inside one invocation (flows/loop.py), as many images in
flight as the pace allows. No AWS here: the ports come in through `IndexDeps`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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
from grid_reingest.domain.thrall_message import (
    PUT_RECORDS_MAX_BYTES,
    PUT_RECORDS_MAX_RECORDS,
    record_size,
)
from grid_reingest.flows.invocation import Limits, LoopDeps, SystemicFailure, rules_of
from grid_reingest.flows.loop import Loop
from grid_reingest.flows.pass_end import PassEnd, end_if_over
from grid_reingest.flows.summary import Summary, finish_if_done
from grid_reingest.flows.triage import FailureTriage, verdict_transition
from grid_reingest.ports import (
    ClaimStore,
    Clock,
    ControlStore,
    Pace,
    Probe,
    Projector,
    Publisher,
    PublishResult,
    RuleSwitch,
)
from grid_reingest.settings import BatchIndexSettings

HELD = ProgressState.IN_PROGRESS
# Ready records are sent once this many wait, or the oldest has waited this
# long: PutRecords calls carry many records without holding any long.
PUBLISH_MIN = 100
PUBLISH_LINGER_SECONDS = 1.0
# Outcomes other than publishing are written in groups too.
RECORD_MIN = 50
# The image-projection function's invoke errors: 429 and 5xx are the Lambda
# service's (throttles, its own faults), never the image's.
INFRASTRUCTURE = frozenset({names.IMAGE_PROJECTION})
# thrall's stream, as a failing service: judged on the window alone (no probe).
STREAM = "kinesis"
# Images in these states were projected: any of them serves as a probe.
PROJECTED = (ProgressState.ENQUEUED, ProgressState.VERIFIED)
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
    worker: str
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

    def as_dict(self) -> dict[str, Any]:
        """The summary as one structured log line."""
        return {
            **super().as_dict(),
            "outcomes": dict(self.outcomes),
            "wouldBe": {str(k): v for k, v in sorted(self.would.items())},
            "kinesisCalls": self.kinesis_calls,
            "kinesisRefused": self.kinesis_refused,
            "skipped": self.skipped,
            "dryRun": self.dry_run,
        }

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts = super().metric_counts()
        counts[names.ENQUEUED] = self.states.get(int(ProgressState.ENQUEUED), 0)
        counts[names.KINESIS_CALLS] = self.kinesis_calls
        counts[names.KINESIS_REFUSED] = self.kinesis_refused
        counts[names.BACKPRESSURE_SKIPS] = int(self.claimed == 0 and self.idle_reason is not None)
        return counts


def run_batch_index(settings: BatchIndexSettings, deps: IndexDeps) -> IndexSummary:
    """One invocation of batch-index; StreamRefused (after recording) when the stream refuses,
    SystemicFailure when the Grid fails for every image alike (domain/systemic.py)."""
    summary = IndexSummary(dry_run=settings.dry_run)
    if deps.remaining_ms() < settings.stop_margin_seconds * 1000:
        summary.skipped = "too little time left to start"
        return summary
    loop = _IndexLoop(settings, deps, summary)
    loop.run()
    summary.systemic = loop.triage.stop_reason
    if summary.claimed == 0 and summary.idle_reason is not None:
        summary.skipped = summary.idle_reason
    if loop.refused is not None:
        _count_refusal(deps, summary, refused=True)
        raise StreamRefused(f"thrall's stream refused records: {loop.refused}", summary)
    if summary.systemic is not None:
        raise SystemicFailure(summary.systemic, summary)
    if loop.verified:
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
class _Sent:
    """One publish and the write of its accepted images' state, as the sender left them."""

    claims: dict[str, Claim]
    result: PublishResult
    enqueued: list[Transition]
    applied: list[bool | None]
    error: BaseException | None
    published_at: float = 0.0  # the worker's monotonic clock when the stream answered


class _IndexLoop(Loop[Outcome]):
    held = HELD

    def __init__(self, settings: BatchIndexSettings, deps: IndexDeps, summary: IndexSummary):
        limits = Limits.of(settings)
        loop_deps = LoopDeps(deps.store, deps.pace, deps.clock, deps.remaining_ms, deps.worker)
        super().__init__(loop_deps, limits, summary)
        self.settings = settings
        self.index = deps
        self.index_summary = summary
        self.rules = rules_of(settings)
        self.triage = FailureTriage(
            Judge(self.rules),
            deps.probe,
            deps.clock,
            lambda: deps.store.sample(PROJECTED),
            unprobed=[STREAM],
        )
        self.ready: list[tuple[Claim, Ready]] = []
        self.ready_bytes = 0
        self.ready_since: float | None = None
        self.sender = ThreadPoolExecutor(1, thread_name_prefix="publish")
        self.sending: Future[_Sent] | None = None
        self.verified = False  # the stream accepted a call of this invocation
        self.refused: str | None = None
        self.call_error: str | None = None

    def sources(self) -> Sequence[Source]:
        cutoff = lease_cutoff(self.deps.clock.now(), self.settings.lease_seconds)
        return [
            Source(HELD, cutoff, reclaim=True),
            Source(self.settings.start_state, self.started_at),
        ]

    def work(self, image_id: str) -> Outcome:
        return self.index.projector.project(image_id)

    def surprise(self, image_id: str, error: Exception) -> Outcome:
        return Failed(image_id, "batch-index", None, f"{type(error).__name__}: {error}")

    def halt(self) -> str | None:
        if self.refused is not None or self.call_error is not None:
            return f"thrall's stream refused records: {self.refused or self.call_error}"
        return self.triage.stop_reason

    def cap(self, limit: int) -> int:
        # Until the stream has taken a call, one image at a time: a stream that
        # refuses (no access, a KMS key, a wrong ARN) wastes one projection, not a wave.
        return limit if self.verified or self.settings.dry_run else min(limit, 1)

    def finish(self, claim: Claim, result: Outcome) -> bool:
        summary = self.index_summary
        summary.outcomes[_kind(result)] += 1
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
                if self.ready_since is None:
                    self.ready_since = self.deps.clock.monotonic()
                self.ready.append((claim, result))
                self.ready_bytes += record_size(claim.id, result.record)
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

    def flush(self, final: bool) -> None:
        self._collect_sent(block=final)
        if self.ready and (final or self._publish_due()):
            self._collect_sent(block=True)  # one call at a time, in order
            self._publish()
            if final or not self.verified:
                self._collect_sent(block=True)
        self._settle_failures(final=final)
        if final or len(self.pending) >= RECORD_MIN or not self.in_flight:
            self.record(self.take_pending())

    def settle_background(self) -> None:
        self.sender.shutdown(wait=True)
        self._collect_sent(block=True)
        self.triage.close()

    def _publish_due(self) -> bool:
        lingered = (
            self.ready_since is not None
            and self.deps.clock.monotonic() - self.ready_since >= PUBLISH_LINGER_SECONDS
        )
        return (
            not self.verified
            or lingered
            or len(self.ready) >= PUBLISH_MIN
            or len(self.ready) >= PUT_RECORDS_MAX_RECORDS
            or self.ready_bytes >= PUT_RECORDS_MAX_BYTES
        )

    def _publish(self) -> None:
        """Send the ready records in the background: the loop keeps starting images meanwhile."""
        ready, self.ready, self.ready_bytes, self.ready_since = self.ready, [], 0, None
        for claim, outcome in ready:
            if outcome.image_id != claim.id:
                raise RecordMismatch(
                    f"record of image {outcome.image_id} about to be published as {claim.id}"
                )
        self.sending = self.sender.submit(self._send, [(c, o.record) for c, o in ready])

    def _send(self, ready: list[tuple[Claim, bytes]]) -> _Sent:
        """Publish, and write the accepted images' new state (the write repeated until done:
        never given back once on the stream). Touches nothing of the loop."""
        result = self.index.publisher.publish([(claim.id, data) for claim, data in ready])
        published_at = self.deps.clock.monotonic()
        claims = {c.id: c for c, _ in ready}
        enqueued = [
            outcome_transition(
                claims[i], HELD, ProgressState.ENQUEUED, self.deps.worker, attempts=0
            )
            for i in result.accepted
        ]
        return _Sent(
            claims,
            result,
            enqueued,
            *self.apply_with_tries(enqueued),
            published_at=published_at,
        )

    def _collect_sent(self, *, block: bool) -> None:
        if self.sending is None or (not block and not self.sending.done()):
            return
        sending, self.sending = self.sending, None
        sent = sending.result()
        result = sent.result
        self._absorb(result)
        self.seen.published += [(s, q, sent.published_at) for s, q in result.positions]
        overloaded = set(result.overloaded)
        for _ in result.accepted:
            self.triage.served(channel=STREAM)
        for image_id, error in result.rejected.items():
            cause = Cause.OVERLOAD if image_id in overloaded else Cause.ERROR
            if image_id in overloaded:
                self.summary.overloaded += 1
                self.seen.overloaded += 1
            claim = sent.claims[image_id]
            self.triage.failed(claim, Symptom(STREAM, cause), f"kinesis: {error}", STREAM)
        self._settle_failures(final=False)
        # Whole calls failed: not the images' fault, no attempt counted.
        for image_id in result.unsent:
            self.release(sent.claims[image_id], result.call_error)
        applied = self.written(sent.enqueued, sent.applied, sent.error)
        for transition in sent.enqueued:
            self.unresolved.pop(transition.id, None)
        self.summary.count(sent.enqueued, applied)

    def _absorb(self, result: PublishResult) -> None:
        self.index_summary.kinesis_calls += result.calls
        if result.accepted:
            self.verified = True
        if result.call_error is None:
            return
        if result.refused:
            self.refused = result.call_error
            self.index_summary.kinesis_refused += 1
        else:
            self.call_error = result.call_error

    def _settle_failures(self, *, final: bool) -> None:
        """Failures whose verdict is known (flows/triage.py)."""
        for decided in self.triage.decide(final=final):
            transition = verdict_transition(
                decided, HELD, self.deps.worker, self.settings.max_attempts, self.summary
            )
            if decided.verdict is Verdict.SYSTEMIC:
                self.pending.append(transition)  # given back, dry run or not
            else:
                self._settle_transition(transition)

    def _settle(self, claim: Claim, state: ProgressState, *, error: str | None = None) -> None:
        self._settle_transition(
            outcome_transition(claim, HELD, state, self.deps.worker, error=error)
        )

    def _settle_transition(self, transition: Transition) -> None:
        if self.settings.dry_run:
            self.index_summary.would[int(transition.new)] += 1
            self.release(self.unresolved[transition.id])
            return
        self.pending.append(transition)


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
