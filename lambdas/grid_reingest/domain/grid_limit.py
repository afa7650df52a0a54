"""The Grid loop: how many images may be in flight, from the latency and overload answers seen.

A delay-based limiter in the manner of TCP Vegas and Netflix concurrency-limits'
gradient limits. The images waiting in the Grid's queues are about
`used x (1 - baseline / latency)` (Little's law: what waits is the throughput
times the wait, the latency over its no-load baseline), where `used` is what
the pass really had in flight. The limit grows while that queue is under a
target and jumps back to the level that leaves the target queued when it is
over twice that; overload answers (429/502/503/504, throttles) cut it
multiplicatively.

The baseline is what makes this work or not. Per-image times vary widely (a
projection converts an image of any size), so any one decision's latency is
noisy, and the lowest of many noisy figures is far below the true one: a
phantom queue that grows with the limit and stops it well below capacity. So
the baseline is the lowest mean latency of a few long blocks (minutes,
hundreds of images each), and the latency judged is a mean smoothed over
decisions. Means, not medians: Little's law holds for means, and what waits
is the throughput times the mean wait. A stray time far above the baseline (a
timeout) is counted at `outlier_factor` times it, so that one image does not
look like a queue. Why each constant: docs/throughput.md.

Pure; its state (`GridState`) is saved with the controller's (domain/control.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from grid_reingest.domain.tuning import Tuning


@dataclass(frozen=True)
class Block:
    """A stretch of the pass's latencies: from `start` (epoch seconds), their sum and sum of
    squares (ms) and how many."""

    start: float
    total_ms: float = 0.0
    squares: float = 0.0
    count: int = 0

    def add(self, latencies_ms: list[float]) -> Block:
        """This block with more latencies."""
        return Block(
            self.start,
            self.total_ms + sum(latencies_ms),
            self.squares + sum(ms * ms for ms in latencies_ms),
            self.count + len(latencies_ms),
        )

    def bound_ms(self, z: float) -> float:
        """The block's mean latency plus `z` standard errors: a no-load latency the block's
        own noise cannot have put too low."""
        mean = self.total_ms / self.count
        variance = max(0.0, self.squares / self.count - mean * mean)
        return mean + z * math.sqrt(variance / self.count)

    def to_json(self) -> list[float]:
        """Four numbers."""
        return [self.start, self.total_ms, self.squares, self.count]

    @classmethod
    def from_json(cls, data: Any) -> Block:
        """From `to_json`'s numbers."""
        start, total, squares, count = data
        return cls(float(start), float(total), float(squares), int(count))


