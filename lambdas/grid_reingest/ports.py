"""The interfaces the flows work through, and the values that cross them.

Adapters implement them for AWS and the Grid (`adapters/`); `devtools/` has
in-memory versions for fast tests and the pass simulator. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from grid_reingest.domain.claims import Claim, Source, Transition
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest.domain.outcome import Outcome
from grid_reingest.domain.passes import Arming, Pass, Status, Verified
from grid_reingest.domain.states import ProgressState


class ClaimStore(Protocol):
    """Where the images' states live; every write is conditional."""

    def claim_stream(
        self,
        sources: Sequence[Source],
        to_state: ProgressState,
        limit: int,
        invocation: str,
        stop: Callable[[], bool] = ...,
    ) -> Iterator[Claim]:
        """Take up to `limit` items from `sources` into `to_state`, yielding each as it is taken."""
        ...

    def claim(
        self, sources: Sequence[Source], to_state: ProgressState, limit: int, invocation: str
    ) -> list[Claim]:
        """Like claim_stream, all at once."""
        ...

    def apply(self, transitions: Iterable[Transition]) -> list[bool]:
        """Apply transitions: True where applied, False where the item had moved on.

        Raises PartialApply when some writes failed (not a condition: an error),
        saying which did apply, so that the caller repeats only the others.
        """
        ...

    def has_any(self, states: Iterable[ProgressState]) -> bool:
        """Whether at least one item is in one of `states`."""
        ...

    def sample(self, states: Iterable[ProgressState]) -> str | None:
        """The id of one item in one of `states`, or None when there is none."""
        ...

    def oldest_change(self, state: ProgressState) -> datetime | None:
        """When the item of `state` that changed longest ago changed; None when it has none."""
        ...


class PartialApply(Exception):
    """Some transitions of an apply() failed: `applied[i]` is None where write i failed."""

    def __init__(self, applied: list[bool | None], error: BaseException) -> None:
        super().__init__(f"{applied.count(None)} of {len(applied)} writes failed: {error}")
        self.applied = applied
        self.error = error


class Projector(Protocol):
    """One image's projection, as the record batch-index would publish."""

    def project(self, image_id: str) -> Outcome:
        """Never raises for an image's failure: that is a Failed outcome."""
        ...

    def health(self, service: str) -> bool | None:
        """Whether `service` (a Grid service, or image-projection itself) says it is healthy
        on its health route; None when it cannot tell (no such route)."""
        ...


class Probe(Protocol):
    """Asks a service whether it serves, apart from the images failing now
    (domain/systemic.py): the judge of whose a failure is."""

    def healthy(self, service: str, known_good: str | None) -> bool | None:
        """Whether `service` serves the image `known_good` (one it served lately), or, with no
        such image, answers on its health route; None when it cannot tell."""
        ...


@dataclass
class PublishResult:
    """Which images' records the stream accepted, and why the others were not."""

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # one record at a time
    unsent: list[str] = field(default_factory=list)  # whole calls failed: see call_error
    call_error: str | None = None
    calls: int = 0
    # The whole-call failure is the stream's configuration (access, KMS, no such
    # stream, a bad ARN): retrying cannot help.
    refused: bool = False
    # Of `rejected`, those the stream turned away for its throughput (after retries):
    # overload, not the image's fault.
    overloaded: list[str] = field(default_factory=list)
    # Where the accepted records landed: (shard id, sequence number), in order.
    positions: list[tuple[str, int]] = field(default_factory=list)


class Publisher(Protocol):
    """thrall's stream."""

    def publish(self, records: list[tuple[str, bytes]]) -> PublishResult:
        """Send (image id, record data) pairs; the partition key is the image id."""
        ...


@dataclass
class Sent:
    """One call of ready records and the write of its accepted images' state."""

    claims: dict[str, Claim]  # the images of the call, by id
    result: PublishResult
    enqueued: list[Transition]  # the accepted images' new state
    applied: list[bool | None]  # each one's write (None: every try failed)
    error: BaseException | None  # the last write error
    published_at: float = 0.0  # the worker's monotonic clock when the stream answered
    records: dict[str, bytes] = field(default_factory=dict)  # the data sent, by image id


class Outbox(Protocol):
    """Ready records on their way to thrall's stream: sent in calls of many, one call at a
    time and in order, beside the loop; the images a call's answer accepted are then
    written as enqueued (never given back once on the stream)."""

    def add(self, claim: Claim, record: bytes) -> None:
        """One image's record, ready to send."""
        ...

    def add_alone(self, claim: Claim, record: bytes) -> None:
        """One image's record, to go in a call of its own once the stream has had none of
        this outbox's records for a shard's second; what else is ready is held until then."""
        ...

    def due(self, *, eager: bool) -> bool:
        """Whether a call should go now (anything at all, when `eager`: a record to go alone
        may still have to wait for its quiet second)."""
        ...

    def send(self) -> None:
        """Start a call (a record alone once quiet, else what is ready, else none), once the
        previous call is collected."""
        ...

    def collect(self, *, block: bool) -> Sent | None:
        """The call that has ended (waiting for one under way when `block`), or None."""
        ...

    def close(self) -> Sent | None:
        """Wait for the call under way, if any, and take no more."""
        ...


@dataclass(frozen=True)
class Presence:
    """media-api's answer for one image: its HTTP status (None: no answer) and message."""

    status: int | None
    message: str = ""


