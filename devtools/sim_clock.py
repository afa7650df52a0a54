"""Virtual time for the pass simulator: the Clock port, advanced as a discrete-event scheduler.

The real worker code runs in real threads (its thread pools, read-ahead and
publish threads included). Simulated time never moves while any of those
threads can still run: a `sleep()` blocks until the scheduler reaches its
wake-up time, and the scheduler moves to the next wake-up only once every
thread of the simulation is blocked (in a `sleep()`, on a lock or queue, or
idle in a thread pool). So a pass of an hour runs in as long as the CPU work
takes, and the worker's own CPU time costs no simulated time — what a
scaled real-time clock cannot give on a loaded machine.

"Blocked" is read from each thread's innermost Python frame
(`sys._current_frames`): a thread waiting in `threading.Condition.wait`
without a timeout whose waiter lock is still held (nobody notified it),
joining a thread, or idle in a ThreadPoolExecutor worker (waiting in its
queue's `get`, told by the instruction) with nothing queued.
A thread that was notified but has not run yet is seen as runnable, so time
does not jump under it; so is a read-ahead shutting down (it polls with
real-time timeouts until its threads end, and simulated time must not run on
meanwhile).
"""

from __future__ import annotations

import dis
import heapq
import inspect
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import thread as futures_thread
from datetime import datetime, timedelta

from grid_reingest.domain import read_ahead as read_ahead_module

_THREADING_FILE = threading.__file__
_FUTURES_FILE = futures_thread.__file__
_READ_AHEAD_FILE = read_ahead_module.__file__
# Consecutive identical all-blocked readings before time moves: a thread just
# notified gets that long to show it runs (more: steadier under load, slower).
SETTLED_CHECKS = 3
# Real seconds a simulation may go without any thread blocking before it is
# declared stuck (a worker spinning, or a wait the scheduler cannot see).
STUCK_AFTER_SECONDS = 120.0


class SimulationStuck(RuntimeError):
    """The simulated world stopped making progress."""


class VirtualClock:
    """The Clock port on simulated time; `run_until` drives it (from one thread only)."""

    def __init__(self, start: datetime, *, quantum: float = 0.0) -> None:
        self._start = start
        self._t = 0.0
        self._quantum = quantum  # wake-ups rounded up to this grid: fewer, larger steps
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, threading.Event | Callable[[], None], bool]] = []
        self._seq = itertools.count()
        self._waking = 0
        # Threads alive before the clock are not the simulation's (a test runner's, a pool's).
        self._outside = {t.ident for t in threading.enumerate() if t.ident is not None}
        self.steps = 0

    # -- the Clock port ---------------------------------------------------------

    def now(self) -> datetime:
        """The simulated instant."""
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        """Simulated seconds since the start."""
        return self._t

    def sleep(self, seconds: float) -> None:
        """Block until simulated time has moved on by `seconds`."""
        if seconds <= 0:
            return
        wake = threading.Event()
        with self._lock:
            heapq.heappush(
                self._timers, (self._round(self._t + seconds), next(self._seq), wake, False)
            )
        wake.wait()
        with self._lock:
            self._waking -= 1

    # -- the scheduler ----------------------------------------------------------

    def call_at(self, when: float, action: Callable[[], None], *, quiet: bool = False) -> None:
        """Run `action` on the scheduler's thread at simulated second `when`.

        `quiet`: the action wakes no thread and starts none, so the world need
        not settle after it (a sample, a check): a cheaper step.
        """
        with self._lock:
            heapq.heappush(self._timers, (max(when, self._t), next(self._seq), action, quiet))

    def run_until(self, end: float, done: Callable[[], bool] = lambda: False) -> None:
        """Advance time event by event until `end` (simulated seconds) or until `done()`."""
        loud = True
        while True:
            if loud:
                self._settle()
            if done():
                return
            with self._lock:
                if not self._timers or self._timers[0][0] > end:
                    self._t = max(self._t, end) if not self._timers else end
                    return
                self._t = self._timers[0][0]
                due = []
                loud = False
                while self._timers and self._timers[0][0] <= self._t:
                    _, _, item, quiet = heapq.heappop(self._timers)
                    due.append(item)
                    loud = loud or not quiet
                self._waking += sum(isinstance(d, threading.Event) for d in due)
            self.steps += 1
            for item in due:
                if isinstance(item, threading.Event):
                    item.set()
                else:
                    item()

    def _round(self, when: float) -> float:
        if self._quantum <= 0:
            return when
        rounded = math.ceil(when / self._quantum - 1e-9) * self._quantum
        # A sleep, however short, ends later than now: one rounded back onto the
        # current instant would wake at once, and a thread sleeping a few
        # nanoseconds in a loop would hold simulated time still for ever.
        return rounded if rounded > self._t + 1e-9 else self._t + self._quantum

    def _settle(self) -> None:
        """Wait (in real time) until every thread of the simulation is blocked."""
        started = time.monotonic()
        stable = 0
        last: dict[int, tuple[int, int]] | None = None
        pause = 0.0
        while True:
            with self._lock:
                waking = self._waking
            seen = None if waking or threading._limbo else self._blocked()  # type: ignore[attr-defined]
            if seen is not None and seen == last:
                stable += 1
                if stable >= SETTLED_CHECKS:
                    return
            else:
                stable = 0
            last = seen
            if time.monotonic() - started > STUCK_AFTER_SECONDS:
                raise SimulationStuck(f"threads still running after {STUCK_AFTER_SECONDS:.0f} s")
            # Let runnable threads have the interpreter; back off while they work.
            pause = 0.00005 if seen is not None else min(0.002, pause * 2 or 0.00005)
            time.sleep(pause)

    def _blocked(self) -> dict[int, tuple[int, int]] | None:
        """Each simulation thread's (frame, instruction) if all are blocked, else None."""
        me = threading.get_ident()
        frames = sys._current_frames()
        signature: dict[int, tuple[int, int]] = {}
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is None or ident == me or ident in self._outside:
                continue
            frame = frames.get(ident)
            if frame is None or not _is_blocked(frame):
                return None
            signature[ident] = (id(frame), frame.f_lasti)
        return signature