@dataclass(frozen=True)
class GridState:
    """The Grid loop's memory between decisions."""

    limit: float
    grown: bool = False  # the slow start is over: the Grid has shown a queue
    blocks: tuple[Block, ...] = ()  # the last few closed blocks, then the open one
    smooth_total_ms: float = 0.0  # the smoothed latency: weighted sums of latencies...
    smooth_count: float = 0.0  # ...and of images
    baseline_ms: float | None = None  # the baseline last judged by (for `watch`)
    hold_until: float = 0.0  # no further cut before this (epoch seconds)

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
            "smoothTotalMs": self.smooth_total_ms,
            "smoothCount": self.smooth_count,
            "baselineMs": self.baseline_ms,
            "holdUntil": self.hold_until,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GridState:
        """From `to_json`'s object; ValueError naming what is wrong."""
        try:
            return cls(
                limit=float(data["limit"]),
                grown=bool(data.get("grown", False)),
                blocks=tuple(Block.from_json(b) for b in data.get("blocks") or ()),
                smooth_total_ms=float(data.get("smoothTotalMs", 0.0)),
                smooth_count=float(data.get("smoothCount", 0.0)),
                baseline_ms=_optional(data.get("baselineMs")),
                hold_until=float(data.get("holdUntil", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"the Grid loop's state is malformed ({error!r}): {data!r}") from None


@dataclass(frozen=True)
class GridSample:
    """What the Grid showed since the last decision, as the pass's (scaled to every worker)."""

    now: float  # epoch seconds
    finished: int  # images finished (one worker's count)
    overloaded: int  # of those, overload answers
    latencies_ms: tuple[float, ...]  # times of the others
    elapsed: float  # seconds the counts cover, divided by the workers running alike
    in_flight: float | None = None  # the pass's images in flight on average; None: unknown


class GridLimit:
    """Steps the in-flight limit; see the module docstring."""

    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning

    def fresh(self) -> GridState:
        """The state before any decision."""
        return GridState(float(self.tuning.start_limit))

    def step(  # noqa: PLR0911 (one decision table)
        self, state: GridState, sample: GridSample, ceiling: float
    ) -> tuple[GridState, str]:
        """The next state, and why, in an operator's words."""
        t = self.tuning
        limit = min(max(state.limit, t.min_limit), ceiling)
        state = replace(state, limit=limit)
        holding = sample.now < state.hold_until
        if sample.finished and sample.overloaded / sample.finished > t.overload_share:
            if holding:
                return state, f"overload: {sample.overloaded} of {sample.finished}; holding the cut"
            cut = max(t.min_limit, limit * t.backoff)
            return self._cut(state, cut, sample), (
                f"overload: {sample.overloaded} of {sample.finished} answers; limit cut"
            )
        if not sample.latencies_ms:
            return state, "no finished images to judge by: holding"
        state, now_ms = self._observe(state, sample)
        baseline = baseline_of(state.blocks, t)
        latency = state.latency_ms or now_ms
        state = replace(state, baseline_ms=baseline)
        used = sample.in_flight
        if used is None:
            # Little's law: the images in flight on average, from throughput and latency.
            used = sample.finished * now_ms / 1000 / sample.elapsed
        used = min(limit, used)
        queue = used * (1 - baseline / latency)  # smoothed: what decides a cut
        fresh = used * (1 - baseline / now_ms)  # this decision's alone: what stops a rise
        target = max(t.min_queue, t.queue_share * used)
        if fresh >= target:
            state = replace(state, grown=True)  # the slow start is over: the Grid has a queue
        if holding:
            return state, f"~{queue:.1f} queued at the Grid: holding the last cut"
        if queue > 2 * target:
            new = min(limit, max(t.min_limit, used * baseline / latency + target))
            return self._cut(state, new, sample), (
                f"latency {latency:.0f} ms over baseline {baseline:.0f} ms "
                f"(~{queue:.1f} queued at the Grid); limit cut"
            )
        if queue < target and fresh < 2 * target and used >= t.used_share * math.floor(limit):
            # Per refresh of the pass's time (overlapping workers each step with their part):
            # doubling until the Grid first queues (TCP's slow start), then a fifth.
            share = sample.elapsed / t.default_seconds
            factor = 2**share if not state.grown else 1 + t.grow * share
            new = min(ceiling, max(limit * factor, limit + share))
            reason = "headroom: limit raised" if new > limit else "at the ceiling"
            return replace(state, limit=new), reason
        return state, f"~{queue:.1f} queued at the Grid: holding"

    def _cut(self, state: GridState, limit: float, sample: GridSample) -> GridState:
        """`state` cut to `limit`: no further cut until the images started since have answered
        (those in flight at the cut still show the queue it answers), and the smoothed
        latency starts afresh."""
        latency_s = (state.latency_ms or 0.0) / 1000
        hold = max(self.tuning.default_seconds, self.tuning.cut_hold_latencies * latency_s)
        return replace(
            state,
            limit=limit,
            grown=True,
            hold_until=sample.now + hold,
            smooth_total_ms=0.0,
            smooth_count=0.0,
        )

    def _observe(self, state: GridState, sample: GridSample) -> tuple[GridState, float]:
        """Add the latencies to the open block (closing it once long enough) and to the
        smoothed latency; this decision's mean latency."""
        t = self.tuning
        blocks = list(state.blocks)
        # A stray time far above what the Grid has shown (a timeout) counts as at most this.
        most = t.outlier_factor * baseline_of(tuple(blocks), t) if blocks else math.inf
        latencies = [min(ms, most) for ms in sample.latencies_ms]
        if not blocks or sample.now - blocks[-1].start >= t.block_seconds:
            blocks.append(Block(sample.now))
        blocks[-1] = blocks[-1].add(latencies)
        blocks = blocks[-(t.baseline_blocks + 1) :]
        w = t.latency_weight
        observed = replace(
            state,
            blocks=tuple(blocks),
            smooth_total_ms=state.smooth_total_ms * w + sum(latencies),
            smooth_count=state.smooth_count * w + len(latencies),
        )
        return observed, sum(latencies) / len(latencies)


def baseline_of(blocks: tuple[Block, ...], t: Tuning) -> float:
    """The no-load latency: the lowest bound of the closed blocks with enough images; before
    there is one, the bound of every image so far (the start of a pass queues little)."""
    full = [b.bound_ms(t.baseline_z) for b in blocks[:-1] if b.count >= t.block_min_images]
    if full:
        return min(full)
    pooled = Block(0.0)
    for b in blocks:
        pooled = Block(
            0.0, pooled.total_ms + b.total_ms, pooled.squares + b.squares, pooled.count + b.count
        )
    return pooled.bound_ms(t.baseline_z)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)