# media-api's GET /images/{id}, as batch-check asks it.
ImageLookup = Callable[[str], Presence]


class RuleSwitch(Protocol):
    """A worker's own schedule."""

    def disable(self) -> bool:
        """Switch the schedule off; True if this call did."""
        ...

    def enable(self) -> bool:
        """Switch the schedule back on; True if this call did."""
        ...


class Clock(Protocol):
    """Time as the flows see it: the real clock in Lambda, a compressed one in the simulator."""

    def now(self) -> datetime:
        """The current instant (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait."""
        ...


class ControlStore(Protocol):
    """The control item: the operator's knobs and the controller's state."""

    def read(self) -> Control:
        """The item as it is now (defaults when it does not exist yet)."""
        ...

    def save_pace(self, pace: PaceState, expected_version: int) -> bool:
        """Store the controller's state if the item is still at `expected_version`;
        False when another invocation saved first (read again and decide again)."""
        ...

    def set_knobs(self, knobs: Knobs, previous: Knobs | None = None) -> Control:
        """Write the operator's knobs (the controller's state is kept); with `previous`,
        only those that differ from it, so concurrent changes of other knobs survive."""
        ...

    def count_refusal(self, refused: bool) -> int:
        """Count one more invocation whose stream refused its calls (`refused`), or reset the
        count after one that published; the count of consecutive refused invocations."""
        ...


@dataclass
class Observation:
    """What a worker saw since it last asked for the pace."""

    finished: int = 0  # images whose work ended, whatever the outcome
    overloaded: int = 0  # of those, answers that say a service is overloaded
    latencies_ms: list[float] = field(default_factory=list)  # projection times of finished images
    # Records the stream accepted: (shard id, sequence number, monotonic time published).
    published: list[tuple[str, int, float]] = field(default_factory=list)
    # Image-seconds in flight over the stretch (None: not measured).
    busy_seconds: float | None = None
    # The worker starts no more images (it finishes what it holds): its use of its share
    # says nothing of the pass's.
    draining: bool = False


@dataclass(frozen=True)
class PaceDecision:
    """How fast a worker may go for the next stretch, and why."""

    in_flight: int  # images in flight at most; 0: start nothing now
    rate_per_minute: float | None  # starts a minute at most; None: no rate ceiling
    reason: str
    paused: bool = False  # the operator paused the pass: give back what has not started
    # With in_flight 0: the pace expects work to go on in about this long (None: unknown).
    resume_in_seconds: float | None = None


class Pace(Protocol):
    """The controller as a worker uses it."""

    def decide(self, observation: Observation) -> PaceDecision:
        """Report what happened since the last call; the pace for the next stretch."""
        ...

    def leave(self, holding: int = 0) -> None:
        """This worker starts no more work: its share of the pace goes to the others now,
        less the `holding` images it still has in flight (told again as they finish)."""
        ...

    def take_unread(self) -> dict[str, int]:
        """The steps since the last call at which a signal could not be read (and the pace
        degraded to the next one), by metric name."""
        ...


class PassStore(Protocol):
    """The pass records (adapters/dynamodb/passes.py)."""

    def current(self) -> Pass | None:
        """The current pass (running, loading or the last finished), or None."""
        ...

    def start(self, new: Pass) -> Pass:
        """Record `new` as the current pass; PassRunning (adapters) when one still runs."""
        ...

    def save(self, record: Pass, expected: Status) -> bool:
        """Store `record` if the current pass is it, in status `expected`; else False."""
        ...

    def finish(self, ended: Pass) -> bool:
        """Record `ended`, finished, if it still runs: True for the one call that did."""
        ...

    def count_verified(self, verified: Verified) -> bool:
        """Add to the current pass's present and repaired counts, if it is still
        `verified.pass_id` (atomic); else False."""
        ...

    def add_usage(self, gb_seconds: float) -> bool:
        """Add a worker invocation's Lambda time to the current pass if one runs; else False."""
        ...


class PassFacts(Protocol):
    """What the end of a pass reads of the state table for its report."""

    def has_any(self, states: Iterable[ProgressState]) -> bool:
        """Whether at least one item is in one of `states`."""
        ...

    def counts(self, states: Iterable[ProgressState]) -> dict[ProgressState, int]:
        """Items per state, exactly."""
        ...

    def errors(self, states: Iterable[ProgressState], most: int) -> list[tuple[int, str | None]]:
        """(state, last error) of up to `most` items in `states`."""
        ...


class IdSource(Protocol):
    """Where a scheduled repair's ids come from, in parts listed one at a time."""

    def describe(self) -> str:
        """The source in an operator's words (`s3://bucket`, a manifest's URL)."""
        ...

    def parts(self) -> list[str]:
        """The parts of the source, each listed on its own (hex prefixes, data files)."""
        ...

    def ids(self, part: str) -> Iterator[list[str]]:
        """The Grid ids of one part, page by page."""
        ...


class IdLoader(Protocol):
    """The state table as a repair loads its ids."""

    def load(self, ids: Iterable[str], arming: Arming) -> int:
        """Upload `ids` armed for a pass (adapters/dynamodb/upload.py); how many were written
        or re-armed."""
        ...


class Notifier(Protocol):
    """Where a pass's report goes (an SNS topic)."""

    def publish(self, subject: str, text: str) -> None:
        """Send one message."""
        ...
