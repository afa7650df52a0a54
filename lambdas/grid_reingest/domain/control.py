"""The live control of a pass: the operator's knobs and the controller's memory.

Both live in one control item beside the images (see adapters/dynamodb/control.py),
so that a pause or a new ceiling takes effect without a redeploy and the
controller's state survives from one worker invocation to the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# How many of the controller's last decisions the control item keeps (for `watch`).
HISTORY_LENGTH = 10


@dataclass(frozen=True)
class Knobs:
    """What the operator set while the pass runs; None: the deployed setting applies."""

    paused: bool = False
    max_in_flight: int | None = None
    max_rate_per_minute: int | None = None


@dataclass(frozen=True)
class PaceState:
    """The controller's memory between invocations.

    `limit` is the images in flight it allows, `rate_per_minute` the starts a
    minute it allows (None: no rate ceiling), `reason` why, in words an operator
    reads in `watch`; `memory` holds whatever else the controller keeps (a
    latency baseline, the last iterator age seen); `history` its last decisions.
    """

    limit: float
    rate_per_minute: float | None
    reason: str
    decided_at: str | None = None
    memory: Mapping[str, float] = field(default_factory=dict)
    history: tuple[str, ...] = ()

    def with_history(self, line: str) -> PaceState:
        """This state with `line` added to its history (the oldest dropped)."""
        kept = (*self.history, line)[-HISTORY_LENGTH:]
        return PaceState(
            self.limit, self.rate_per_minute, self.reason, self.decided_at, self.memory, kept
        )


@dataclass(frozen=True)
class Control:
    """The control item as read: the knobs, the controller's state (None before its first
    decision) and the version a conditional save of the state must still find."""

    knobs: Knobs = field(default_factory=Knobs)
    pace: PaceState | None = None
    version: int = 0
