"""What one worker invocation did, and the end of a pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from grid_reingest import names
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.states import ProgressState
from grid_reingest.ports import ClaimStore, PaceDecision, RuleSwitch


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
    ended_pass: str | None = None  # the pass this invocation finished (its report written)
    overloaded: int = 0  # overload answers (the controller slows down)
    infra_released: int = 0  # of `released`: overload or infrastructure, no attempt counted
    expired_claims: int = 0  # taken over after their lease ran out: an attempt counted
    record_failures: int = 0  # outcomes not written after every try
    limit: int | None = None  # the pace's last in-flight limit
    rate: float | None = None  # the pace's last rate ceiling (starts a minute)
    paused: bool = False
    pace_reason: str | None = None
    idle_reason: str | None = None  # ended early: nothing could start (back-pressure)
    reenabled: bool = False  # switched its rule off, found new work, switched it back on
    systemic: str | None = None  # stopped for the system's failure (domain/systemic.py)
    own_overloads: int = 0  # an image's own overload answers counted on it, no attempt yet
    signals_unread: dict[str, int] = field(default_factory=dict)  # pace steps, by metric

    def note_pace(self, decision: PaceDecision) -> None:
        """Remember the pace's latest decision."""
        self.limit = decision.in_flight
        self.rate = decision.rate_per_minute
        self.paused = decision.paused
        self.pace_reason = decision.reason

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
            "endedPass": self.ended_pass,
            "overloaded": self.overloaded,
            "infraReleased": self.infra_released,
            "expiredClaims": self.expired_claims,
            "recordFailures": self.record_failures,
            "limit": self.limit,
            "rate": self.rate,
            "paused": self.paused,
            "paceReason": self.pace_reason,
            "idleReason": self.idle_reason,
            "reenabled": self.reenabled,
            "systemic": self.systemic,
            "ownOverloads": self.own_overloads,
            "signalsUnread": self.signals_unread,
            **self.details(),
        }

    def details(self) -> dict[str, Any]:
        """What only this worker counts, for the log line (none here)."""
        return {}

    def worker_metrics(self) -> dict[str, float]:
        """What only this worker counts, as metrics (none here)."""
        return {}

    def metric_counts(self) -> dict[str, float]:
        """The summary as metrics (names from telemetry)."""
        counts: dict[str, float] = {
            names.CLAIMED: self.claimed,
            names.RECLAIMED: self.reclaimed,
            names.FAILED: self.failures,
            names.RELEASED: self.released,
            names.LOST_CLAIMS: self.lost_claims,
            names.COMPLETED: int(self.finished_pass),
            names.OVERLOAD: self.overloaded,
            names.INFRA_RELEASED: self.infra_released,
            names.EXPIRED_CLAIMS: self.expired_claims,
            names.PAUSED: int(self.paused),
            names.SYSTEMIC_FAILURES: int(self.systemic is not None),
        }
        if self.limit is not None:
            counts[names.CONTROL_LIMIT] = self.limit
        if self.rate is not None:
            counts[names.CONTROL_RATE] = self.rate
        for state, n in self.states.items():
            counts[names.state_metric(state)] = n
        counts.update(self.signals_unread)
        counts.update(self.worker_metrics())
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
    rule: RuleSwitch | None,
) -> None:
    """Once nothing is left in `states`, the pass is finished: say so, switch the rule off.

    An upload and a start may land between the look and the switch: after
    switching off, look again, and switch back on if work appeared.
    """
    states = list(states)
    if table.has_any(states):
        return  # work left, claims still held by live workers, or the index lagging behind
    summary.finished_pass = True
    if rule is None or not rule.disable():
        return
    if table.has_any(states):
        rule.enable()
        summary.finished_pass = False
        summary.reenabled = True
