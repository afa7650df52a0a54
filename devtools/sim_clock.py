"""Virtual time for the pass simulator: the Clock port, advanced as a discrete-event scheduler.

The real worker code runs in real threads (its thread pools, read-ahead and
publish threads included). Simulated time never moves while any of those
threads can still run: a `sleep()` blocks until the scheduler reaches its
wake-up time, and the scheduler moves to the next wake-up only once every
thread of the simulation is blocked (in a `sleep()`, on a lock or queue, or
idle in a thread pool). So a pass of an hour runs in as long as the CPU work
takes, and the worker's own CPU time costs no simulated time — what a
scaled real-time clock cannot give on a loaded machine.

**Repeatable.** Wake-ups are taken one at a time, in order of time and then
of a key (the sleeping thread's name after the names of the threads that
started it, or the key a simulated service gives: an image id), and the
world settles after each before the next: what one wake-up sets off is over
before the next begins, so the order of events does not depend on how the
machine schedules the threads. Simulated services
draw their randomness per key (devtools/sim_random.py) and do their work
after a sleep, never before it, for the same reason.

"Blocked" is read from each thread's innermost Python frame
(`sys._current_frames`): a thread waiting in `threading.Condition.wait`
without a timeout whose waiter lock is still held (nobody notified it),
joining a thread, or idle in a ThreadPoolExecutor worker (waiting in its
queue's `get`, told by the instruction) with nothing queued. A wait with a
timeout is running, not blocked: the simulation's own code waits only without
one, and a zero timeout (a look at what is done) passes straight through.
A thread that was notified but has not run yet is seen as runnable, so time
does not jump under it; so is a read-ahead shutting down (it polls with
real-time timeouts until its threads end, and simulated time must not run on
meanwhile).
"""

from __future__ import annotations

import contextlib
import dis
import heapq
import inspect
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import thread as futures_thread
from datetime import datetime, timedelta

from grid_reingest.domain import read_ahead as read_ahead_module

_THREADING_FILE = threading.__file__
_FUTURES_FILE = futures_thread.__file__
_READ_AHEAD_FILE = read_ahead_module.__file__
# Consecutive identical all-blocked readings before time moves: a thread just
# notified gets that long to show it runs (more: steadier under load, slower). A
# notify, a submit or a start between two readings is counted (`watching`), and a
# thread notified is seen as running at once: two more readings, a pause apart, leave
# only a thread the reading cannot tell from a blocked one (none is known).
SETTLED_CHECKS = 2
# Real seconds a simulation may go without any thread blocking before it is
# declared stuck (a worker spinning, or a wait the scheduler cannot see).
STUCK_AFTER_SECONDS = 120.0
# The longest real pause between two readings while threads run (backing off from 50 us):
# longer wastes the time between a thread blocking and the next reading; shorter takes
# the interpreter from the threads that are running.
MAX_PAUSE_SECONDS = 0.0004


class SimulationStuck(RuntimeError):
    """The simulated world stopped making progress."""


class VirtualClock:
    """The Clock port on simulated time; `run_until` drives it (from one thread only)."""

    def __init__(self, start: datetime, *, quantum: float = 0.0) -> None:
        self._start = start
        self._t = 0.0
        self._quantum = quantum  # wake-ups rounded up to this grid: fewer, larger steps
        self._lock = threading.Lock()
        self._timers: list[tuple[float, str, int, threading.Event | Callable[[], None], bool]] = []
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

    def sleep(self, seconds: float, key: str | None = None) -> None:
        """Block until simulated time has moved on by `seconds`. Sleepers that wake at the
        same instant wake in order of `key` (default: `thread_key`, the thread's name
        after those of the threads that started it)."""
        if seconds <= 0:
            return
        wake = threading.Event()
        order = key if key is not None else thread_key(threading.current_thread())
        with self._lock:
            heapq.heappush(
                self._timers, (self._round(self._t + seconds), order, next(self._seq), wake, False)
            )
        wake.wait()
        with self._lock:
            self._waking -= 1

    # -- the scheduler ----------------------------------------------------------

    def call_at(
        self, when: float, action: Callable[[], None], *, quiet: bool = False, key: str = ""
    ) -> None:
        """Run `action` on the scheduler's thread at simulated second `when` (after the
        sleepers of that instant whose key sorts before `key`).

        `quiet`: the action wakes no thread and starts none, so the world need
        not settle after it (a sample, a check): a cheaper step.
        """
        with self._lock:
            heapq.heappush(self._timers, (max(when, self._t), key, next(self._seq), action, quiet))

    def wake_at(self, when: float, event: threading.Event, key: str) -> None:
        """Set `event` at simulated second `when`, as a sleeper keyed `key` would wake: for a
        simulated service that learns when a waiting thread's answer comes only after it
        began waiting (in `wait_for`)."""
        with self._lock:
            heapq.heappush(self._timers, (max(when, self._t), key, next(self._seq), event, False))

    def wait_for(self, event: threading.Event) -> None:
        """Block until `event`, which `wake_at` sets: the world counts as settled meanwhile."""
        event.wait()
        with self._lock:
            self._waking -= 1

    def run_until(self, end: float, done: Callable[[], bool] = lambda: False) -> None:
        """Advance time event by event until `end` (simulated seconds) or until `done()`:
        one event at a time, the world settled after each that may wake a thread."""
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
                when, _, _, item, quiet = heapq.heappop(self._timers)
                self._t = when
                loud = not quiet
                if isinstance(item, threading.Event):
                    self._waking += 1
            self.steps += 1
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
        last: tuple[int, dict[int, tuple[int, int]]] | None = None
        pause = 0.0
        while True:
            with self._lock:
                waking = self._waking
            # What was done between two readings counts too: a thread can wake, work and
            # block again in the same place between them (its frame reused).
            activity = _ACTIVITY[0]
            blocked = None if waking or threading._limbo else self._blocked()  # type: ignore[attr-defined]
            seen = None if blocked is None else (activity, blocked)
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
            pause = 0.00005 if seen is not None else min(MAX_PAUSE_SECONDS, pause * 2 or 0.00005)
            time.sleep(pause)

    def _blocked(self) -> dict[int, tuple[int, int]] | None:
        """Each simulation thread's (frame, instruction) if all are blocked, else None."""
        me = threading.get_ident()
        frames = sys._current_frames()
        signature: dict[int, tuple[int, int]] = {}
        idle: dict[int, list] = {}  # per pool: [workers it counts idle, workers seen waiting]
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is None or ident == me or ident in self._outside:
                continue
            frame = frames.get(ident)
            if frame is None or not _is_blocked(frame, idle):
                return None
            signature[ident] = (id(frame), frame.f_lasti)
        if any(seen > counted for counted, seen in idle.values()):
            return None  # a worker that shows the `get` has taken a task
        return signature


