"""thrall and its stream on simulated time: the Publisher port, the consumer, CloudWatch's view.

The stream has `shards` shards; a record goes to the shard its partition key
(the image id) hashes to, as Kinesis places it. Each shard takes at most
`shard_mb_per_second` and `shard_records_per_second` a second: a record
beyond either is rejected (ProvisionedThroughputExceededException), as
PutRecords rejects entries one by one. Other producers' records (the usage
service, ...) arrive on the shards too, and take their share of those limits
and of thrall.

thrall takes `per_minute` records a minute (0: paused), the oldest waiting
on any shard first; its rate changes as the scenario says (the high-priority
stream it serves first takes the rest). Its iterator age is the oldest
waiting record's age on the worst shard, sampled every second, and shown as
CloudWatch does: one-minute maxima, each visible 1 to 3 minutes after its
minute ends. Each shard's KCL checkpoint moves to the last record taken when
thrall takes records a period or more after the last move, as
kcl-akka-stream does. media-api has an image once thrall has taken its record.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from dataclasses import dataclass

from devtools import sim_random
from devtools.sim_clock import VirtualClock
from devtools.sim_scenario import Scenario
from grid_reingest.adapters.cloudwatch import WINDOW
from grid_reingest.adapters.kinesis import MAX_SEND_ROUNDS
from grid_reingest.domain.backoff import JITTER_BASE_SECONDS, JITTER_CAP_SECONDS
from grid_reingest.domain.thrall_message import split_calls
from grid_reingest.ports import PublishResult

SAMPLE_SECONDS = 1.0
PERIOD_SECONDS = 60
WINDOW_SECONDS = WINDOW.total_seconds()
# CloudWatch shows a minute's point this long after the minute ends (uniform).
POINT_DELAY_SECONDS = (60.0, 180.0)
# A PutRecords call's round trip, and its time per MB sent.
PUT_SECONDS = 0.03
PUT_SECONDS_PER_MB = 0.01
THROUGHPUT_EXCEEDED = "ProvisionedThroughputExceededException: Rate exceeded for shard"

MB = 1024 * 1024


@dataclass
class Record:
    """One record waiting on a shard."""

    published_at: float
    sequence: int
    image_id: str | None  # None: another producer's


class SimThrall:
    """thrall's low-priority stream (its shards and limits) and its consumer."""

    def __init__(self, clock: VirtualClock, scenario: Scenario, seed: int) -> None:
        self.clock = clock
        self.spec = scenario.thrall
        self.kinesis = scenario.kinesis
        self.seed = seed
        self.rate_per_minute = self.spec.per_minute
        self.shard_ids = [f"shardId-{i:012d}" for i in range(self.spec.shards)]
        self._lock = threading.Lock()
        self._shards: list[deque[Record]] = [deque() for _ in self.shard_ids]
        self._sequence = [0] * len(self.shard_ids)
        self._used: dict[tuple[int, int], tuple[float, int]] = {}  # (shard, second): bytes, n
        self._credit = 0.0
        self._others = 0.0
        self._others_sent = 0
        self._last = clock.monotonic()
        self._minute_max: dict[int, float] = {}
        self._visible_at: dict[int, float] = {}
        self._checkpoint = [0] * len(self.shard_ids)
        period = self.spec.checkpoint_seconds
        # Each shard's lease was taken at some time in the last period.
        self._checkpointed_at = [
            clock.monotonic() - period * sim_random.uniform(seed, "checkpoint phase", i)
            for i in range(len(self.shard_ids))
        ]
        self._last_taken = [0] * len(self.shard_ids)
        self.indexed: set[str] = set()
        self.published = 0  # our records accepted
        self.publish_times: list[float] = []
        self.consumed = 0  # our records taken
        self.last_consumed_at = 0.0
        self.rejected = 0
        self.calls = 0
        self.ages: list[tuple[float, float]] = []  # (time, true iterator age s), every sample
        for minute in range(-6, 0):
            # Points before the pass: thrall idle, age 0 (CloudWatch has data from the start).
            self._minute_max[minute] = 0.0
            self._visible_at[minute] = (minute + 1) * PERIOD_SECONDS

    # -- the Publisher port ----------------------------------------------------------

    def publish(self, records: list[tuple[str, bytes]]) -> PublishResult:
        """PutRecords as adapters/kinesis.py makes it: one call per 500 records or 5 MB, each
        after its round trip; records beyond a shard's limits this second are rejected one by
        one and sent again, after a jittered backoff, up to MAX_SEND_ROUNDS calls."""
        result = PublishResult()
        for call in split_calls(records):
            pending = call
            for attempt in range(MAX_SEND_ROUNDS):
                key = f"put:{call[0][0]}"
                if attempt:
                    cap = min(JITTER_CAP_SECONDS, JITTER_BASE_SECONDS * 2 ** (attempt - 1))
                    jitter = sim_random.uniform(self.seed, "put retry", call[0][0], attempt)
                    self.clock.sleep(cap * jitter, key=key)
                size = sum(len(data) for _, data in pending)
                self.clock.sleep(PUT_SECONDS + PUT_SECONDS_PER_MB * size / MB, key=key)
                result.calls += 1
                pending = self._put(pending, result)
                if not pending:
                    break
            for image_id, _ in pending:
                result.overloaded.append(image_id)
        return result

    def _put(self, records: list[tuple[str, bytes]], result: PublishResult) -> list:
        """One call: the records it accepts go on their shards; the rest come back."""
        rejected = []
        with self._lock:
            self.calls += 1
            now = self.clock.monotonic()
            for image_id, data in records:
                shard = self._shard_of(image_id)
                if not self._fits(shard, now, len(data)):
                    self.rejected += 1
                    result.rejected[image_id] = THROUGHPUT_EXCEEDED
                    rejected.append((image_id, data))
                    continue
                result.rejected.pop(image_id, None)
                sequence = self._append(shard, now, image_id)
                self.published += 1
                self.publish_times.append(now)
                result.accepted.append(image_id)
                result.positions.append((self.shard_ids[shard], sequence))
        return rejected

    def _shard_of(self, key: str) -> int:
        # Kinesis hashes the partition key with MD5 onto the shards' equal hash ranges.
        digest = int.from_bytes(hashlib.md5(key.encode()).digest(), "big")  # noqa: S324
        return digest * len(self.shard_ids) >> 128

    def _fits(self, shard: int, now: float, size: int) -> bool:
        second = int(now)
        used_bytes, used_n = self._used.get((shard, second), (0.0, 0))
        if (
            used_n + 1 > self.kinesis.shard_records_per_second
            or used_bytes + size > self.kinesis.shard_mb_per_second * MB
        ):
            return False
        self._used[(shard, second)] = (used_bytes + size, used_n + 1)
        return True

    def ever_takes(self, size: int) -> bool:
        """Whether a record of `size` bytes can ever fit its shard's second
        beside the other producers, who put at least this many records there every second."""
        others_each_second = int(self.spec.other_records_per_minute // 60) // len(self.shard_ids)
        others_bytes = others_each_second * int(self.kinesis.record_kb_mean * 1024)
        return size + others_bytes <= self.kinesis.shard_mb_per_second * MB

    def _append(self, shard: int, now: float, image_id: str | None) -> int:
        self._sequence[shard] += 1
        self._shards[shard].append(Record(now, self._sequence[shard], image_id))
        return self._sequence[shard]

    # -- the consumer and the other producers (every SAMPLE_SECONDS) ----------------------

    def tick(self) -> None:
        """Other producers' records; what thrall took since the last tick; the age sampled."""
        with self._lock:
            now = self.clock.monotonic()
            elapsed = now - self._last
            self._last = now
            self._produce_others(now, elapsed)
            if self.rate_per_minute > 0:
                self._credit += self.rate_per_minute / 60 * elapsed
                self._take(now)
            self._forget(now)
            age = max((now - q[0].published_at for q in self._shards if q), default=0.0)
            self.ages.append((now, age))
            minute = int(now // PERIOD_SECONDS)
            if minute not in self._minute_max:
                # Points arrive in order: a late one holds back the ones after it.
                delay = POINT_DELAY_SECONDS[0] + (
                    POINT_DELAY_SECONDS[1] - POINT_DELAY_SECONDS[0]
                ) * sim_random.uniform(self.seed, "point delay", minute)
                self._visible_at[minute] = max(
                    self._visible_at.get(minute - 1, 0.0), (minute + 1) * PERIOD_SECONDS + delay
                )
            self._minute_max[minute] = max(self._minute_max.get(minute, 0.0), age)

    def _produce_others(self, now: float, elapsed: float) -> None:
        self._others += self.spec.other_records_per_minute / 60 * elapsed
        while self._others >= 1:
            self._others -= 1
            self._others_sent += 1
            shard = self._others_sent % len(self.shard_ids)
            size = int(self.kinesis.record_kb_mean * 1024)
            if self._fits(shard, now, size):
                self._append(shard, now, None)

    def _take(self, now: float) -> None:
        while self._credit >= 1:
            heads = [(q[0].published_at, i) for i, q in enumerate(self._shards) if q]
            if not heads:
                self._credit = min(self._credit, 1.0)  # an idle consumer banks nothing
                return
            _, shard = min(heads)
            record = self._shards[shard].popleft()
            self._credit -= 1
            self._last_taken[shard] = record.sequence
            if record.image_id is not None:
                self.indexed.add(record.image_id)
                self.consumed += 1
                self.last_consumed_at = now
            if now - self._checkpointed_at[shard] >= self.spec.checkpoint_seconds:
                self._checkpoint[shard] = record.sequence
                self._checkpointed_at[shard] = now

    def _forget(self, now: float) -> None:
        second = int(now)
        for key in [k for k in self._used if k[1] < second]:
            del self._used[key]

    @property
    def backlog(self) -> int:
        """Our records published and not yet taken."""
        with self._lock:
            return self.published - self.consumed

    def is_indexed(self, image_id: str) -> bool:
        """Whether media-api has the image: thrall has taken its record."""
        with self._lock:
            return image_id in self.indexed

    def checkpoints(self) -> dict[str, int]:
        """thrall's lease table as the worker reads it: each shard's checkpoint."""
        with self._lock:
            return dict(zip(self.shard_ids, self._checkpoint, strict=True))

    # -- CloudWatch's view -------------------------------------------------------------

    def visible_points(self) -> list[tuple[int, float]]:
        """(minute, maximum age in ms) of the points visible now in the 5-minute window."""
        with self._lock:
            now = self.clock.monotonic()
            first = (now - WINDOW_SECONDS) // PERIOD_SECONDS
            return sorted(
                (minute, age * 1000)
                for minute, age in self._minute_max.items()
                if minute >= first and self._visible_at[minute] <= now
            )

    def age_points(self) -> tuple[float, float | None] | None:
        """The latest and previous visible one-minute maxima (ms), as ControlledPace reads them."""
        points = self.visible_points()
        if not points:
            return None
        return points[-1][1], (points[-2][1] if len(points) > 1 else None)

    def window_max_ms(self) -> float | None:
        """The highest visible point of the last five minutes (the gate of today and the seed)."""
        points = self.visible_points()
        return max(age for _, age in points) if points else None
