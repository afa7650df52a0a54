"""What a bulk upload did: one count per outcome, filled in as its batches finish."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from grid_reingest.adapters.dynamodb.schema import STATE


@dataclass
class WriteReport:
    """What a bulk upload did so far; filled in as batches finish, so an interrupted upload
    still says what it wrote."""

    written: int = 0
    # Items already in the table and left as they were, by state.
    kept: Counter[int] = field(default_factory=Counter)
    # Items put back at state 0 (reset_existing), by the state they were in.
    reset: Counter[int] = field(default_factory=Counter)
    # Items a worker holds (claim state, lease running): never reset.
    held: int = 0
    # Ids this run had already written: repeats in the input beyond the dedup window.
    repeated: int = 0
    # Items a finished pass left final, armed again for the new pass, by the state they were in.
    rearmed: Counter[int] = field(default_factory=Counter)

    @property
    def already_present(self) -> int:
        """Ids that were in the table before this run."""
        return (
            sum(self.kept.values())
            + sum(self.reset.values())
            + sum(self.rearmed.values())
            + self.held
        )

    @property
    def done(self) -> int:
        """Ids dealt with, whatever happened to them."""
        return self.written + self.already_present + self.repeated

    def add(self, other: WriteReport) -> None:
        """Count what `other` counted too."""
        self.written += other.written
        self.kept.update(other.kept)
        self.reset.update(other.reset)
        self.held += other.held
        self.repeated += other.repeated
        self.rearmed.update(other.rearmed)

    def note(self, outcome: str, item: dict[str, Any] | None) -> None:
        """Count one id's `outcome`, by the state of the `item` it found (None: none)."""
        state = int(item[STATE]["N"]) if item is not None and STATE in item else -1
        if outcome == "written":
            self.written += 1
        elif outcome == "reset":
            self.reset[state] += 1
        elif outcome == "rearmed":
            self.rearmed[state] += 1
        elif outcome == "held":
            self.held += 1
        elif outcome == "repeated":
            self.repeated += 1
        else:
            self.kept[state] += 1
