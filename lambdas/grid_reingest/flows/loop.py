"""The loop both workers run: claim, start, finish, record — until the time budget is spent.

One invocation keeps going while it has time: it asks the pace how many
images may be in flight (and how many may start a minute), claims only as
many as it can start now, and records outcomes as they come. It stops
starting images when the operator pauses, when the budget left is under the
stop margin, or when its flow says so (a tripped breaker, a refused stream);
what is in flight then finishes and is recorded. Claims it took but did not
start go back untouched. Time passes only through the Clock port, so the pass
simulator can compress it.

The loop is one class for both workers; what differs is a `Strategy` it is
given (flows/strategy.py; flows/batch_index.py, flows/batch_check.py): where
claims come from, one image's work, what a result means. The strategy writes outcomes through
the invocation's `Recorder` (flows/record.py), which the loop shares; it never
calls back into the loop.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from grid_reingest.domain.claims import Claim, expiry_transition
from grid_reingest.flows.invocation import LONGEST_WAIT_SECONDS
from grid_reingest.flows.record import Recorder
from grid_reingest.flows.strategy import Strategy
from grid_reingest.ports import Observation, PaceDecision

# Seconds between looks while nothing may start (back-pressure, a rate ceiling).
POLL_SECONDS = 1.0
# Claims are taken this many at least per call (a claim call reads every shard:
# its cost is paid per window, not per image), or twice the in-flight limit; under
# a rate ceiling, what the rate allows in a refresh of the pace.
CLAIM_WINDOW_MIN = 50
# An overload answer (a 503 from a full queue comes back at once) keeps its slot taken
# for about as long as an image takes (the recent mean, this at first, at most the
# longest): refilled at once, one slot too many would turn into hundreds of 503s a
# decision, and the failure rule would stop the invocation for systemic overload.
OVERLOAD_HOLD_FIRST_SECONDS = 1.0
OVERLOAD_HOLD_LONGEST_SECONDS = 30.0
# How fast that mean follows each image's time.
TYPICAL_WEIGHT = 0.05


class Loop[R]:
    """Claim, start, finish, record until time, the pace, the operator or the strategy says stop."""

    def __init__(self, recorder: Recorder, strategy: Strategy[R]) -> None:
        """The loop writes through `recorder` (which carries the invocation's dependencies and
        limits) and does what differs between workers through `strategy`."""
        self.deps = deps = recorder.deps
        self.limits = recorder.limits
        self.recorder = recorder
        self.strategy = strategy
        self.summary = recorder.summary
        self.in_flight: dict[Future[tuple[R, float]], Claim] = {}
        self.seen = Observation()
        self.exhausted = False  # a claim found nothing
        self.reserve: deque[Claim] = deque()  # claimed, not started: at most one window
        self._reserved_at = 0.0
        self._claiming: Future[list[Claim]] | None = None  # the next window, being claimed
        self._claimer = ThreadPoolExecutor(1, thread_name_prefix="claims")
        self._next_start = 0.0  # clock.monotonic() before which the rate allows no start
        # Slots an overload answer keeps taken: when each frees (monotonic seconds).
        self._held: list[float] = []
        self._typical_s = OVERLOAD_HOLD_FIRST_SECONDS
        # Image-seconds in flight since the last decision (the pace's measure of use).
        self._busy = 0.0
        self._busy_at = deps.clock.monotonic()
        # Items that went back after this instant (this invocation's failures and
        # releases among them) wait for the next invocation: a failing image is not
        # retried within seconds, and what was given back is not taken again at once.
        self.started_at = deps.clock.now()

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Work until time, the pace, the operator or the flow says stop; then finish and record
        what is in flight. Whatever is still held when this raises is given back."""
        pool = ThreadPoolExecutor(self.limits.max_in_flight, thread_name_prefix="work")
        try:
            self._loop(pool)
            while self.in_flight:
                self._reap(block=True)
                self._flush(final=False)
                self._leave()
            self._flush(final=True)
            # What finished since the last decision counts too (a warm pace goes on), as
            # the end of a worker that starts nothing more: not for the pass's in-flight use.
            self.seen.draining = True
            self._decide()
        finally:
            # Best effort: a mark left behind expires by itself within 1.5 refreshes.
            with contextlib.suppress(Exception):
                self.deps.pace.leave()
            self.summary.signals_unread = self.deps.pace.take_unread()
            # After a failure, what is in flight still finishes before its claims go back,
            # and a window being claimed is taken in, to be given back with the rest.
            pool.shutdown(wait=True)
            with contextlib.suppress(Exception):
                self._collect_claims(block=True)
            self._claimer.shutdown(wait=True)
            with contextlib.suppress(Exception):
                self.strategy.close()
            self.recorder.release_leftovers()

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        clock = self.deps.clock
        idle_since: float | None = None
        while True:
            self._reap(block=False)
            self._flush(final=False)
            decision = self._decide()
            reason = self._stop_reason(decision)
            if reason is not None:
                self.summary.stopped_because = reason
                self._give_back_held()
                self._leave()
                return
            self._take_due()
            if self.exhausted and not self.in_flight and not self.reserve:
                wait = self._again_in()
                if wait is None:
                    return
                clock.sleep(wait)
                self.exhausted = False
                continue
            limit = self.strategy.cap(decision.in_flight)
            delay = self._start_delay(limit, decision)
            if delay == 0 and (self.reserve or not self.exhausted):
                idle_since = None
                self._start_some(pool, limit - self._occupied(), decision)
                continue
            if self.in_flight and (delay is None or (self.exhausted and not self.reserve)):
                self._reap(block=True)
                continue
            if not self.in_flight:
                # Nothing can start and nothing runs: waiting costs Lambda time for
                # nothing, so after a while the next keep-alive tick comes back instead.
                now = clock.monotonic()
                idle_since = now if idle_since is None else idle_since
                idle = now - idle_since
                if idle >= self.limits.idle_seconds and not self._resumes_soon(decision, idle):
                    self.summary.idle_reason = decision.reason
                    self._give_back_held()
                    return
            clock.sleep(min(delay or POLL_SECONDS, POLL_SECONDS))

    def _leave(self) -> None:
        """Give this worker's share of the pace to the others now, less what it still has in
        flight (image-projection's reserved concurrency is sized on the limit). Told again
        only as images finish: a straggler alone for 1.5 refreshes lets the count lapse.
        Best effort: a mark left behind expires by itself."""
        with contextlib.suppress(Exception):
            self.deps.pace.leave(len(self.in_flight))

    def _again_in(self) -> float | None:
        """Once a claim found nothing and nothing runs: how long to wait before claiming again
        (the strategy's say, or sooner for a claim held for a later look), or None to end."""
        wait = self.strategy.again_in()
        due = self.recorder.next_due()
        if due is None:
            return wait
        until_due = max(0.0, due - self.deps.clock.monotonic())
        return until_due if wait is None else min(wait, until_due)

    def _take_due(self) -> None:
        """Claims held for a later look whose time has come start first."""
        due = self.recorder.due(self.deps.clock.monotonic())
        if due and not self.reserve:
            self._reserved_at = self.deps.clock.monotonic()
        self.reserve.extendleft(reversed(due))

    def _resumes_soon(self, decision: PaceDecision, idle: float) -> bool:
        """The pace stopped work for a while that ends before the next keep-alive would
        come: waiting is cheaper than a tick's gap."""
        wait = decision.resume_in_seconds
        return wait is not None and idle + wait <= LONGEST_WAIT_SECONDS

    def _flush(self, *, final: bool) -> None:
        flushed = self.strategy.flush(final=final, idle=not self.in_flight)
        self.seen.published += flushed.published
        self.seen.overloaded += flushed.overloaded
        self.summary.overloaded += flushed.overloaded

    def _count_busy(self) -> None:
        """Add the images in flight since the last count (call before in_flight changes)."""
        now = self.deps.clock.monotonic()
        self._busy += len(self.in_flight) * (now - self._busy_at)
        self._busy_at = now

    def _decide(self) -> PaceDecision:
        self._count_busy()
        self.seen.busy_seconds, self._busy = self._busy, 0.0
        seen, self.seen = self.seen, Observation()
        decision = self.deps.pace.decide(seen)
        self.summary.note_pace(decision)
        return decision

    def _stop_reason(self, decision: PaceDecision) -> str | None:
        if decision.paused:
            return "paused by the operator"
        if self._out_of_time():
            return "invocation running out of time"
        return self.strategy.halt()

    def _out_of_time(self) -> bool:
        return self.limits.out_of_time(self.deps.remaining_ms())

    def _start_delay(self, limit: int, decision: PaceDecision) -> float | None:
        """0: an image may start now; None: when one in flight finishes; else seconds."""
        if limit <= 0:
            return POLL_SECONDS
        if self._occupied() >= limit:
            if self.in_flight:
                return None
            return max(0.0, min(self._held) - self.deps.clock.monotonic())
        if decision.rate_per_minute:
            wait_s = self._next_start - self.deps.clock.monotonic()
            if wait_s > 0:
                return wait_s
        return 0

    def _occupied(self) -> int:
        """Images in flight, and slots overload answers still keep taken."""
        now = self.deps.clock.monotonic()
        self._held = [t for t in self._held if t > now]
        return len(self.in_flight) + len(self._held)

    def _start_some(self, pool: ThreadPoolExecutor, room: int, decision: PaceDecision) -> None:
        rate = decision.rate_per_minute
        # A window of claims at a time: one claim call per window, not per image; under a
        # rate ceiling, what the rate starts in a refresh of the pace.
        if rate:
            want = max(1, math.ceil(rate * self.limits.refresh_seconds / 60))
        else:
            want = max(room, 2 * decision.in_flight, CLAIM_WINDOW_MIN)
        now = self.deps.clock.monotonic()
        self._collect_claims(block=False)
        if self.reserve and now - self._reserved_at > self.limits.lease_seconds / 2:
            self._give_back_reserve()  # waited too long: its lease must not run out unstarted
        if not self.reserve:
            self._claim_ahead(want)
            self._collect_claims(block=True)
        for _ in range(1 if rate else room):
            if not self.reserve:
                return
            if self._out_of_time():
                # The budget went while claiming: give back instead of projecting.
                self.summary.stopped_because = "invocation running out of time"
                self._give_back_held()
                return
            claim = self.reserve.popleft()
            started = self._expire(claim) if claim.reclaimed else claim
            if started is None:
                continue
            if rate:
                # Spaced from the last start's slot, not from when this one got to
                # start: a late wake-up (a sleep always overshoots) is made up, else
                # the rate achieved falls short of the ceiling; at most one slot is
                # made up, so a long wait never turns into a burst.
                step = 60.0 / rate
                self._next_start = max(self._next_start, now - step) + step
            self._count_busy()
            self.in_flight[pool.submit(self._timed, started.id)] = started
        if len(self.reserve) < want // 2:
            # The next window is claimed while this one's images run.
            self._claim_ahead(want)

    def _claim_ahead(self, want: int) -> None:
        if self._claiming is None and not self.exhausted:
            self._claiming = self._claimer.submit(
                self.deps.store.claim,
                self.strategy.sources(self.started_at),
                self.recorder.held,
                want,
                self.deps.invocation,
            )

    def _collect_claims(self, *, block: bool) -> None:
        """Take in the claims of the call in the background, once done (or waiting for it)."""
        if self._claiming is None or (not block and not self._claiming.done()):
            return
        claiming, self._claiming = self._claiming, None
        claims = claiming.result()
        if not claims:
            self.exhausted = True
            return
        now = self.deps.clock.monotonic()
        ready = []
        for claim in claims:
            self.recorder.track(claim)
            hold = self.strategy.admit(claim)
            if hold:
                self.recorder.later(claim, now + hold)
            else:
                ready.append(claim)
        if ready and not self.reserve:
            self._reserved_at = now
        self.reserve.extend(ready)

    def _give_back_held(self) -> None:
        """Stopping: what was claimed and not started, and what was held for a later look, go
        back (the held ones keeping their items' places)."""
        self._give_back_reserve()
        self.recorder.give_back_later()
        self._flush(final=False)

    def _give_back_reserve(self) -> None:
        """Claims taken but not started go back untouched: no attempt counted, their items'
        places kept where the strategy says so."""
        self._collect_claims(block=True)
        keep_place = self.strategy.keeps_place
        while self.reserve:
            self.recorder.release(self.reserve.popleft(), keep_place=keep_place)
        self._flush(final=False)

    def _timed(self, image_id: str) -> tuple[R, float]:
        clock = self.deps.clock
        started = clock.monotonic()
        try:
            result = self.strategy.work(image_id)
        except Exception as error:  # one image's surprise must not sink the others
            result = self.strategy.surprise(image_id, error)
        return result, (clock.monotonic() - started) * 1000

    def _reap(self, *, block: bool) -> None:
        if not self.in_flight:
            return
        done, _ = wait(self.in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        self._count_busy()
        # In the order started, not the set's: a set of futures iterates by address, and
        # what is taken in first (records, latencies) must not differ between two runs.
        for future in [f for f in self.in_flight if f in done]:
            claim = self.in_flight.pop(future)
            result, ms = future.result()
            overloaded = self.strategy.finish(claim, result)
            self.seen.finished += 1
            self.seen.overloaded += int(overloaded)
            if overloaded:
                self._held.append(self.deps.clock.monotonic() + self._typical_s)
            elif self.strategy.timed(result):
                # A 503 at once from a full queue, or a 500, says nothing of the Grid's latency.
                self.seen.latencies_ms.append(ms)
                typical = self._typical_s + TYPICAL_WEIGHT * (ms / 1000 - self._typical_s)
                self._typical_s = min(OVERLOAD_HOLD_LONGEST_SECONDS, typical)
            self.summary.overloaded += int(overloaded)

    # -- claims -----------------------------------------------------------------------

    def _expire(self, claim: Claim) -> Claim | None:
        """A claim whose lease ran out costs its image an attempt; None when that was its last."""
        recorder = self.recorder
        transition = expiry_transition(
            claim, recorder.held, self.deps.invocation, self.limits.max_attempts
        )
        self.summary.expired_claims += 1
        if transition.new != recorder.held:
            recorder.record([transition])
            return None
        (applied,) = recorder.apply([transition])
        if not applied:
            recorder.unresolved.pop(claim.id, None)
            self.summary.lost_claims += 1
            return None
        counted = replace(claim, attempts=claim.attempts + 1)
        recorder.unresolved[claim.id] = counted
        return counted
