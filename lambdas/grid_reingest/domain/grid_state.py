"""The Grid loop's memory between decisions, typed, and how it is written down.

`Block` keeps a stretch of latencies as three sums (so a mean and its standard
error come out of a few numbers, not the latencies themselves); `GridState`
is what domain/grid_limit.py keeps from one decision to the next. `to_json` /
`from_json` name each field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Block:
    """A stretch of the pass's latencies: from `start` (epoch seconds), their sum and sum of
    squares (ms) and how many (weighed: an older probe's count for less)."""

    start: float
    total_ms: float = 0.0
    squares: float = 0.0
    count: float = 0

    def add(self, latencies_ms: list[float]) -> Block:
        """This block with more latencies."""
        return Block(
            self.start,
            self.total_ms + sum(latencies_ms),
            self.squares + sum(ms * ms for ms in latencies_ms),
            self.count + len(latencies_ms),
        )

    def merge(self, other: Block) -> Block:
        """Both blocks' latencies, from this one's start."""
        return Block(
            self.start,
            self.total_ms + other.total_ms,
            self.squares + other.squares,
            self.count + other.count,
        )

    def weighed(self, weight: float) -> Block:
        """This block counting `weight` times as much (its mean and spread unchanged)."""
        return Block(self.start, self.total_ms * weight, self.squares * weight, self.count * weight)

    @property
    def error_ms(self) -> float:
        """The standard error of the block's mean."""
        return self.spread_ms / math.sqrt(self.count)

    @property
    def mean_ms(self) -> float:
        """The block's mean latency."""
        return self.total_ms / self.count

    @property
    def spread_ms(self) -> float:
        """The standard deviation of the block's latencies."""
        mean = self.mean_ms
        return math.sqrt(max(0.0, self.squares / self.count - mean * mean))

    def bound_ms(self, z: float) -> float:
        """The block's mean latency plus `z` standard errors: a no-load latency the block's
        own noise cannot have put too low."""
        return self.mean_ms + z * self.error_ms

    def to_json(self) -> list[float]:
        """Four numbers."""
        return [self.start, self.total_ms, self.squares, self.count]

    @classmethod
    def from_json(cls, data: Any) -> Block:
        """From `to_json`'s numbers."""
        start, total, squares, count = data
        return cls(float(start), float(total), float(squares), float(count))


@dataclass(frozen=True)
class GridState:
    """The Grid loop's memory between decisions (times in epoch seconds)."""

    limit: float
    grown: bool = False  # the slow start is over: the Grid has shown a queue
    blocks: tuple[Block, ...] = ()  # since the last probe: closed blocks, then the open one
    probed: Block | None = None  # what the probes measured (no queue), the latest the most
    probing: Block | None = None  # ...and what the probe under way has measured so far
    smooth_total_ms: float = 0.0  # the smoothed latency: weighted sums of latencies...
    smooth_count: float = 0.0  # ...and of images
    baseline_ms: float | None = None  # the baseline last judged by (for `watch`)
    hold_until: float = 0.0  # no further cut before this
    probed_at: float | None = None  # when the last probe ended (or the loop began)
    probe_until: float = 0.0  # probing the no-load latency until this (0: not probing)
    probe_from: float = 0.0  # ...measuring from this (what queued has drained by then)
    resume_limit: float = 0.0  # ...and back to this limit after it

    @property
    def latency_ms(self) -> float | None:
        """The smoothed mean latency; None before any image."""
        if self.smooth_count <= 0:
            return None
        return self.smooth_total_ms / self.smooth_count

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, named."""
        return {
            "limit": self.limit,
            "grown": self.grown,
            "blocks": [b.to_json() for b in self.blocks],
            "probed": None if self.probed is None else self.probed.to_json(),
            "probing": None if self.probing is None else self.probing.to_json(),
            "smoothTotalMs": self.smooth_total_ms,
            "smoothCount": self.smooth_count,
            "baselineMs": self.baseline_ms,
            "holdUntil": self.hold_until,
            "probedAt": self.probed_at,
            "probeUntil": self.probe_until,
            "probeFrom": self.probe_from,
            "resumeLimit": self.resume_limit,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GridState:
        """From `to_json`'s object; ValueError naming what is wrong."""
        try:
            probed, probing = data.get("probed"), data.get("probing")
            return cls(
                limit=float(data["limit"]),
                grown=bool(data.get("grown", False)),
                blocks=tuple(Block.from_json(b) for b in data.get("blocks") or ()),
                probed=None if probed is None else Block.from_json(probed),
                probing=None if probing is None else Block.from_json(probing),
                smooth_total_ms=float(data.get("smoothTotalMs", 0.0)),
                smooth_count=float(data.get("smoothCount", 0.0)),
                baseline_ms=_optional(data.get("baselineMs")),
                hold_until=float(data.get("holdUntil", 0.0)),
                probed_at=_optional(data.get("probedAt")),
                probe_until=float(data.get("probeUntil", 0.0)),
                probe_from=float(data.get("probeFrom", 0.0)),
                resume_limit=float(data.get("resumeLimit", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the Grid loop's state is malformed ({error!r}): {data!r}") from None


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)
