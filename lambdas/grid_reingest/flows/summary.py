"""What one worker invocation did, and the end of a pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from grid_reingest import names
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.states import ProgressState
from grid_reingest.ports import ClaimStore, RuleSwitch


@dataclass
class Summary:
    """What one worker invocation did to its claims: logged as one line and emitted as metrics."""

    claimed: int = 0
    reclaimed: int = 0
    states: Counter[int] = field(default_factory=Counter)  # items moved into each state
    released: int = 0
    failures: int = 0
    lost_claims: int = 0
    stopped_because: str | None = None
    finished_pass: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The summary as one structured log line."""
        return {
            "claimed": self.claimed,
            "reclaimed": self.reclaimed,
            "states": {str(k): v for k, v in sorted(self.states.items())},
            "released": self.released,
            "failures": self.failures,
            "lostClaims": self.lost_claims,
            "stoppedBecause": self.stopped_because,
            "finishedPass": self.finished_pass,
        }

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts: dict[str, float] = {
            names.CLAIMED: self.claimed,
            names.RECLAIMED: self.reclaimed,
            names.FAILED: self.failures,
            names.RELEASED: self.released,
            names.LOST_CLAIMS: self.lost_claims,
            names.COMPLETED: int(self.finished_pass),
        }
        for state, n in self.states.items():
            counts[names.state_metric(state)] = n
        return counts

    def count(self, transitions: Iterable[Transition], applied: Iterable[bool]) -> None:
        """Count written transitions by their new state; the rest found the claim moved on."""
        for transition, ok in zip(transitions, applied, strict=True):
            if ok:
                self.states[int(transition.new)] += 1
            else:
                self.lost_claims += 1


def finish_if_done(
    table: ClaimStore,
    states: Iterable[ProgressState],
    summary: Summary,
    disable_schedule: RuleSwitch | None,
) -> None:
    """Once nothing is left in `states`, the pass is finished: say so, switch the rule off."""
    if table.has_any(states):
        return  # work left, claims still held by live workers, or the index lagging behind
    summary.finished_pass = True
    if disable_schedule is not None:
        disable_schedule()
