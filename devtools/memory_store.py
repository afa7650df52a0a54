"""An in-memory state table with atomic conditional writes (the ClaimStore port).

For the unit tier and the pass simulator: the flows run on it unchanged, and
unlike moto's server its conditional writes hold under concurrent threads
(one lock around every read-and-write), so races can be tested
deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from grid_reingest.domain.claims import Claim, Source, Transition
from grid_reingest.domain.isotime import format_instant, parse_instant, utc_now
from grid_reingest.domain.states import ProgressState

# Error text kept on an item, as the DynamoDB adapter cuts it.
MAX_ERROR_CHARS = 1000


@dataclass
class Item:
    """One image's item, with the attributes the DynamoDB item has."""

    id: str
    state: ProgressState
    state_name: str
    changed_at: str
    attempts: int = 0
    last_error: str | None = None
    claimed_by: str | None = None
    claimed_from: ProgressState | None = None
    overloads: int = 0
    pass_id: str | None = None  # the pass that armed it (attribute `pass`)
    check_first: bool = False
    reprojected: bool = False


class MemoryStore:
    """The state table in memory; every method is atomic."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._items: dict[str, Item] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.writes = 0  # conditional writes attempted, for benchmarks

    # -- loading and reading (the operator's side) -----------------------------

    def put_new(
        self,
        ids: Iterable[str],
        state: ProgressState = ProgressState.NOT_STARTED,
        *,
        pass_id: str | None = None,
        check_first: bool = False,
    ) -> int:
        """Store each id not yet present at `state` (armed for `pass_id`, checked first or
        not); returns how many were new."""
        now = self._now()
        added = 0
        with self._lock:
            for image_id in ids:
                if image_id not in self._items:
                    self._items[image_id] = Item(
                        image_id, state, state.label, now, pass_id=pass_id, check_first=check_first
                    )
                    added += 1
        return added

    def get(self, image_id: str) -> Item | None:
        """A copy of one item, or None."""
        with self._lock:
            item = self._items.get(image_id)
            return None if item is None else Item(**vars(item))

    # -- item operations as DynamoDB does them, each atomic (devtools/memory_dynamodb.py) --

    def read_items(self, ids: Iterable[str]) -> dict[str, Item]:
        """Copies of the items of `ids` that exist, read at one moment."""
        with self._lock:
            return {i: Item(**vars(self._items[i])) for i in ids if i in self._items}

    def insert(self, item: Item) -> bool:
        """Store `item` unless its id is already there (PartiQL INSERT); whether it was."""
        with self._lock:
            self.writes += 1
            if item.id in self._items:
                return False
            self._items[item.id] = Item(**vars(item))
            return True

    def put_if(self, item: Item, holds: Callable[[Item | None], bool]) -> tuple[bool, Item | None]:
        """Replace the item of `item.id` by `item` if `holds(current)` (a conditional PutItem);
        whether it was written, and a copy of the item as it was."""
        with self._lock:
            self.writes += 1
            current = self._items.get(item.id)
            before = None if current is None else Item(**vars(current))
            if not holds(before):
                return False, before
            self._items[item.id] = Item(**vars(item))
            return True, before

    def counts(
        self, states: Iterable[ProgressState] = tuple(ProgressState)
    ) -> dict[ProgressState, int]:
        """Items per state (every state asked, zeros included)."""
        totals = dict.fromkeys(states, 0)
        with self._lock:
            for item in self._items.values():
                if item.state in totals:
                    totals[item.state] += 1
        return totals

    def errors(self, states: Iterable[ProgressState], most: int) -> list[tuple[int, str | None]]:
        """(state, last_error) of up to `most` items in `states`."""
        wanted = set(states)
        with self._lock:
            found = [
                (int(i.state), i.last_error) for i in self._items.values() if i.state in wanted
            ]
        return found[:most]

    # -- the ClaimStore port ------------------------------------------------------

    def claim(
        self, sources: Sequence[Source], to_state: ProgressState, limit: int, invocation: str
    ) -> list[Claim]:
        """Take up to `limit` items from `sources` (in order) into `to_state` for `invocation`."""
        return list(self.claim_stream(sources, to_state, limit, invocation))

    def claim_stream(
        self,
        sources: Sequence[Source],
        to_state: ProgressState,
        limit: int,
        invocation: str,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Claim]:
        """Like `claim`, one item at a time, oldest change first within each source."""
        taken = 0
        for source in sources:
            for image_id, seen in self._candidates(source):
                if taken >= limit or stop():
                    return
                claim = self._take(image_id, seen, source, to_state, invocation)
                if claim is not None:
                    taken += 1
                    yield claim

    def apply(self, transitions: Iterable[Transition]) -> list[bool]:
        """Apply transitions: True where applied, False where the item had moved on."""
        return [self._apply_one(t) for t in transitions]

    def has_any(self, states: Iterable[ProgressState]) -> bool:
        """Whether at least one item is in one of `states`."""
        wanted = set(states)
        with self._lock:
            return any(item.state in wanted for item in self._items.values())

    def sample(self, states: Iterable[ProgressState]) -> str | None:
        """The id of one item in one of `states`, or None."""
        wanted = set(states)
        with self._lock:
            return next((i for i, item in self._items.items() if item.state in wanted), None)

    def oldest_change(self, state: ProgressState) -> datetime | None:
        """When the item of `state` that changed longest ago changed, or None."""
        with self._lock:
            times = [item.changed_at for item in self._items.values() if item.state == state]
        return parse_instant(min(times)) if times else None

    # -- inside -------------------------------------------------------------------------

    def _now(self) -> str:
        return format_instant(self._clock())

    def _candidates(self, source: Source) -> list[tuple[str, str]]:
        before = None if source.changed_before is None else format_instant(source.changed_before)
        with self._lock:
            found = [
                (item.changed_at, item.id)
                for item in self._items.values()
                if item.state == source.state and (before is None or item.changed_at < before)
            ]
        return [(image_id, changed) for changed, image_id in sorted(found)]

    def _take(
        self, image_id: str, seen: str, source: Source, to_state: ProgressState, invocation: str
    ) -> Claim | None:
        with self._lock:
            self.writes += 1
            item = self._items[image_id]
            if item.state != source.state or (source.reclaim and item.changed_at != seen):
                return None  # another invocation was faster
            if not source.reclaim:
                item.claimed_from = source.state
            item.state, item.state_name = to_state, to_state.label
            item.changed_at, item.claimed_by = self._now(), invocation
            changed_at = None if source.reclaim else parse_instant(seen)
            return Claim(
                image_id,
                item.attempts,
                item.claimed_from or ProgressState.NOT_STARTED,
                reclaimed=source.reclaim,
                overloads=item.overloads,
                pass_id=item.pass_id,
                check_first=item.check_first,
                reprojected=item.reprojected,
                changed_at=changed_at,
            )

    def _apply_one(self, t: Transition) -> bool:
        with self._lock:
            self.writes += 1
            item = self._items.get(t.id)
            if item is None or item.state != t.expected:
                return False
            if t.invocation is not None and item.claimed_by != t.invocation:
                return False
            item.state, item.state_name = t.new, t.label or t.new.label
            item.changed_at = self._now() if t.changed_at is None else format_instant(t.changed_at)
            if t.attempts is not None:
                item.attempts = t.attempts
            if t.overloads is not None:
                item.overloads = t.overloads
            if t.error is not None:
                item.last_error = t.error[:MAX_ERROR_CHARS] or "-"
            if t.reproject:
                item.check_first, item.reprojected = False, True
            if not t.new.is_claim:
                item.claimed_by = item.claimed_from = None
            return True
