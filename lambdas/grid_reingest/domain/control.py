"""The live control of a pass: the operator's knobs and the controller's state.

Both live in one control item beside the images (see adapters/dynamodb/control.py),
so that a pause or a new ceiling takes effect without a redeploy and the
controller's state survives from one worker invocation to the next. The state is
typed (each loop's own class) and written down field by field (`to_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from grid_reingest.domain.grid_state import GridState
from grid_reingest.domain.thrall_handover import Handover
from grid_reingest.domain.thrall_state import ThrallState

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
    """The controller's state between decisions and invocations.

    `limit` is the images in flight it allows now (0 while thrall's loop stops the
    pass), `rate_per_minute` the starts a minute it allows (None: no rate ceiling),
    `reason` why, in words an operator reads in `watch`. `grid` and `thrall` are the
    two loops' own states (a worker paced on the Grid alone has no `thrall`);
    `workers` the running workers' marks (flows/pace.py: each one's last step, epoch
    seconds); `held` the images still in flight of workers that start no more (each:
    the count, and when it was told, epoch seconds); `handover` thrall's progress as
    the invocations that ended last read it, for the next (domain/thrall_handover.py);
    `history` its last decisions.
    """

    limit: float
    rate_per_minute: float | None
    reason: str
    decided_at: str | None = None
    grid: GridState | None = None
    thrall: ThrallState | None = None
    workers: Mapping[str, float] = field(default_factory=dict)
    held: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    handover: Handover | None = None
    history: tuple[str, ...] = ()
    stepped_at: float | None = None  # epoch seconds of the last step

    def with_history(self, line: str) -> PaceState:
        """This state with `line` added to its history (the oldest dropped)."""
        return replace(self, history=(*self.history, line)[-HISTORY_LENGTH:])

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON values, each field named."""
        return {
            "limit": self.limit,
            "ratePerMinute": self.rate_per_minute,
            "reason": self.reason,
            "decidedAt": self.decided_at,
            "steppedAt": self.stepped_at,
            "grid": None if self.grid is None else self.grid.to_json(),
            "thrall": None if self.thrall is None else self.thrall.to_json(),
            "workers": dict(self.workers),
            "held": {k: list(v) for k, v in self.held.items()},
            "handover": None if self.handover is None else self.handover.to_json(),
            "history": list(self.history),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaceState:
        """From `to_json`'s object. A state written before the loops had states of their own
        (a `memory` map) keeps its limit and rate; the loops start afresh from them."""
        limit = float(data["limit"])
        rate = data.get("ratePerMinute")
        grid = data.get("grid")
        thrall = data.get("thrall")
        handover = data.get("handover")
        return cls(
            limit=limit,
            rate_per_minute=None if rate is None else float(rate),
            reason=str(data.get("reason", "")),
            decided_at=data.get("decidedAt"),
            grid=GridState.from_json(grid) if grid is not None else None,
            thrall=ThrallState.from_json(thrall) if thrall is not None else None,
            workers={str(k): float(v) for k, v in (data.get("workers") or {}).items()},
            held={
                str(k): (float(count), float(at))
                for k, (count, at) in (data.get("held") or {}).items()
            },
            handover=None if handover is None else Handover.from_json(handover),
            history=tuple(data.get("history") or ()),
            stepped_at=None if data.get("steppedAt") is None else float(data["steppedAt"]),
        )


@dataclass(frozen=True)
class Control:
    """The control item as read: the knobs, the controller's state (None before its first
    decision) and the version a conditional save of the state must still find."""

    knobs: Knobs = field(default_factory=Knobs)
    pace: PaceState | None = None
    version: int = 0
