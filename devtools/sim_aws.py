"""AWS calls on simulated time: the state table and the control item, each call after its
round trip.

The in-memory store and control item do the work (atomic, as DynamoDB's
conditional writes are); these wrappers make each call take the time it
takes against DynamoDB, and do it at the end of that time, so that what a
call sees does not depend on which thread got there first (sim_clock.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from devtools.sim_clock import VirtualClock
from grid_reingest.domain.claims import Claim, Source, Transition
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest.domain.states import ProgressState

# DynamoDB round trips as the workers make them: a claim reads the 16 index shards'
# heads, then takes each id with a conditional UpdateItem (both in parallel); an
# outcome write is conditional UpdateItems in parallel; a read of one item is a GetItem.
CLAIM_SECONDS = 0.025
APPLY_SECONDS = 0.012
QUERY_SECONDS = 0.01
GET_SECONDS = 0.005
PUT_SECONDS = 0.008


class SimStore:
    """The ClaimStore port: a MemoryStore whose calls take DynamoDB's time."""

    def __init__(self, store: MemoryStore, clock: VirtualClock) -> None:
        self.memory = store
        self._clock = clock

    def claim(
        self, sources: Sequence[Source], to_state: ProgressState, limit: int, invocation: str
    ) -> list[Claim]:
        """Claim, once the call's round trip is over."""
        self._clock.sleep(CLAIM_SECONDS, key=f"claim:{invocation}")
        return self.memory.claim(sources, to_state, limit, invocation)

    def apply(self, transitions: Iterable[Transition]) -> list[bool]:
        """Write outcomes, once the call's round trip is over."""
        transitions = list(transitions)
        if transitions:
            self._clock.sleep(APPLY_SECONDS, key=f"apply:{transitions[0].id}")
        return self.memory.apply(transitions)

    def has_any(self, states: Iterable[ProgressState]) -> bool:
        """A query of the index, once its round trip is over."""
        self._clock.sleep(QUERY_SECONDS)
        return self.memory.has_any(states)

    def sample(self, states: Iterable[ProgressState]) -> str | None:
        """One id in `states`, once the query's round trip is over."""
        self._clock.sleep(QUERY_SECONDS)
        return self.memory.sample(states)

    def oldest_change(self, state: ProgressState) -> datetime | None:
        """The oldest change in `state`, once the queries' round trip is over."""
        self._clock.sleep(QUERY_SECONDS)
        return self.memory.oldest_change(state)


class SimControl:
    """The ControlStore port: a MemoryControl whose calls take DynamoDB's time."""

    def __init__(self, control: MemoryControl, clock: VirtualClock) -> None:
        self.memory = control
        self._clock = clock

    def read(self) -> Control:
        """GetItem."""
        self._clock.sleep(GET_SECONDS)
        return self.memory.read()

    def save_pace(self, pace: PaceState, expected_version: int) -> bool:
        """A conditional UpdateItem."""
        self._clock.sleep(PUT_SECONDS)
        return self.memory.save_pace(pace, expected_version)

    def set_knobs(self, knobs: Knobs, previous: Knobs | None = None) -> Control:
        """The operator's write (no time taken: the operator is not simulated)."""
        return self.memory.set_knobs(knobs, previous)

    def count_refusal(self, refused: bool) -> int:
        """An UpdateItem."""
        self._clock.sleep(PUT_SECONDS)
        return self.memory.count_refusal(refused)
