"""batch-index's outbox: ready records sent to thrall's stream in the background.

Records wait until enough are ready (or the oldest has waited a second), so
that a PutRecords call carries many without holding any long; one call runs
at a time, in order, on a thread of its own, while the loop keeps starting
images. After each call the images the stream accepted are written as
enqueued, on the same thread: once on the stream an image is never given
back, so that write is repeated until done (flows/record.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from grid_reingest.domain.claims import Claim, Transition
from grid_reingest.domain.thrall_message import (
    PUT_RECORDS_MAX_BYTES,
    PUT_RECORDS_MAX_RECORDS,
    record_size,
)
from grid_reingest.ports import Clock, Publisher, Sent

# Ready records are sent once this many wait, or the oldest has waited this
# long: PutRecords calls carry many records without holding any long.
PUBLISH_MIN = 100
PUBLISH_LINGER_SECONDS = 1.0

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

    def add(self, claim: Claim, record: bytes) -> None:
        """One image's record, ready to send."""
        if self._ready_since is None:
            self._ready_since = self._clock.monotonic()
        self._ready.append((claim, record))
        self._ready_bytes += record_size(claim.id, record)

    def due(self, *, eager: bool) -> bool:
        """Whether what is ready should go now (anything at all, when `eager`)."""
        if not self._ready:
            return False
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
        """Start a call with what is ready; the previous call must have been collected."""
        if self._sending is not None:
            raise RuntimeError("a call is still under way: collect it first")
        ready, self._ready, self._ready_bytes, self._ready_since = self._ready, [], 0, None
        self._sending = self._sender.submit(self._send, ready)

    def collect(self, *, block: bool) -> Sent | None:
        """The call that has ended (waiting for one under way when `block`), or None."""
        if self._sending is None or (not block and not self._sending.done()):
            return None
        sending, self._sending = self._sending, None
        return sending.result()

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
