"""A Grid of finite capacity on simulated time: the Projector port and media-api's lookup.

image-loader is a pool of `slots` projections in service at once and a
waiting room of `queue`; a projection that finds the room full is answered
503 at once. Its time is log-normal around `service_seconds` (a projection
downloads the original and converts it: seconds, heavy-tailed), then the data
services answer (tens of ms). Other users of the Grid hold slots while their
background load lasts; slot counts change as the scenario says; an error burst
fails a share of projections with no latency warning first. Invoked as
image-projection, each projection also pays Lambda's invoke overhead, a cold
start for each container beyond those already warm, and a throttle (429)
beyond the function's reserved concurrency. media-api answers batch-check's
lookups from a pool of its own: 200 once thrall has indexed the image.

Repeatable: requests that arrive at one instant are admitted in order of
their key (image id and attempt) once the world has settled, and every draw
comes from (seed, image id, attempt, call) (devtools/sim_random.py).
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from devtools import sim_random
from devtools.sim_clock import VirtualClock
from devtools.sim_scenario import Scenario
from grid_reingest import names
from grid_reingest.domain.outcome import Failed, Outcome, Ready, TooBig
from grid_reingest.domain.thrall_message import record_size
from grid_reingest.ports import Presence

# What a 503 from a full waiting room costs the caller: the load balancer answers at once.
REJECT_SECONDS = 0.02
# The data services, called at once after image-loader: the slowest of seven quick calls.
DATA_SECONDS = 0.08
DATA_SIGMA = 0.5
# image-projection invoked by batch-index: the invoke's round trip and the handler's own
# work (merging, gzip), and a Python container's cold start with its clients.
INVOKE_SECONDS = 0.03
COLD_START_SECONDS = 0.8
# media-api's lookups spread this much around their mean; its waiting room, in slots.
LOOKUP_SIGMA = 0.5
LOOKUP_QUEUE_PER_SLOT = 8
# Kinesis's record limit (data + partition key): a larger record is state 9001.
RECORD_MAX_BYTES = 1024 * 1024
KB = 1024


@dataclass
class SlotPool:
    """`slots` in service at once, FIFO, and at most `queue` waiting; on simulated seconds."""

    slots: int
    queue: int
    _free_at: list[float] = field(default_factory=list)
    _waiting: list[float] = field(default_factory=list)  # start times still ahead, sorted

    def admit(self, now: float, service: float) -> tuple[float, float] | None:
        """(start, finish) of a request arriving now; None when the waiting room is full."""
        self._waiting = self._waiting[bisect.bisect_right(self._waiting, now) :]
        if self.slots <= 0:
            return None
        if len(self._free_at) < self.slots:
            self._free_at += [now] * (self.slots - len(self._free_at))
        slot = min(range(self.slots), key=self._free_at.__getitem__)
        start = max(now, self._free_at[slot])
        if start > now and len(self._waiting) >= self.queue:
            return None
        self._free_at[slot] = start + service
        if start > now:
            bisect.insort(self._waiting, start)
        return start, start + service

    def resize(self, slots: int) -> None:
        """Change the slots in service; work on removed slots still finishes."""
        if slots < len(self._free_at):
            self._free_at.sort()
            self._free_at = self._free_at[:slots]
        self.slots = max(0, slots)


class Admissions:
    """Requests that arrive at one simulated instant, admitted in key order once it settles."""

    def __init__(self, clock: VirtualClock, name: str) -> None:
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._pending: list[
            tuple[str, threading.Event, Callable[[float], tuple[float, object]], list]
        ] = []

    def request(self, key: str, decide: Callable[[float], tuple[float, object]]) -> object:
        """Wait for `decide(now)` -> (when the answer comes, the answer), run in key order."""
        event = threading.Event()
        answer: list[object] = []
        with self._lock:
            if not self._pending:
                self._clock.call_at(self._clock.monotonic(), self._admit, quiet=True, key="")
            self._pending.append((key, event, decide, answer))
        self._clock.wait_for(event)
        return answer[0]

    def _admit(self) -> None:
        with self._lock:
            batch, self._pending = sorted(self._pending, key=lambda p: p[0]), []
        now = self._clock.monotonic()
        for key, event, decide, answer in batch:
            when, result = decide(now)
            answer.append(result)
            self._clock.wake_at(when, event, key)


class SimGrid:
    """image-loader and the data services (the Projector port), and media-api's lookup."""

    def __init__(
        self,
        clock: VirtualClock,
        scenario: Scenario,
        seed: int,
        *,
        invoked: bool = True,
        reserved: int | None = None,
        indexed: Callable[[str], bool] = lambda _: True,
    ) -> None:
        self.clock = clock
        self.spec = scenario.grid
        self.kinesis = scenario.kinesis
        self.seed = seed
        self.invoked = invoked  # through image-projection (overhead, cold starts, throttles)
        self.reserved = reserved
        self.indexed = indexed
        self.loader = SlotPool(self.spec.slots, self.spec.queue)
        media = scenario.media_api
        self.media = SlotPool(media.slots, LOOKUP_QUEUE_PER_SLOT * media.slots)
        self.media_seconds = media.service_seconds
        self._slots = self.spec.slots
        self._background = 0
        self._admit_projection = Admissions(clock, "projection")
        self._admit_lookup = Admissions(clock, "lookup")
        self._attempts: Counter[str] = Counter()
        self._lookups: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._running: list[float] = []  # finish times of projections invoked, sorted
        self._warm = 0
        self.answers: Counter[str] = Counter()
        self.cold_starts = 0

    # -- the world's changes ---------------------------------------------------------

    def set_slots(self, slots: int) -> None:
        """image-loader's own slots from now on."""
        self._slots = slots
        self.loader.resize(self._slots - self._background)

    def set_background(self, slots_used: int) -> None:
        """Slots the Grid's other users hold from now on."""
        self._background = slots_used
        self.loader.resize(self._slots - self._background)

    # -- the Projector port -------------------------------------------------------------

    def project(self, image_id: str) -> Outcome:
        """One projection, answered when the simulated Grid would answer it."""
        with self._lock:
            self._attempts[image_id] += 1
            attempt = self._attempts[image_id]
        outcome = self._admit_projection.request(
            f"{image_id}#{attempt}", lambda now: self._projection(image_id, attempt, now)
        )
        assert isinstance(outcome, Ready | TooBig | Failed)
        status = outcome.status if isinstance(outcome, Failed) else 200
        with self._lock:
            self.answers[str(status)] += 1
        return outcome

    def health(self, service: str) -> bool | None:
        """A health route answers while the service runs: always, here."""
        return True

    def _projection(self, image_id: str, attempt: int, now: float) -> tuple[float, Outcome]:
        seed = self.seed
        overhead = 0.0
        if self.invoked:
            self._running = self._running[bisect.bisect_right(self._running, now) :]
            if self.reserved is not None and len(self._running) >= self.reserved:
                answer = Failed(image_id, names.IMAGE_PROJECTION, 429, "TooManyRequestsException")
                return now + INVOKE_SECONDS, answer
            overhead = INVOKE_SECONDS
            if len(self._running) + 1 > self._warm:
                self._warm += 1
                self.cold_starts += 1
                overhead += COLD_START_SECONDS
        service = sim_random.lognormal(
            self.spec.service_seconds, self.spec.service_sigma, seed, image_id, attempt, "loader"
        )
        booked = self.loader.admit(now + overhead, service)
        if booked is None:
            done = now + overhead + REJECT_SECONDS
            answer = Failed(image_id, "image-loader", 503, "queue full")
        else:
            data = sim_random.lognormal(DATA_SECONDS, DATA_SIGMA, seed, image_id, attempt, "data")
            done = booked[1] + data
            answer = self._answer(image_id, attempt, booked[1])
        if self.invoked:
            bisect.insort(self._running, done)
        return done, answer

    def _answer(self, image_id: str, attempt: int, at: float) -> Outcome:
        minute = at / 60
        for burst in self.spec.errors:
            if burst.from_minute <= minute < burst.to_minute and sim_random.chance(
                burst.share, self.seed, image_id, attempt, "error"
            ):
                return Failed(image_id, "image-loader", burst.status, "simulated error burst")
        size = record_bytes(
            self.kinesis.record_kb_mean, self.kinesis.record_kb_sigma, self.seed, image_id
        )
        if record_size(image_id, b"") + size > RECORD_MAX_BYTES:
            return TooBig(image_id, size, RECORD_MAX_BYTES)
        return Ready(image_id, b"\x00" + b"r" * (size - 1), size)

    # -- media-api (batch-check's ImageLookup) --------------------------------------------

    def lookup(self, image_id: str) -> Presence:
        """GET /images/{id}: 200 once thrall has indexed the image, else 404; 503 when
        media-api's waiting room is full."""
        with self._lock:
            self._lookups[image_id] += 1
            attempt = self._lookups[image_id]
        presence = self._admit_lookup.request(
            f"{image_id}#{attempt}", lambda now: self._lookup(image_id, attempt, now)
        )
        assert isinstance(presence, Presence)
        return presence

    def _lookup(self, image_id: str, attempt: int, now: float) -> tuple[float, Presence]:
        service = sim_random.lognormal(
            self.media_seconds, LOOKUP_SIGMA, self.seed, image_id, attempt, "lookup"
        )
        booked = self.media.admit(now, service)
        if booked is None:
            return now + REJECT_SECONDS, Presence(503, "media-api queue full")
        return booked[1], Presence(200 if self.indexed(image_id) else 404)


def record_bytes(mean_kb: float, sigma: float, seed: int, image_id: str) -> int:
    """The size of an image's record: the same for every attempt (the image does not change)."""
    return max(64, int(sim_random.lognormal(mean_kb * KB, sigma, seed, image_id, "record")))
