"""Lambda and EventBridge on simulated time: ticks, reserved concurrency, a time limit.

A tick every `every_seconds` starts an invocation only if fewer than
`reserved` of the same worker are running (a scheduled event that finds the
worker at its reserved concurrency is dropped, as the deployed rule's
maximum event age does). Each invocation runs in a thread of its own with a
deadline on the simulated clock; the wall time of each is kept for its cost,
and apart, that of invocations that took no image (what waiting costs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from devtools.sim_clock import VirtualClock

# An invocation: given the deadline as remaining_ms, does its work; the images it took.
Invoke = Callable[[Callable[[], int]], int]


@dataclass
class SimLambda:
    """One worker function, invoked by its schedule."""

    clock: VirtualClock
    invoke: Invoke
    every_seconds: float
    timeout_seconds: float
    memory_mb: int
    reserved: int = 1
    enabled: bool = True
    wall_seconds: float = 0.0
    invocations: int = 0
    idle_seconds: float = 0.0  # wall time of invocations that took no image
    idle_invocations: int = 0
    dropped_ticks: int = 0
    errors: list[BaseException] = field(default_factory=list)
    _running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, at: float = 0.0) -> None:
        """Schedule the ticks from simulated second `at`."""
        self.clock.call_at(at, self._tick)

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
            with self._lock:
                free = self._running < self.reserved
                if free:
                    self._running += 1
                    self.invocations += 1
            if free:
                threading.Thread(target=self._run, name="invocation", daemon=True).start()
            else:
                self.dropped_ticks += 1
        self.clock.call_at(self.clock.monotonic() + self.every_seconds, self._tick)

    def _run(self) -> None:
        started = self.clock.monotonic()
        deadline = started + self.timeout_seconds

        def remaining_ms() -> int:
            return int((deadline - self.clock.monotonic()) * 1000)

        took = None
        try:
            took = self.invoke(remaining_ms)
        except BaseException as error:  # kept and raised by the simulator after the run
            self.errors.append(error)
        finally:
            with self._lock:
                self._running -= 1
                wall = self.clock.monotonic() - started
                self.wall_seconds += wall
                if took == 0:
                    self.idle_seconds += wall
                    self.idle_invocations += 1
