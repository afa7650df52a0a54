"""thrall on simulated time: the Publisher port, a consumer at a set rate, CloudWatch's view of it.

Records published join a backlog; thrall takes `rate_per_minute` of them a
minute, oldest first (none while paused). Its iterator age is the age of the
oldest record not yet taken, sampled every second. CloudWatch shows it as
one-minute maxima, each point visible only 1 to 3 minutes after its minute
ends (in order: a point is not visible before the one of the minute before),
as the worker reads it in production. Its KCL checkpoint (one shard) moves to
the last record taken when it takes records a period or more after the last
move, as kcl-akka-stream does.
"""

from __future__ import annotations

import random
import threading
from collections import deque

from grid_reingest.adapters.cloudwatch import WINDOW
from grid_reingest.ports import Clock, PublishResult

SAMPLE_SECONDS = 1.0
PERIOD_SECONDS = 60
SHARD = "shardId-000000000000"
# kcl-akka-stream's checkpoint period.
CHECKPOINT_SECONDS = 60.0
WINDOW_SECONDS = WINDOW.total_seconds()


class SimThrall:
    """thrall's low-priority stream and its consumer."""

    def __init__(
        self,
        clock: Clock,
        rate_per_minute: float,
        *,
        seed: int = 2,
        delay_seconds: tuple[float, float] = (60.0, 180.0),
        put_seconds: float = 0.0,
    ) -> None:
        self.clock = clock
        self.rate_per_minute = rate_per_minute
        self.paused = False
        self._rng = random.Random(seed)
        self._delay = delay_seconds
        self._put_seconds = put_seconds
        self._lock = threading.Lock()
        self._backlog: deque[float] = deque()  # publish times, oldest first
        self._credit = 0.0
        self._last = clock.monotonic()
        self._minute_max: dict[int, float] = {}
        self._visible_at: dict[int, float] = {}
        self.published = 0
        self.publish_times: list[float] = []  # when each record was published
        self.consumed = 0
        self.ages: list[tuple[float, float]] = []  # (time, true iterator age s), every sample
        self._checkpoint = 0  # the sequence number of the last record taken, as checkpointed
        # The lease was taken some time in the last period: its first checkpoint is due then.
        self._checkpointed_at = clock.monotonic() - self._rng.uniform(0, CHECKPOINT_SECONDS)
        # Points before the pass: thrall idle, age 0 (CloudWatch has data from the start).
        for minute in range(-6, 0):
            self._minute_max[minute] = 0.0
            self._visible_at[minute] = (minute + 1) * PERIOD_SECONDS

    # -- the Publisher port ----------------------------------------------------------

    def publish(self, records: list[tuple[str, bytes]]) -> PublishResult:
        """Append every record (a PutRecords round trip, never refused)."""
        if self._put_seconds:
            self.clock.sleep(self._put_seconds)
        with self._lock:
            now = self.clock.monotonic()
            self._backlog.extend([now] * len(records))
            self.publish_times.extend([now] * len(records))
            first = self.published + 1
            self.published += len(records)
        return PublishResult(
            accepted=[image_id for image_id, _ in records],
            calls=1,
            positions=[(SHARD, first + k) for k in range(len(records))],
        )

    # -- the consumer (driven by the simulator every SAMPLE_SECONDS) -------------------

    def tick(self) -> None:
        """Consume what thrall took since the last tick; sample the iterator age."""
        with self._lock:
            now = self.clock.monotonic()
            if not self.paused:
                self._credit += self.rate_per_minute / 60 * (now - self._last)
                take = min(int(self._credit), len(self._backlog))
                for _ in range(take):
                    self._backlog.popleft()
                self._credit -= take
                self.consumed += take
                if take and now - self._checkpointed_at >= CHECKPOINT_SECONDS:
                    self._checkpoint = self.consumed
                    self._checkpointed_at = now
                if not self._backlog:
                    self._credit = min(self._credit, 1.0)  # an idle consumer banks nothing
            self._last = now
            age = now - self._backlog[0] if self._backlog else 0.0
            self.ages.append((now, age))
            minute = int(now // PERIOD_SECONDS)
            if minute not in self._minute_max:
                # Points arrive in order: a late one holds back the ones after it.
                self._visible_at[minute] = max(
                    self._visible_at.get(minute - 1, 0.0),
                    (minute + 1) * PERIOD_SECONDS + self._rng.uniform(*self._delay),
                )
            self._minute_max[minute] = max(self._minute_max.get(minute, 0.0), age)

    @property
    def backlog(self) -> int:
        """Records published and not yet consumed."""
        with self._lock:
            return len(self._backlog)

    def checkpoints(self) -> dict[str, int]:
        """thrall's lease table as the worker reads it: the shard's checkpoint."""
        with self._lock:
            return {SHARD: self._checkpoint}

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
