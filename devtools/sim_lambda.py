"""Lambda and EventBridge on simulated time: ticks, reserved concurrency, throttled retries.

A schedule's tick is an asynchronous invocation. It starts at once if fewer
than `reserved` invocations of the function run; else Lambda throttles it and
retries it with exponential backoff (1 s, 2 s, 4 s, ... at most 5 minutes
apart) until the event is older than the rule's maximum event age, then drops
it, as Lambda does with a throttled asynchronous event. Each invocation runs
in a thread of its own (named after the function and its number, so that the
simulated clock orders its wake-ups) with a deadline on the simulated clock;
its wall time is kept for its cost, and apart, that of invocations that took
no image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from devtools.sim_clock import VirtualClock

# An invocation: given the deadline as remaining_ms, does its work; the images it took.
Invoke = Callable[[Callable[[], int]], int]
# Lambda's retries of a throttled asynchronous event.
FIRST_RETRY_SECONDS = 1.0
LONGEST_RETRY_SECONDS = 300.0
# Lambda's default maximum event age (6 hours): a function deployed without one.
DEFAULT_EVENT_AGE_SECONDS = 6 * 3600.0


@dataclass
class SimLambda:
    """One worker function, invoked by its schedule."""

    clock: VirtualClock
    invoke: Invoke
    every_seconds: float
    timeout_seconds: float
    memory_mb: int
    reserved: int = 1
    max_event_age_seconds: float = 60.0
    name: str = "invocation"
    enabled: bool = True
    wall_seconds: float = 0.0
    invocations: int = 0
    idle_seconds: float = 0.0  # wall time of invocations that took no image
    idle_invocations: int = 0
    throttles: int = 0  # deliveries refused at the reserved concurrency (each retried)
    dropped_events: int = 0  # events that grew older than the maximum age unstarted
    errors: list[BaseException] = field(default_factory=list)
    expected: tuple[type[BaseException], ...] = ()  # errors a function raises by design
    failed_invocations: int = 0
    _running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, at: float = 0.0) -> None:
        """Schedule the ticks from simulated second `at`."""
        self.clock.call_at(at, self._tick, key=self.name)

    @property
    def running(self) -> int:
        """Invocations in progress."""
        with self._lock:
            return self._running

    @property
    def gb_seconds(self) -> float:
        """What the invocations so far are billed: wall time x memory."""
        return self.wall_seconds * self.memory_mb / 1024

    @property
    def idle_gb_seconds(self) -> float:
        """Of that, the invocations that took no image."""
        return self.idle_seconds * self.memory_mb / 1024

    def _tick(self) -> None:
        if self.enabled:
            self._deliver(self.clock.monotonic(), 0)
        self.clock.call_at(self.clock.monotonic() + self.every_seconds, self._tick, key=self.name)

    def _deliver(self, born: float, tries: int) -> None:
        if not self.enabled:
            return
        now = self.clock.monotonic()
        with self._lock:
            free = self._running < self.reserved
            if free:
                self._running += 1
                self.invocations += 1
                number = self.invocations
            else:
                self.throttles += 1
        if free:
            threading.Thread(
                target=self._run, name=f"{self.name}-{number:05d}", daemon=True
            ).start()
            return
        wait = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2**tries)
        if now + wait - born > self.max_event_age_seconds:
            self.dropped_events += 1
            return
        self.clock.call_at(
            now + wait, lambda: self._deliver(born, tries + 1), key=f"{self.name}-retry"
        )

    def _run(self) -> None:
        started = self.clock.monotonic()
        deadline = started + self.timeout_seconds

        def remaining_ms() -> int:
            return int((deadline - self.clock.monotonic()) * 1000)

        took = None
        try:
            took = self.invoke(remaining_ms)
        except BaseException as error:  # kept; the simulator raises the unexpected ones
            self.failed_invocations += 1
            if not isinstance(error, self.expected):
                self.errors.append(error)
        finally:
            with self._lock:
                self._running -= 1
                wall = self.clock.monotonic() - started
                self.wall_seconds += wall
                if took == 0:
                    self.idle_seconds += wall
                    self.idle_invocations += 1
