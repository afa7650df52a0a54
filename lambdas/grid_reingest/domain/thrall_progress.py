"""How far behind thrall is, from its own checkpoints: fresher than CloudWatch's iterator age.

thrall consumes its stream with the KCL (3.x, through kcl-pekko-stream), which
writes each shard's checkpoint (the sequence number of the last record
processed) to its lease table about once a minute while it processes records.
A worker that remembers where each of its records landed (shard, sequence
number, when) can tell, each time a checkpoint moves, how old the oldest of its
records thrall had not reached was: the iterator age at that moment, within
seconds of it, where CloudWatch's one-minute points come 1-3 minutes after their
minute. A shard whose checkpoint stops moving while records of ours wait is a
consumer that stopped.

Only shards that hold records of ours count: a move elsewhere (another
consumer's leases in the table, a parent shard thrall drains after a reshard)
says nothing of them. A shard with records of ours and no checkpoint (a child
lease still at TRIM_HORIZON) is unknown, not caught up: there is then no
reading, and the worker goes by CloudWatch.

An invocation that ends hands what it knows on to the next (`handover`, `adopt`;
domain/thrall_handover.py says why).

Pure: the worker's pace (flows/pace.py) feeds it positions and checkpoints.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

from grid_reingest.domain.thrall_handover import Handover, ShardHandover, thinned

# kcl-pekko-stream's default checkpoint period (thrall keeps it): a shard's
# checkpoint moves about this often while records are processed.
CHECKPOINT_PERIOD_SECONDS = 60.0
# A worker reads the lease table about this often while it starts images (a refresh):
# a move is dated within half of it.
READ_EVERY_SECONDS = 15.0
# A checkpoint this late past when it was due (records of ours waiting) says
# thrall stopped: a read of the lease table may come up to a refresh (15 s)
# after a move, dated at the middle: about half of that.
STALL_GRACE_SECONDS = 10.0
# The trend is taken between samples at least this far apart...
TREND_MIN_SECONDS = 20.0
# ...the nearest to this far apart.
TREND_SECONDS = 60.0
# Samples and positions older than this are forgotten.
KEEP_SECONDS = 1800.0
# A read handed over by an ended invocation is gone on from if at most this old (a few
# checkpoint periods: a move dated within a longer gap says little of when).
HANDED_READ_SECONDS = 300.0


@dataclass(frozen=True)
class ProgressReading:
    """What the checkpoints say now (seconds on the worker's monotonic clock)."""

    age_s: float  # iterator age at the latest checkpoint seen to move (highest over shards)
    previous_age_s: float | None  # the age TREND_SECONDS earlier, on the trend; None: unknown
    sample_age_s: float  # how long ago the latest sample's checkpoint moved
    stalled_s: float  # how long a checkpoint is overdue while records wait; 0: none


class ThrallProgress:
    """Positions of the records a worker published, against thrall's checkpoints."""

    def __init__(
        self,
        checkpoint_period_s: float = CHECKPOINT_PERIOD_SECONDS,
        read_every_s: float = READ_EVERY_SECONDS,
    ) -> None:
        self._period = checkpoint_period_s
        self._read_every = read_every_s
        self._pending: dict[str, deque[tuple[int, float]]] = {}  # shard: (sequence, at)
        self._checkpoint: dict[str, int] = {}
        self._moved_at: dict[str, float] = {}
        self._shard_age: dict[str, float] = {}
        self._read_at: float | None = None
        self._samples: deque[tuple[float, float]] = deque()  # (when, highest shard age)

    def published(self, positions: list[tuple[str, int, float]]) -> None:
        """Remember (shard, sequence number, when published) of records the stream accepted."""
        # A worker's calls run one after the other: each shard's sequence numbers come
        # in order.
        for shard, sequence, at in positions:
            self._pending.setdefault(shard, deque()).append((sequence, at))

    def adopt(self, handover: Handover, offset: float, at: float) -> None:
        """Take up what ended invocations handed over (`offset`: epoch seconds less this
        worker's clock): their records as this worker's own (less those a checkpoint read
        has passed or too old to keep; each once), and, for a worker that has not read
        the checkpoints yet, where they stood and when each moved, as if it had read them."""
        read_at = None if handover.read_at is None else handover.read_at - offset
        fresh = (
            self._read_at is None and read_at is not None and at - read_at <= HANDED_READ_SECONDS
        )
        if fresh:
            self._read_at = read_at
        for name, shard in handover.shards.items():
            if fresh and shard.checkpoint is not None:
                self._checkpoint[name] = int(shard.checkpoint)
                if shard.moved_at is not None:
                    self._moved_at[name] = shard.moved_at - offset
            queue = self._pending.setdefault(name, deque())
            merged = dict(queue)
            for sequence, published in shard.waiting:
                if at - (published - offset) <= KEEP_SECONDS:
                    merged.setdefault(int(sequence), published - offset)
            queue.clear()
            queue.extend(sorted(merged.items()))
            checkpoint = self._checkpoint.get(name)
            if checkpoint is not None:
                _drop_through(queue, checkpoint)

    def handover(self, offset: float) -> Handover:
        """What the next invocation needs to go on from here (`offset` as for `adopt`)."""
        names = set(self._checkpoint) | {name for name, queue in self._pending.items() if queue}
        shards = {}
        for name in sorted(names):
            checkpoint, moved = self._checkpoint.get(name), self._moved_at.get(name)
            shards[name] = ShardHandover(
                checkpoint=None if checkpoint is None else str(checkpoint),
                moved_at=None if moved is None else moved + offset,
                waiting=tuple(
                    (str(q), when + offset)
                    for q, when in thinned(list(self._pending.get(name, ())))
                ),
            )
        return Handover(None if self._read_at is None else self._read_at + offset, shards)

    def observe(self, checkpoints: dict[str, int], at: float) -> None:
        """Take a read of the lease table (shard: checkpoint) made at `at`."""
        moved, due_from = self._dated(at)
        changed = False
        for shard, checkpoint in checkpoints.items():
            before = self._checkpoint.get(shard)
            self._checkpoint[shard] = checkpoint
            if before is None and self._read_at is None:
                # First sight: when it moved last is unknown; due again a period from now.
                # (What it has passed is processed: positions handed over, say.)
                self._moved_at[shard] = at
                _drop_through(self._pending.get(shard), checkpoint)
                continue
            if checkpoint == before:
                continue
            self._moved_at[shard] = due_from
            queue = self._pending.get(shard, deque())
            # A move says something of our records only on a shard that holds some.
            changed = changed or bool(queue)
            _drop_through(queue, checkpoint)
            waiting = queue[0][1] if queue else None
            self._shard_age[shard] = max(0.0, moved - waiting) if waiting is not None else 0.0
        self._read_at = at
        age = self._age()
        if changed and age is not None:
            self._samples.append((moved, age))
        elif (
            not changed
            and self._checkpoint
            and not self._waiting()
            and (not self._samples or self._samples[-1][1] > 0)
        ):
            # Nothing of ours waits: as far as our records tell, thrall is not behind.
            # (No checkpoint at all says nothing: thrall may never have run.)
            self._samples.append((at, 0.0))
        self._forget(at)

    def _dated(self, at: float) -> tuple[float, float]:
        """When a move seen at `at` happened: (for its age, for when the next is due).

        It happened between the last read and this one: at the middle, when they are
        a refresh apart. A longer gap (a worker draining its last images reads nothing
        for up to a minute) says little of when, and each use takes the side that reads
        no trouble into the reader's own absence: the age as if the move came early in
        the gap (no lag), the next move due as if it came late (no stall).
        """
        if self._read_at is None:
            return at, at
        middle = (self._read_at + at) / 2
        half = self._read_every / 2
        return min(middle, self._read_at + half), max(middle, at - half)

    def _waiting(self) -> bool:
        return any(self._pending.values())

    def _age(self) -> float | None:
        """The highest age over the shards that hold records of ours (0 where nothing of ours
        waits); None while one of them has no checkpoint: unknown, not caught up."""
        if self._unknown():
            return None
        return max(
            (age for shard, age in self._shard_age.items() if self._pending.get(shard)),
            default=0.0,
        )

    def _unknown(self) -> bool:
        """Whether records of ours wait on a shard that has no checkpoint."""
        return any(
            queue and shard not in self._checkpoint for shard, queue in self._pending.items()
        )

    def mark(self) -> float:
        """A fingerprint of the checkpoints last read: another worker that stored it can tell
        whether they moved since (sequence numbers are too long for a float)."""
        digest = hashlib.blake2b(repr(sorted(self._checkpoint.items())).encode(), digest_size=6)
        return float(int.from_bytes(digest.digest(), "big"))

    def reading(self, at: float) -> ProgressReading | None:
        """The latest age and its trend; None until a checkpoint moved past records of ours,
        and while records of ours wait on a shard with no checkpoint."""
        if self._unknown():
            return None
        stalled, waiting = self._stalled(at)
        if not self._samples:
            return ProgressReading(waiting, None, 0.0, stalled) if stalled else None
        when, age = self._samples[-1]
        if stalled:
            # Overdue: thrall has not reached the record that made it due (it would have
            # checkpointed on the way), so the age now is at least that record's.
            age, when = max(age, waiting), at
        previous = None
        earlier = [s for s in self._samples if when - s[0] >= TREND_MIN_SECONDS]
        if earlier:
            then, old = min(earlier, key=lambda s: abs(when - s[0] - TREND_SECONDS))
            previous = age - (age - old) / (when - then) * TREND_SECONDS
        return ProgressReading(age, previous, at - when, stalled)

    def _stalled(self, at: float) -> tuple[float, float]:
        """(seconds the most overdue shard's checkpoint is late; the age of the record that
        made it due). thrall checkpoints only as it processes records: a checkpoint is due
        once it has had a record published a period or more after its last move (a record
        before that may have been processed without one)."""
        late, waiting = 0.0, 0.0
        for shard, queue in self._pending.items():
            if shard not in self._moved_at:
                continue
            after = self._moved_at[shard] + self._period
            due = next((when for _, when in queue if when >= after), None)
            if due is None:
                continue
            overdue = at - due - STALL_GRACE_SECONDS
            if overdue > 0:
                late = max(late, overdue)
                waiting = max(waiting, at - due)
        return late, waiting

    def _forget(self, at: float) -> None:
        while self._samples and at - self._samples[0][0] > KEEP_SECONDS:
            self._samples.popleft()
        for queue in self._pending.values():
            while queue and at - queue[0][1] > KEEP_SECONDS:
                queue.popleft()


def _drop_through(queue: deque[tuple[int, float]] | None, checkpoint: int) -> None:
    """Drop the positions thrall has processed, those up to `checkpoint`."""
    while queue and queue[0][0] <= checkpoint:
        queue.popleft()
