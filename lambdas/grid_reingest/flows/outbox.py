"""batch-index's outbox: ready records sent to thrall's stream in the background.

Records wait until enough are ready (or the oldest has waited a second), so
that a PutRecords call carries many without holding any long; one call runs
at a time, in order, on a thread of its own, while the loop keeps starting
images. After each call the images the stream accepted are written as
enqueued, on the same thread: once on the stream an image is never given
back, so that write is repeated until done (flows/record.py).

A record may also be sent alone, in a quiet second: in a call of its own,
once a shard's second has passed since the outbox's last call was answered
(flows/turned_away.py says when). What else is ready waits for that second,
then one call of it goes before the next record sent alone: each costs the
others a second's wait at most.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from grid_reingest.domain.claims import Claim, Transition, outcome_transition
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.thrall_message import (
    PUT_RECORDS_MAX_BYTES,
    PUT_RECORDS_MAX_RECORDS,
    SHARD_LIMIT_SECONDS,
    record_size,
)
from grid_reingest.flows.record import Recorder
from grid_reingest.ports import Clock, Publisher, Sent

# Ready records are sent once this many wait, or the oldest has waited this
# long: PutRecords calls carry many records without holding any long.
PUBLISH_MIN = 100
PUBLISH_LINGER_SECONDS = 1.0
# A record sent alone waits this long after the last call's answer: the outbox's own
# records are then out of its shard's second (with a margin, whatever the clock's floats).
QUIET_SECONDS = SHARD_LIMIT_SECONDS + 0.1

# Writes the accepted images' new state: the transitions, each one's result (None where
# every try failed) and the last error.
EnqueueWriter = Callable[
    [list[Claim]], tuple[list[Transition], list[bool | None], BaseException | None]
]


class BackgroundOutbox:
    """The Outbox port on one background thread (see the module's text)."""

    def __init__(self, publisher: Publisher, clock: Clock, write_enqueued: EnqueueWriter):
        self._publisher = publisher
        self._clock = clock
        self._write_enqueued = write_enqueued
        self._ready: list[tuple[Claim, bytes]] = []
        self._ready_bytes = 0
        self._ready_since: float | None = None
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="publish")
        self._sending: Future[Sent] | None = None
        self._alone: list[tuple[Claim, bytes]] = []
        self._answered_at: float | None = None  # the last collected call's answer (monotonic)
        self._ready_turn = False  # a call of what is ready goes before the next alone one

    def add(self, claim: Claim, record: bytes) -> None:
        """One image's record, ready to send."""
        if self._ready_since is None:
            self._ready_since = self._clock.monotonic()
        self._ready.append((claim, record))
        self._ready_bytes += record_size(claim.id, record)

    def add_alone(self, claim: Claim, record: bytes) -> None:
        """One image's record, to go in a call of its own once QUIET_SECONDS have passed since
        the last call's answer; what else is ready waits until then."""
        self._alone.append((claim, record))

    def due(self, *, eager: bool) -> bool:
        """Whether a call should go now (anything at all, when `eager`: the caller then waits
        out a quiet second itself if `send` has nothing it may send yet)."""
        if self._alone and self._quiet():
            return True
        if not self._ready:
            return eager and bool(self._alone)
        if self._alone and not self._ready_turn and not eager:
            return False  # held for the quiet second
        lingered = (
            self._ready_since is not None
            and self._clock.monotonic() - self._ready_since >= PUBLISH_LINGER_SECONDS
        )
        return (
            eager
            or lingered
            or len(self._ready) >= min(PUBLISH_MIN, PUT_RECORDS_MAX_RECORDS)
            or self._ready_bytes >= PUT_RECORDS_MAX_BYTES
        )

    def send(self) -> None:
        """Start a call: a record to go alone once its quiet second has come, else what is
        ready, else none. The previous call must have been collected."""
        if self._sending is not None:
            raise RuntimeError("a call is still under way: collect it first")
        if self._alone and self._quiet():
            self._ready_turn = True
            self._sending = self._sender.submit(self._send, [self._alone.pop(0)])
            return
        if not self._ready:
            return
        self._ready_turn = False
        ready, self._ready, self._ready_bytes, self._ready_since = self._ready, [], 0, None
        self._sending = self._sender.submit(self._send, ready)

    def _quiet(self) -> bool:
        """No call under way, and the last one answered QUIET_SECONDS ago (or none sent)."""
        return self._sending is None and (
            self._answered_at is None
            or self._clock.monotonic() - self._answered_at >= QUIET_SECONDS
        )

    def collect(self, *, block: bool) -> Sent | None:
        """The call that has ended (waiting for one under way when `block`), or None."""
        if self._sending is None or (not block and not self._sending.done()):
            return None
        sending, self._sending = self._sending, None
        sent = sending.result()
        # Read here, on the loop's thread: what it decides on never races the sender.
        self._answered_at = sent.published_at
        return sent

    def close(self) -> Sent | None:
        """Wait for the call under way, if any, and take no more."""
        self._sender.shutdown(wait=True)
        return self.collect(block=True)

    def _send(self, ready: list[tuple[Claim, bytes]]) -> Sent:
        """Publish, and write the accepted images' new state. Touches nothing of the loop."""
        result = self._publisher.publish([(claim.id, data) for claim, data in ready])
        published_at = self._clock.monotonic()
        claims = {c.id: c for c, _ in ready}
        enqueued, applied, error = self._write_enqueued([claims[i] for i in result.accepted])
        records = {c.id: data for c, data in ready}
        return Sent(
            claims, result, enqueued, applied, error, published_at=published_at, records=records
        )


def enqueue_writer(recorder: Recorder, invocation: str, held: ProgressState) -> EnqueueWriter:
    """How the outbox writes the images a call put on the stream: from `held` to enqueued, no
    attempt counted (the write repeated until done: never given back once on the stream)."""

    def write(
        claims: list[Claim],
    ) -> tuple[list[Transition], list[bool | None], BaseException | None]:
        enqueued = [
            outcome_transition(claim, held, ProgressState.ENQUEUED, invocation, attempts=0)
            for claim in claims
        ]
        return (enqueued, *recorder.apply_with_tries(enqueued))

    return write
