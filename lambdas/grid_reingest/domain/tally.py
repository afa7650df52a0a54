"""How many items each state holds, kept from the table's own record of its changes.

Pure: no AWS. Every write to an image's item is a change from one state (none
for a new item) to another (none for a deleted one); the tally moves one count
from the first to the second. Applied once per change, in any order, the tally
is the number of items in each state, and its total the number of images in
the table: a move takes from one state what it gives to another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def deltas(changes: Iterable[tuple[int | None, int | None]]) -> dict[int, int]:
    """What (state before, state after) changes add to each state; states that come to 0
    are left out, so a batch of writes that moved nothing adds nothing."""
    moved: Counter[int] = Counter()
    for before, after in changes:
        if before == after:
            continue
        if before is not None:
            moved[before] -= 1
        if after is not None:
            moved[after] += 1
    return {state: n for state, n in moved.items() if n}


@dataclass(frozen=True)
class Tally:
    """The items per state as the tally holds them now."""

    counts: Mapping[int, int] = field(default_factory=dict)
    # When a batch of changes was last added (ISO-8601 UTC), and how many batches were.
    updated_at: str | None = None
    batches: int = 0
    # When an exact recount was stored as the tally (ISO-8601 UTC), if ever.
    recounted_at: str | None = None

    @property
    def total(self) -> int:
        """Every image the tally has seen arrive and not leave."""
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        """False when some state is below 0: items that were there before the tally began
        have moved (the table held images when its stream was switched on)."""
        return all(n >= 0 for n in self.counts.values())

    def held(self) -> dict[int, int]:
        """The states that hold items, and how many."""
        return {state: n for state, n in self.counts.items() if n}