# Wake-ups and hand-overs between threads (a notify, a task submitted to a pool, a thread
# started) since the simulation began: the settling world must show none between two
# readings. Counted while `watching()` is in force.
_ACTIVITY = [0]


@contextlib.contextmanager
def watching() -> Iterator[None]:
    """Count the hand-overs between threads while a simulation runs (see _settle)."""
    notify = threading.Condition.notify
    submit = futures_thread.ThreadPoolExecutor.submit
    start = threading.Thread.start

    def counted_notify(self, n=1):
        _ACTIVITY[0] += 1
        return notify(self, n)

    def counted_submit(self, fn, /, *args, **kwargs):
        _ACTIVITY[0] += 1
        return submit(self, fn, *args, **kwargs)

    def counted_start(self):
        _ACTIVITY[0] += 1
        self._sim_key = f"{thread_key(threading.current_thread())}/{self.name}"
        return start(self)

    threading.Condition.notify = counted_notify  # type: ignore[method-assign]
    futures_thread.ThreadPoolExecutor.submit = counted_submit  # type: ignore[method-assign]
    threading.Thread.start = counted_start  # type: ignore[method-assign]
    try:
        yield
    finally:
        threading.Condition.notify = notify  # type: ignore[method-assign]
        futures_thread.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
        threading.Thread.start = start  # type: ignore[method-assign]


def thread_key(thread: threading.Thread) -> str:
    """A thread's name after those of the threads that started it (while `watching()`): unique
    in a pass where names are not (each invocation's pool names its threads `work_0`, ...),
    and the same in every run, so that sleepers of one instant wake in the same order
    whichever thread pushed its wake-up first, and whatever threads the process ran
    before."""
    return getattr(thread, "_sim_key", thread.name)


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
        first + offset for offset, line in enumerate(source) if "buffer.get(timeout=" in line
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


def _is_blocked(frame, idle: dict[int, list]) -> bool:  # noqa: PLR0911 (one case a wait)
    """Whether the thread whose innermost frame is `frame` waits for another thread. A thread
    just woken can still show the frame it waited in (it waits for the interpreter at the
    end of the call that blocked it): each case also checks that nothing released it."""
    code = frame.f_code
    if code.co_filename == _THREADING_FILE:
        if code.co_name == "wait":
            # A wait with a timeout (concurrent.futures.wait(timeout=0) looking for what
            # is done) passes through: only a wait without one is blocked, while its
            # waiter is still among the condition's (a notify takes it out).
            locals_ = frame.f_locals
            waiter = locals_.get("waiter")
            condition = locals_.get("self")
            return (
                locals_.get("timeout") is None
                and waiter is not None
                and condition is not None
                and waiter in condition._waiters
                and not _closing_read_ahead(frame)
            )
        if code is threading.Thread.join.__code__ or code.co_name == "_wait_for_tstate_lock":
            joined = frame.f_locals.get("self")
            if isinstance(joined, threading.Thread) and not joined.is_alive():
                return False  # the thread it joins has ended: it returns now
            if code is threading.Thread.join.__code__:
                return frame.f_lasti in _JOIN_WAIT_OFFSETS
            return True
        return False
    if code.co_filename == _FUTURES_FILE and code.co_name == "_worker":
        if frame.f_lasti not in _POOL_WAIT_OFFSETS:
            return False  # running its own lines: a shutdown's None taken, or a task's end
        locals_ = frame.f_locals
        work = locals_.get("work_queue")
        if work is None or work.qsize() != 0:
            return False
        # A worker that has just taken a task still shows the `get`: the pool's idle count
        # (released before each `get`, taken by a submit) says how many really wait.
        executor = locals_["executor_reference"]()
        if executor is None or executor._shutdown:
            # A pool shut down (or let go): its workers take the None it queued, hand the
            # next one its None (a put no reading counts) and end: running, not waiting.
            return False
        idle.setdefault(id(executor), [executor._idle_semaphore._value, 0])[1] += 1
        return True
    return False
