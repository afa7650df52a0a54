"""A Grid of finite capacity on simulated time: the Projector port for the pass simulator.

image-loader has `slots` requests in service at once and a queue of
`queue` more; a request that finds the queue full is answered 503 at once.
Service time is drawn around a base (a few hundred ms) and grows with the
queue, as a loaded JVM's does; the data services are a second pool of the
same kind, called after image-loader. A projection sleeps on the simulated
clock until its answer, so the worker sees the latency a real Grid would give.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from grid_reingest.domain.outcome import Failed, Outcome, Ready
from grid_reingest.ports import Clock

# The HTTP answers that say a service is overloaded (not the image's fault).
OVERLOAD_STATUSES = frozenset({429, 502, 503, 504})
# What a 503 costs the caller: the load balancer answers without queueing.
REJECT_SECONDS = 0.02
RECORD = b"\x00" + b"r" * 64


@dataclass
class Pool:
    """One service: `slots` in service, `queue` waiting at most, FIFO."""

    name: str
    slots: int
    queue: int
    base_seconds: float
    queue_slowdown: float = 0.15  # service time grows by this share per queued request per slot
    spread: float = 0.25  # service times spread this share around the base (log-normal)
    _free_at: list[float] = field(default_factory=list)
    _starts: list[float] = field(default_factory=list)

    def admit(self, now: float, rng: random.Random) -> float | None:
        """When a request arriving now will be answered, or None when the queue is full."""
        if len(self._free_at) < self.slots:
            self._free_at += [now] * (self.slots - len(self._free_at))
        self._starts = [s for s in self._starts if s > now]
        waiting = len(self._starts)
        if waiting >= self.queue:
            return None
        active = self._free_at[: self.slots]
        slot = min(range(len(active)), key=active.__getitem__)
        start = max(now, active[slot])
        slowdown = 1 + self.queue_slowdown * waiting / self.slots
        # Log-normal with mean 1: the base is the mean service time.
        draw = rng.lognormvariate(-(self.spread**2) / 2, self.spread)
        service = self.base_seconds * slowdown * draw
        self._free_at[slot] = start + service
        if start > now:
            self._starts.append(start)
        return start + service

    def resize(self, slots: int) -> None:
        """Change the slots in service (work in progress on removed slots still finishes)."""
        if slots < len(self._free_at):
            # Keep the slots that free first; the others go with their current request.
            self._free_at.sort()
            self._free_at = self._free_at[:slots]
        self.slots = slots


class SimGrid:
    """image-loader and the data services, answering projections on simulated time."""

    def __init__(
        self,
        clock: Clock,
        loader: Pool,
        data: Pool,
        *,
        seed: int = 1,
        failing: set[str] = frozenset(),
    ) -> None:
        self.clock = clock
        self.loader = loader
        self.data = data
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._failing = failing
        self.answers: dict[str, int] = {}
        self.on_answer: Callable[[str, float, int | None], None] = lambda *_: None

    @property
    def capacity_per_minute(self) -> float:
        """Images a minute the Grid serves at its base latency with every slot busy."""
        return min(
            self.loader.slots * 60 / self.loader.base_seconds,
            self.data.slots * 60 / self.data.base_seconds,
        )

    def project(self, image_id: str) -> Outcome:
        """One projection: image-loader, then the data services; a 503 when a queue is full."""
        started = self.clock.monotonic()
        with self._lock:
            # Both services are booked at once (the data calls start when the
            # loader answers): one sleep per image keeps the simulation cheap.
            loaded = self.loader.admit(started, self._rng)
            done = None if loaded is None else self.data.admit(loaded, self._rng)
        if done is None:
            service = self.loader.name if loaded is None else self.data.name
            self.clock.sleep(REJECT_SECONDS if loaded is None else loaded - started)
            failed = Failed(image_id, service, 503, "queue full")
            return self._answer(image_id, started, failed)
        self.clock.sleep(done - started)
        if image_id in self._failing:
            outcome: Outcome = Failed(image_id, "image-loader", 500, "this image breaks the loader")
        else:
            outcome = Ready(image_id, RECORD, 64)
        return self._answer(image_id, started, outcome)

    def _answer(self, image_id: str, started: float, outcome: Outcome) -> Outcome:
        status = outcome.status if isinstance(outcome, Failed) else 200
        with self._lock:
            self.answers[str(status)] = self.answers.get(str(status), 0) + 1
        self.on_answer(image_id, self.clock.monotonic() - started, status)
        return outcome
