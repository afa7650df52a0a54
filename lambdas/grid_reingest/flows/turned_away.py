"""Records thrall's stream turned away for a shard's throughput: sent again, then judged.

A turned-away record is kept, so sending it again costs no projection, and a
busy second is over by the next call. Once its resends are spent it is judged
by its size against what this invocation itself put on the stream:

- a small record is the system's: the shard is busy, the record is not;
- a large one (half a shard's second or more) needs the shard more than half
  idle for a second. If this invocation's own accepted bytes of the second
  up to its last try left it room, what fills its shard is the other
  producers: its own failure (an attempt, so that on a shard others
  write to every second it ends at 8 rather than holding the pass's end). If
  the invocation itself may have filled the shard, the record goes once more,
  alone, in a quiet second (flows/outbox.py: a second after the invocation's
  last call was answered, its other records waiting), and is judged on that;
  at most QUIET_CALLS_PER_MINUTE such calls, beyond which it is the system's
  (given back with no attempt, tried again by a later invocation).

The stream's shard of a turned-away record is not known, so the invocation's
bytes on the whole stream stand for its bytes on that shard: an upper bound,
which leans towards not charging the image. A quiet second is quiet for this
invocation only: another invocation of the pass publishing meanwhile is not
seen, and may be what keeps the record out.
"""

from __future__ import annotations

from collections import Counter, deque
from enum import Enum

from grid_reingest.domain.thrall_message import (
    SHARD_BYTES_PER_SECOND,
    SHARD_LIMIT_SECONDS,
    record_size,
)

# Times a turned-away record goes again with a later call before it is judged.
STREAM_RESENDS = 4
# A record this large needs its shard more than half idle for a second.
LARGE_RECORD_BYTES = SHARD_BYTES_PER_SECOND // 2
# The span over which the invocation's own accepted bytes are summed.
OWN_BYTES_SPAN_SECONDS = SHARD_LIMIT_SECONDS
# Records sent alone at most this often (each holds the invocation's other records for a
# second): beyond, a large record crowded out is the system's, tried again later.
QUIET_CALLS_PER_MINUTE = 6
MINUTE = 60.0


class Next(Enum):
    """What becomes of one turned-away record."""

    AGAIN = "again"  # sent again with a later call
    QUIET = "quiet"  # sent again alone, in a quiet second
    OWN = "own"  # the image's own failure: an attempt
    SYSTEM = "system"  # the system's: no attempt


class TurnedAway:
    """Resends counted per record, and the invocation's own accepted bytes of the last second."""

    def __init__(self) -> None:
        self.resent: Counter[str] = Counter()
        self.quieted: set[str] = set()  # sent alone in a quiet second
        self._quiet_at: deque[float] = deque()  # when records were sent alone, last minute
        self._accepted: deque[tuple[float, int]] = deque()  # (answered at, bytes)

    def accepted(self, at: float, records: list[tuple[str, bytes]]) -> None:
        """The records one call got onto the stream, answered at `at` (monotonic seconds)."""
        size = sum(record_size(image_id, data) for image_id, data in records)
        if size:
            self._accepted.append((at, size))

    def own_bytes(self, at: float) -> int:
        """The bytes this invocation got onto the stream in the second up to `at`."""
        while self._accepted and self._accepted[0][0] <= at - OWN_BYTES_SPAN_SECONDS:
            self._accepted.popleft()
        return sum(size for when, size in self._accepted if when <= at)

    def judge(self, image_id: str, data: bytes, at: float, *, resend: bool = True) -> Next:
        """What becomes of a record turned away in a call answered at `at`; without `resend`
        (nothing more is sent) it is judged at once, the system's if its resends were not
        spent."""
        if self.resent[image_id] < STREAM_RESENDS:
            if not resend:
                return Next.SYSTEM
            self.resent[image_id] += 1
            return Next.AGAIN
        size = record_size(image_id, data)
        if size < LARGE_RECORD_BYTES:
            return Next.SYSTEM
        if self.own_bytes(at) + size <= SHARD_BYTES_PER_SECOND:
            return Next.OWN
        while self._quiet_at and self._quiet_at[0] <= at - MINUTE:
            self._quiet_at.popleft()
        if resend and image_id not in self.quieted and len(self._quiet_at) < QUIET_CALLS_PER_MINUTE:
            # This invocation's own records may have filled its shard: once more, alone.
            self.quieted.add(image_id)
            self._quiet_at.append(at)
            return Next.QUIET
        return Next.SYSTEM
