"""The loop both workers run: claim, start, finish, record — until the time budget is spent.

One invocation keeps going while it has time: it asks the pace how many
images may be in flight (and how many may start a minute), claims only as
many as it can start now, and records outcomes as they come. It stops
starting images when the operator pauses, when the budget left is under the
stop margin, or when its flow says so (a tripped breaker, a refused stream);
what is in flight then finishes and is recorded. Claims it took but did not
start go back untouched. Time passes only through the Clock port, so the pass
simulator can compress it.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from grid_reingest.domain.backoff import full_jitter
from grid_reingest.domain.claims import (
    Claim,
    Source,
    Transition,
    expiry_transition,
    release_transition,
)
from grid_reingest.domain.states import ProgressState
from grid_reingest.flows.invocation import LONGEST_WAIT_SECONDS, Limits, LoopDeps, RecordFailed
from grid_reingest.flows.summary import Summary
from grid_reingest.ports import Observation, PaceDecision, PartialApply

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
# A failed write of outcomes is repeated (it is conditional: safe to repeat) this
# many times, while a whole try still fits in the invocation, before the
# invocation fails; the images it held are then left held, never given back,
# since their records may already be on the stream.
RECORD_TRIES = 6


class Loop[R]:
    """The shared loop; a flow says where claims come from and what an outcome means."""

    held: ProgressState

    def __init__(self, deps: LoopDeps, limits: Limits, summary: Summary) -> None:
        self.deps = deps
        self.limits = limits
        self.summary = summary
        self.unresolved: dict[str, Claim] = {}  # held by this invocation, outcome not written
        self.pending: list[Transition] = []  # outcomes to write
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

    # -- what a flow supplies ------------------------------------------------------------

    def sources(self) -> Sequence[Source]:
        """Where claims come from, in order."""
        raise NotImplementedError

    def work(self, image_id: str) -> R:
        """One image's work (runs in a thread of the pool); never raises for an image."""
        raise NotImplementedError

    def surprise(self, image_id: str, error: Exception) -> R:
        """The result of a work that raised anyway."""
        raise NotImplementedError

    def finish(self, claim: Claim, result: R) -> bool:
        """Take one finished image's result (adds to `pending`); True for an overload answer."""
        raise NotImplementedError

    def flush(self, final: bool) -> None:
        """Write what is due (all of it when `final`)."""
        self.record(self.take_pending())

    def halt(self) -> str | None:
        """The flow's own reason to stop starting images, if any."""
        return None

    def cap(self, limit: int) -> int:
        """The in-flight limit the flow allows now, given the pace's."""
        return limit

    def again_in(self) -> float | None:
        """Once a claim found nothing and nothing runs: seconds to wait before claiming again
        (more will come within the invocation), or None to end."""
        return None

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Work until time, the pace, the operator or the flow says stop; then finish and record
        what is in flight. Whatever is still held when this raises is given back."""
        pool = ThreadPoolExecutor(self.limits.max_in_flight, thread_name_prefix="work")
        try:
            self._loop(pool)
            while self.in_flight:
                self._reap(block=True)
                self.flush(final=False)
            self.flush(final=True)
            # What finished since the last decision counts too (a warm pace goes on).
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
                self.settle_background()
            self._release_leftovers()

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        clock = self.deps.clock
        idle_since: float | None = None
        while True:
            self._reap(block=False)
            self.flush(final=False)
            decision = self._decide()
            reason = self._stop_reason(decision)
            if reason is not None:
                self.summary.stopped_because = reason
                self._give_back_reserve()
                return
            if self.exhausted and not self.in_flight and not self.reserve:
                wait = self.again_in()
                if wait is None:
                    return
                clock.sleep(wait)
                self.exhausted = False
                continue
            limit = self.cap(decision.in_flight)
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
                    self._give_back_reserve()
                    return
            clock.sleep(min(delay or POLL_SECONDS, POLL_SECONDS))

    def _resumes_soon(self, decision: PaceDecision, idle: float) -> bool:
        """The pace stopped work for a while that ends before the next keep-alive would
        come: waiting is cheaper than a tick's gap."""
        wait = decision.resume_in_seconds
        return wait is not None and idle + wait <= LONGEST_WAIT_SECONDS

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
        return self.halt()

    def _out_of_time(self) -> bool:
        return self.deps.remaining_ms() < self.limits.margin_ms

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
                self._give_back_reserve()
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
                self.deps.store.claim, self.sources(), self.held, want, self.deps.worker
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
        for claim in claims:
            self._track(claim)
        if not self.reserve:
            self._reserved_at = self.deps.clock.monotonic()
        self.reserve.extend(claims)

    def _give_back_reserve(self) -> None:
        """Claims taken but not started go back untouched (no attempt counted)."""
        self._collect_claims(block=True)
        while self.reserve:
            self.release(self.reserve.popleft())
        self.flush(final=False)

    def _timed(self, image_id: str) -> tuple[R, float]:
        clock = self.deps.clock
        started = clock.monotonic()
        try:
            result = self.work(image_id)
        except Exception as error:  # one image's surprise must not sink the others
            result = self.surprise(image_id, error)
        return result, (clock.monotonic() - started) * 1000

    def _reap(self, *, block: bool) -> None:
        if not self.in_flight:
            return
        done, _ = wait(self.in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        self._count_busy()
        for future in done:
            claim = self.in_flight.pop(future)
            result, ms = future.result()
            overloaded = self.finish(claim, result)
            self.seen.finished += 1
            self.seen.overloaded += int(overloaded)
            if overloaded:
                self._held.append(self.deps.clock.monotonic() + self._typical_s)
            else:
                # A 503 at once from a full queue says nothing of the Grid's latency.
                self.seen.latencies_ms.append(ms)
                typical = self._typical_s + TYPICAL_WEIGHT * (ms / 1000 - self._typical_s)
                self._typical_s = min(OVERLOAD_HOLD_LONGEST_SECONDS, typical)
            self.summary.overloaded += int(overloaded)

    # -- claims -----------------------------------------------------------------------

    def _track(self, claim: Claim) -> None:
        self.unresolved[claim.id] = claim
        self.summary.claimed += 1
        self.summary.reclaimed += int(claim.reclaimed)

    def _expire(self, claim: Claim) -> Claim | None:
        """A claim whose lease ran out costs its image an attempt; None when that was its last."""
        transition = expiry_transition(claim, self.held, self.deps.worker, self.limits.max_attempts)
        self.summary.expired_claims += 1
        if transition.new != self.held:
            self.record([transition])
            return None
        (applied,) = self._apply([transition])
        if not applied:
            self.unresolved.pop(claim.id, None)
            self.summary.lost_claims += 1
            return None
        counted = replace(claim, attempts=claim.attempts + 1)
        self.unresolved[claim.id] = counted
        return counted

    def release(self, claim: Claim, error: str | None = None) -> None:
        """Give a claim back untouched (no attempt counted)."""
        self.summary.released += 1
        self.pending.append(release_transition(claim, self.held, self.deps.worker, error))

    def take_pending(self) -> list[Transition]:
        """The outcomes waiting to be written, taken."""
        pending, self.pending = self.pending, []
        return pending

    def record(self, transitions: list[Transition]) -> list[bool]:
        """Write outcomes (repeating failed writes) and count them; which were applied."""
        if not transitions:
            return []
        applied = self._apply(transitions)
        for transition in transitions:
            self.unresolved.pop(transition.id, None)
        self.summary.count(transitions, applied)
        return applied

    def _apply(self, transitions: list[Transition]) -> list[bool]:
        return self.written(transitions, *self.apply_with_tries(transitions))

    def apply_with_tries(
        self, transitions: list[Transition]
    ) -> tuple[list[bool | None], BaseException | None]:
        """Write transitions, repeating those whose write failed; None where every try failed.
        Touches nothing of the loop: it may run beside it."""
        results: list[bool | None] = [None] * len(transitions)
        error: BaseException | None = None
        for attempt in range(RECORD_TRIES):
            todo = [i for i, done in enumerate(results) if done is None]
            if not todo:
                break
            if attempt:
                if self.deps.remaining_ms() < self.limits.record_budget_ms:
                    # A try can take the whole record budget (botocore's retries within
                    # it): one that could not end before the invocation is not started.
                    break
                self.deps.clock.sleep(full_jitter(attempt - 1, base=0.2))
            try:
                answers: list[bool | None] = list(
                    self.deps.store.apply([transitions[i] for i in todo])
                )
            except PartialApply as partial:
                answers, error = partial.applied, partial.error
            except Exception as failure:  # nothing known to be written: repeat them all
                answers, error = [None] * len(todo), failure
            for i, answer in zip(todo, answers, strict=True):
                results[i] = answer
        return results, error

    def written(
        self,
        transitions: list[Transition],
        results: list[bool | None],
        error: BaseException | None,
    ) -> list[bool]:
        """The results of apply_with_tries; RecordFailed when some were never written."""
        if any(done is None for done in results):
            self.summary.record_failures += sum(done is None for done in results)
            # Their images stay held (their records may be on the stream already): the
            # lease brings them back, counting an attempt.
            for transition, done in zip(transitions, results, strict=True):
                if done is None:
                    self.unresolved.pop(transition.id, None)
            raise RecordFailed(f"outcomes not written after {RECORD_TRIES} tries: {error}")
        return [bool(done) for done in results]

    def settle_background(self) -> None:
        """After a failure, wait for the flow's own background work before claims go back."""

    def _release_leftovers(self) -> None:
        """After a failure, give back what was neither recorded nor released."""
        leftovers = [
            release_transition(c, self.held, self.deps.worker) for c in self.unresolved.values()
        ]
        self.unresolved.clear()
        # If this fails too, the lease brings the claims back; the first error is the one raised.
        with contextlib.suppress(Exception):
            self.summary.released += len(leftovers)
            self.summary.count(leftovers, self.deps.store.apply(leftovers))
