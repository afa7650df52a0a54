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
the baseline is the lowest of a few long blocks (minutes, hundreds of images
each), each summarised by its geometric mean latency, and the latency judged
is smoothed over decisions. Why each constant: docs/throughput.md.

Pure; its state (`GridState`) is saved with the controller's (domain/control.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from grid_reingest.domain.tuning import Tuning


@dataclass(frozen=True)
class Block:
    """A stretch of the pass's latencies: from `start` (epoch seconds), the sum of their
    logarithms (ms) and how many."""

    start: float
    log_sum: float = 0.0
    count: int = 0

    @property
    def latency_ms(self) -> float:
        """The block's geometric mean latency."""
        return math.exp(self.log_sum / self.count)

    def to_json(self) -> list[float]:
        """Three numbers."""
        return [self.start, self.log_sum, self.count]

    @classmethod
    def from_json(cls, data: Any) -> Block:
        """From `to_json`'s numbers."""
        start, log_sum, count = data
        return cls(float(start), float(log_sum), int(count))


@dataclass(frozen=True)
class GridState:
    """The Grid loop's memory between decisions."""

    limit: float
    grown: bool = False  # the slow start is over: the Grid has shown a queue
    blocks: tuple[Block, ...] = ()  # the last few closed blocks, then the open one
    smooth_log_sum: float = 0.0  # the smoothed latency: weighted sums of logarithms...
    smooth_count: float = 0.0  # ...and of images
    baseline_ms: float | None = None  # the baseline last judged by (for `watch`)
    kept_limit: float | None = None  # the limit kept while thrall's loop stops the pass

    @property
    def latency_ms(self) -> float | None:
        """The smoothed latency (geometric mean); None before any image."""
        if self.smooth_count <= 0:
            return None
        return math.exp(self.smooth_log_sum / self.smooth_count)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, named."""
        return {
            "limit": self.limit,
            "grown": self.grown,
            "blocks": [b.to_json() for b in self.blocks],
            "smoothLogSum": self.smooth_log_sum,
            "smoothCount": self.smooth_count,
            "baselineMs": self.baseline_ms,
            "keptLimit": self.kept_limit,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GridState:
        """From `to_json`'s object; ValueError naming what is wrong."""
        try:
            return cls(
                limit=float(data["limit"]),
                grown=bool(data.get("grown", False)),
                blocks=tuple(Block.from_json(b) for b in data.get("blocks") or ()),
                smooth_log_sum=float(data.get("smoothLogSum", 0.0)),
                smooth_count=float(data.get("smoothCount", 0.0)),
                baseline_ms=_optional(data.get("baselineMs")),
                kept_limit=_optional(data.get("keptLimit")),
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

    def step(self, state: GridState, sample: GridSample, ceiling: float) -> tuple[GridState, str]:
        """The next state, and why, in an operator's words."""
        t = self.tuning
        limit = min(max(state.limit, t.min_limit), ceiling)
        state = replace(state, limit=limit)
        if sample.finished and sample.overloaded / sample.finished > t.overload_share:
            cut = max(t.min_limit, limit * t.backoff)
            return replace(state, limit=cut, grown=True), (
                f"overload: {sample.overloaded} of {sample.finished} answers; limit cut"
            )
        if not sample.latencies_ms:
            return state, "no finished images to judge by: holding"
        state = self._observe(state, sample)
        baseline = _baseline(state.blocks, t.block_min_images)
        latency = state.latency_ms or baseline
        state = replace(state, baseline_ms=baseline)
        used = sample.in_flight
        if used is None:
            # Little's law: the images in flight on average, from throughput and latency.
            mean_s = sum(sample.latencies_ms) / len(sample.latencies_ms) / 1000
            used = sample.finished * mean_s / sample.elapsed
        used = min(limit, used)
        queue = used * (1 - baseline / latency)
        target = max(t.min_queue, t.queue_share * used)
        if queue >= target:
            state = replace(state, grown=True)  # the slow start is over: the Grid has a queue
        if queue > 2 * target:
            new = min(limit, max(t.min_limit, used * baseline / latency + target))
            return replace(state, limit=new), (
                f"latency {latency:.0f} ms over baseline {baseline:.0f} ms "
                f"(~{queue:.1f} queued at the Grid); limit cut"
            )
        if queue < target and used >= t.used_share * math.floor(limit):
            # A fresh controller doubles until the Grid first queues (TCP's slow start).
            grow = limit if not state.grown else max(1.0, t.grow * limit)
            new = min(ceiling, limit + grow)
            reason = "headroom: limit raised" if new > limit else "at the ceiling"
            return replace(state, limit=new), reason
        return state, f"~{queue:.1f} queued at the Grid: holding"

    def _observe(self, state: GridState, sample: GridSample) -> GridState:
        """Add the latencies to the open block (closing it once long enough) and to the
        smoothed latency."""
        t = self.tuning
        logs = sum(math.log(max(ms, 1e-3)) for ms in sample.latencies_ms)
        n = len(sample.latencies_ms)
        blocks = list(state.blocks)
        # The first block closes as soon as it is large enough: the pass's first images,
        # at a limit still low, are the baseline until blocks of full length come.
        first_full = len(blocks) == 1 and blocks[0].count >= t.block_min_images
        if not blocks or first_full or sample.now - blocks[-1].start >= t.block_seconds:
            blocks.append(Block(sample.now))
        last = blocks[-1]
        blocks[-1] = Block(last.start, last.log_sum + logs, last.count + n)
        blocks = blocks[-(t.baseline_blocks + 1) :]
        w = t.latency_weight
        return replace(
            state,
            blocks=tuple(blocks),
            smooth_log_sum=state.smooth_log_sum * w + logs,
            smooth_count=state.smooth_count * w + n,
        )


def _baseline(blocks: tuple[Block, ...], min_images: int) -> float:
    """The lowest latency of the closed blocks with enough images; before there is one, the
    pooled latency of every image so far (the start of a pass queues little)."""
    full = [b.latency_ms for b in blocks[:-1] if b.count >= min_images]
    if full:
        return min(full)
    count = sum(b.count for b in blocks)
    return math.exp(sum(b.log_sum for b in blocks) / count)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)