def _closing_read_ahead(frame) -> bool:
    """A read-ahead that is shutting down polls with real-time timeouts until its threads end:
    it is running, whatever its innermost frame says (else simulated time races on).

    Told by the line the reader's frame is on (its closing loop), not by its
    locals: reading another thread's generator frame's locals is not safe.
    """
    while frame is not None:
        if frame.f_code.co_filename == _READ_AHEAD_FILE:
            return frame.f_lineno in _READ_AHEAD_CLOSING_LINES
        frame = frame.f_back
    return False


def _closing_lines() -> frozenset[int]:
    source, first = inspect.getsourcelines(read_ahead_module.read_ahead)
    return frozenset(
        first + offset
        for offset, line in enumerate(source)
        if "thread.is_alive()" in line or "buffer.get(timeout=" in line
    )


_READ_AHEAD_CLOSING_LINES = _closing_lines()


def _call_offsets(function, text: str) -> frozenset[int]:
    """The instructions of `function` that call on its lines holding `text`.

    For a wait in C code, where the innermost Python frame is the caller's
    whether it waits or runs its own lines: only the instruction tells them
    apart. Any kind of call (a keyword call is CALL_KW from Python 3.13).
    """
    source, first = inspect.getsourcelines(function)
    lines = {first + i for i, line in enumerate(source) if text in line}
    return frozenset(
        ins.offset
        for ins in dis.get_instructions(function.__code__)
        if ins.positions is not None
        and ins.positions.lineno in lines
        and ins.opname.startswith("CALL")
    )


# A pool worker waiting for work (`work_queue.get`): the queue is C code, and a
# worker running its own lines (taking the None of a shutdown, about to return)
# shows `_worker` as its innermost frame too.
_POOL_WAIT_OFFSETS = _call_offsets(futures_thread._worker, "work_queue.get(block=True)")
# A thread joining another: from Python 3.13 it waits in C, called from
# Thread.join; before, in `_wait_for_tstate_lock`.
_JOIN_WAIT_OFFSETS = _call_offsets(threading.Thread.join, "self._handle.join(")


def _is_blocked(frame) -> bool:
    code = frame.f_code
    if code.co_filename == _THREADING_FILE:
        if code.co_name == "wait":
            waiter = frame.f_locals.get("waiter")
            return waiter is not None and waiter.locked() and not _closing_read_ahead(frame)
        if code is threading.Thread.join.__code__:
            return frame.f_lasti in _JOIN_WAIT_OFFSETS
        return code.co_name == "_wait_for_tstate_lock"
    if code.co_filename == _FUTURES_FILE and code.co_name == "_worker":
        if frame.f_lasti not in _POOL_WAIT_OFFSETS:
            return False  # running its own lines: a shutdown's None taken, or a task's end
        work = frame.f_locals.get("work_queue")
        return work is not None and work.qsize() == 0
    return False
