"""Writing outcomes: each failed write repeated while a try still fits; what an invocation
(flows/loop.py) holds given back, recorded, or left held when never written.

The writes are conditional, so repeating one is safe: an item that moved on
answers False, never a second change. What was never written is None, for the
caller to decide (the loop leaves those images held: their records may be on
the stream already).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable

from grid_reingest.domain.backoff import full_jitter
from grid_reingest.domain.claims import Claim, Transition, release_transition
from grid_reingest.domain.states import ProgressState
from grid_reingest.flows.invocation import Limits, LoopDeps, RecordFailed
from grid_reingest.flows.summary import Summary
from grid_reingest.ports import ClaimStore, Clock, PartialApply

# A failed write of outcomes is repeated this many times, while a whole try still fits in
# the invocation, before the invocation fails.
RECORD_TRIES = 6


def apply_with_tries(
    store: ClaimStore,
    transitions: list[Transition],
    clock: Clock,
    another_fits: Callable[[], bool],
) -> tuple[list[bool | None], BaseException | None]:
    """Write `transitions`, repeating those whose write failed while `another_fits()`; each
    one's result (None where every try failed), and the last error."""
    results: list[bool | None] = [None] * len(transitions)
    error: BaseException | None = None
    for attempt in range(RECORD_TRIES):
        todo = [i for i, done in enumerate(results) if done is None]
        if not todo:
            break
        if attempt:
            if not another_fits():
                # A try can take the whole record budget (botocore's retries within it):
                # one that could not end before the invocation is not started.
                break
            clock.sleep(full_jitter(attempt - 1, base=0.2))
        try:
            answers: list[bool | None] = list(store.apply([transitions[i] for i in todo]))
        except PartialApply as partial:
            answers, error = partial.applied, partial.error
        except Exception as failure:  # nothing known to be written: repeat them all
            answers, error = [None] * len(todo), failure
        for i, answer in zip(todo, answers, strict=True):
            results[i] = answer
    return results, error


class Recorder:
    """The loop's writing side: what this invocation holds, the outcomes pending, written or
    given back. The loop and its strategy share one; neither reaches into the other."""

    def __init__(self, held: ProgressState, deps: LoopDeps, limits: Limits, summary: Summary):
        self.held = held
        self.deps = deps
        self.limits = limits
        self.summary = summary
        self.unresolved: dict[str, Claim] = {}  # held by this invocation, outcome not written
        self.pending: list[Transition] = []  # outcomes to write
        # Claims held for a later look within this invocation: (monotonic time due, order,
        # claim), soonest first.
        self._later: list[tuple[float, int, Claim]] = []
        self._later_order = itertools.count()

    def track(self, claim: Claim) -> None:
        """A claim taken by this invocation, its outcome still to write."""
        self.unresolved[claim.id] = claim
        self.summary.claimed += 1
        self.summary.reclaimed += int(claim.reclaimed)

    def later(self, claim: Claim, due: float) -> None:
        """Hold a claim (still unresolved) to be worked again at monotonic time `due`."""
        heapq.heappush(self._later, (due, next(self._later_order), claim))

    def due(self, now: float) -> list[Claim]:
        """The claims held for later whose time has come, taken."""
        taken = []
        while self._later and self._later[0][0] <= now:
            taken.append(heapq.heappop(self._later)[2])
        return taken

    def next_due(self) -> float | None:
        """When the next claim held for later is due (monotonic), or None."""
        return self._later[0][0] if self._later else None

    def give_back_later(self) -> None:
        """The claims held for later go back, keeping their items' places."""
        while self._later:
            self.release(heapq.heappop(self._later)[2], keep_place=True)

    def add(self, transition: Transition) -> None:
        """An outcome to write with the next `record`."""
        self.pending.append(transition)

    def release(self, claim: Claim, error: str | None = None, *, keep_place: bool = False) -> None:
        """Give a claim back (no attempt counted); `keep_place`: its item keeps its place in the
        queue (domain/claims.py, release_transition)."""
        self.summary.released += 1
        self.pending.append(
            release_transition(claim, self.held, self.deps.invocation, error, keep_place=keep_place)
        )

    def take_pending(self) -> list[Transition]:
        """The outcomes waiting to be written, taken."""
        pending, self.pending = self.pending, []
        return pending

    def record(self, transitions: list[Transition]) -> list[bool]:
        """Write outcomes (repeating failed writes) and count them; which were applied."""
        if not transitions:
            return []
        applied = self.apply(transitions)
        self.resolved(transitions, applied)
        return applied

    def resolved(self, transitions: list[Transition], applied: list[bool]) -> None:
        """Outcomes written elsewhere (`apply_with_tries` beside the loop): no longer held."""
        for transition in transitions:
            self.unresolved.pop(transition.id, None)
        self.summary.count(transitions, applied)

    def apply(self, transitions: list[Transition]) -> list[bool]:
        """Write transitions (repeating failed writes), not counted; which were applied."""
        return self.written(transitions, *self.apply_with_tries(transitions))

    def apply_with_tries(
        self, transitions: list[Transition]
    ) -> tuple[list[bool | None], BaseException | None]:
        """Write transitions, repeating those whose write failed; None where every try failed.
        Touches nothing of the loop: it may run beside it."""
        return apply_with_tries(
            self.deps.store,
            transitions,
            self.deps.clock,
            lambda: self.deps.remaining_ms() >= self.limits.record_budget_ms,
        )

    def written(
        self,
        transitions: list[Transition],
        results: list[bool | None],
        error: BaseException | None,
    ) -> list[bool]:
        """The results of apply_with_tries; RecordFailed when some were never written."""
        unwritten = [t.id for t, done in zip(transitions, results, strict=True) if done is None]
        if unwritten:
            self.summary.record_failures += len(unwritten)
            # Their images stay held (their records may be on the stream already): the
            # lease brings them back, counting an attempt.
            for image_id in unwritten:
                self.unresolved.pop(image_id, None)
            raise RecordFailed(f"outcomes not written after {RECORD_TRIES} tries: {error}")
        return [bool(done) for done in results]

    def release_leftovers(self) -> None:
        """After a failure, give back what was neither recorded nor released (what was held
        for a later look keeping its place: it was never the failure's)."""
        later = {claim.id for _, _, claim in self._later}
        self._later.clear()
        invocation = self.deps.invocation
        leftovers = [
            release_transition(c, self.held, invocation, keep_place=c.id in later)
            for c in self.unresolved.values()
        ]
        self.unresolved.clear()
        # If this fails too, the lease brings the claims back; the first error is the one raised.
        with contextlib.suppress(Exception):
            self.summary.released += len(leftovers)
            self.summary.count(leftovers, self.deps.store.apply(leftovers))
