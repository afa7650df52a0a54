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
decisions; a cut needs that mean to show the queue beyond its own standard
error (right after a cut it is a mean of few). Means, not medians: Little's
law holds for means, and what waits is the throughput times the mean wait. A
stray time far above the baseline (a timeout) is counted at `outlier_factor`
times it, so that one image does not look like a queue. Why each constant:
docs/throughput.md.

Pure; its state (`GridState`) is saved with the controller's (domain/control.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from grid_reingest.domain.grid_state import Block, GridState
from grid_reingest.domain.tuning import Tuning


@dataclass(frozen=True)
class GridSample:
    """What the Grid showed since the last decision, as the pass's (scaled to every worker)."""

    now: float  # epoch seconds
    finished: int  # images finished (one worker's count)
    overloaded: int  # of those, overload answers
    latencies_ms: tuple[float, ...]  # times of the others
    elapsed: float  # seconds the counts cover, divided by the workers running alike
    in_flight: float | None = None  # the pass's images in flight on average; None: unknown
    workers: int = 1  # workers running alike (the pass finished `finished` x this)


class GridLimit:
    """Steps the in-flight limit; see the module docstring."""

    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning

    def fresh(self) -> GridState:
        """The state before any decision."""
        return GridState(float(self.tuning.start_limit))

    def step(  # noqa: PLR0911, PLR0912 (one decision table)
        self, state: GridState, sample: GridSample, ceiling: float
    ) -> tuple[GridState, str]:
        """The next state, and why, in an operator's words."""
        t = self.tuning
        limit = min(max(state.limit, t.min_limit), ceiling)
        state = replace(state, limit=limit)
        if state.probed_at is None:
            state = replace(state, probed_at=sample.now)
        holding = sample.now < state.hold_until
        if sample.finished and sample.overloaded / sample.finished > t.overload_share:
            if holding:
                return state, f"overload: {sample.overloaded} of {sample.finished}; holding the cut"
            cut = max(t.min_limit, limit * t.backoff)
            if state.probe_until:
                # No probe measures an overloaded Grid: this one ends, and the next comes a
                # probe period later (not at once, from the cut probe's lower limit).
                state = replace(state, probe_until=0.0, probing=None, probed_at=sample.now)
            return self._cut(state, cut, sample), (
                f"overload: {sample.overloaded} of {sample.finished} answers; limit cut"
            )
        if not sample.latencies_ms:
            return state, "no finished images to judge by: holding"
        state, now_ms = self._observe(state, sample)
        if state.probe_until:
            return self._probing(state, sample, ceiling)
        baseline = baseline_of(state, t)
        latency = state.latency_ms or now_ms
        state = replace(state, baseline_ms=baseline)
        used = sample.in_flight
        if used is None:
            # Little's law: the images in flight on average, from throughput and latency.
            used = sample.finished * now_ms / 1000 / sample.elapsed
        used = min(limit, used)
        queue = used * (1 - baseline / latency)  # smoothed: what stops a rise
        fresh = used * (1 - baseline / now_ms)  # this decision's alone: what stops a rise
        # What decides a cut: the queue the smoothed latency shows beyond its own noise.
        judged = max(baseline, latency - t.cut_z * noise_ms(state, t))
        sure = used * (1 - baseline / judged)
        target = max(t.min_queue, t.queue_share * used)
        if fresh >= target:
            state = replace(state, grown=True)  # the slow start is over: the Grid has a queue
        if holding:
            return state, f"~{queue:.1f} queued at the Grid: holding the last cut"
        if sure > 2 * target:
            new = min(limit, max(t.min_limit, used * baseline / latency + target))
            # Little's law, from this worker's in-flight times the workers: one joining or
            # leaving a pass holds far less than its part. No cut deeper than an overload's;
            # a real drop takes two.
            new = max(new, limit * t.backoff)
            return self._cut(state, new, sample), (
                f"latency {latency:.0f} ms over baseline {baseline:.0f} ms "
                f"(~{queue:.1f} queued at the Grid, ~{sure:.1f} beyond its noise); limit cut"
            )
        busy = used >= t.used_share * math.floor(limit)
        if state.grown and busy and sample.now - (state.probed_at or 0.0) >= t.probe_every_seconds:
            probe = self._probe(state, sample, used * baseline / latency)
            if probe is not None:
                return probe
            state = replace(state, probed_at=sample.now)
        if queue < target and fresh < 2 * target and busy:
            return self._grow(state, sample, ceiling, queue / target)
        return state, f"~{queue:.1f} queued at the Grid: holding"

    def _grow(
        self, state: GridState, sample: GridSample, ceiling: float, queued: float
    ) -> tuple[GridState, str]:
        """Raise the limit: per refresh of the pass's time (overlapping workers each step with
        their part), doubling until the Grid first queues (TCP's slow start), then by up to a
        fifth, less the closer the queue is to its target (`queued`, a share of it)."""
        t = self.tuning
        limit = state.limit
        share = sample.elapsed / t.default_seconds
        if state.grown:
            # Near the knee a fifth overshoots before the latency (seconds late) says so.
            room = max(t.grow_floor, 1 - max(0.0, queued))
            factor = 1 + t.grow * share * room
        else:
            # Doubling once the pass has had a limit's worth of answers (a round trip).
            factor = 2 ** min(1.0, sample.finished * sample.workers / limit)
        new = min(ceiling, max(limit * factor, limit + share))
        reason = "headroom: limit raised" if new > limit else "at the ceiling"
        return replace(state, limit=new), reason

    # -- the probe: the no-load latency, measured ---------------------------------------

    def _probe(
        self, state: GridState, sample: GridSample, served: float
    ) -> tuple[GridState, str] | None:
        """Begin a probe: hold the limit under what the Grid serves, so that what queued
        drains (the first half), then measure the latency with nothing queued (the second).
        None: no probe could measure within `probe_longest_seconds`."""
        t = self.tuning
        latency_s = (state.latency_ms or 0.0) / 1000
        low = max(t.min_limit, served * t.probe_share)
        # The measuring half must see a block's worth of answers at the low limit, or the
        # probe tells nothing (a limit held low by a baseline too low is where it must).
        answers = 2 * t.block_min_images * latency_s / low
        length = max(2 * t.default_seconds, t.probe_latencies * latency_s, answers)
        if length > t.probe_longest_seconds:
            return None
        probing = replace(
            state,
            limit=low,
            resume_limit=state.limit,
            probe_until=sample.now + length,
            probe_from=sample.now + length / 2,
            probing=None,
        )
        return (
            probing,
            f"probing the Grid's latency with nothing queued: limit {low:.0f} for {length:.0f} s",
        )

    def _probing(
        self, state: GridState, sample: GridSample, ceiling: float
    ) -> tuple[GridState, str]:
        t = self.tuning
        if sample.now < state.probe_until:
            return state, "probing the Grid's latency with nothing queued"
        # Over: the probe's measure starts the baseline's window afresh (a Grid that has
        # become slower is followed from here), and the limit goes back where it was.
        measure = state.probing
        done = replace(
            state,
            limit=min(ceiling, state.resume_limit),
            probe_until=0.0,
            probed_at=sample.now,
            probing=None,
            smooth_total_ms=0.0,
            smooth_count=0.0,
        )
        if measure is None or measure.count < t.block_min_images:
            return done, "probe inconclusive (too few answers): back to the limit"
        probed = pooled(state.probed, measure, t)
        done = replace(done, probed=probed, blocks=(Block(sample.now),))
        baseline = baseline_of(done, t)
        pooled_note = (
            f" ({probed.mean_ms:.0f} ms with the probes before)" if probed is not measure else ""
        )
        return replace(done, baseline_ms=baseline), (
            f"probe: {measure.mean_ms:.0f} ms with nothing queued{pooled_note}; "
            f"limit back to {done.limit:.0f}"
        )

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
        """Add the latencies to the open block (closing it once long enough), to the probe's
        measure while it measures, and to the smoothed latency; this decision's mean."""
        t = self.tuning
        blocks = list(state.blocks)
        # A stray time far above what the Grid has shown (a timeout) counts as at most this.
        most = math.inf
        if blocks or state.probed is not None:
            most = t.outlier_factor * baseline_of(state, t)
        latencies = [min(ms, most) for ms in sample.latencies_ms]
        # The first block closes once it has a few times the images a block needs: the
        # pass's first images, at a limit still low, are the baseline until the first probe.
        first = len(blocks) == 1 and state.probed is None
        full_first = first and blocks[0].count >= t.first_block_images
        if not blocks or full_first or sample.now - blocks[-1].start >= t.block_seconds:
            blocks.append(Block(sample.now))
        blocks[-1] = blocks[-1].add(latencies)
        blocks = blocks[-(t.baseline_blocks + 1) :]
        probing = state.probing
        if state.probe_until and sample.now >= state.probe_from:
            probing = (probing or Block(sample.now)).add(latencies)
        w = t.latency_weight
        observed = replace(
            state,
            blocks=tuple(blocks),
            probing=probing,
            smooth_total_ms=state.smooth_total_ms * w + sum(latencies),
            smooth_count=state.smooth_count * w + len(latencies),
        )
        return observed, sum(latencies) / len(latencies)


def pooled(earlier: Block | None, measure: Block, t: Tuning) -> Block:
    """A probe's measure with the earlier probes' (each counting `probe_keep` as much as the
    one after it), where they agree within their noise; the measure alone where they do not
    (the Grid's no-load latency moved). One probe holds tens of images at a low limit: its
    mean alone can be a sixth off, and the limit then holds on a queue that is not there
    (or piles one up) until the next."""
    if earlier is None or not earlier.count:
        return measure
    apart = abs(measure.mean_ms - earlier.mean_ms)
    if apart > t.baseline_z * math.hypot(measure.error_ms, earlier.error_ms):
        return measure
    return replace(earlier.weighed(t.probe_keep).merge(measure), start=measure.start)


def noise_ms(state: GridState, t: Tuning) -> float:
    """The standard error of the smoothed latency: the images' spread (the latest block
    with enough of them, else all so far) over the root of how many it weighs."""
    if not state.smooth_count or not state.blocks:
        return 0.0
    full = [b for b in state.blocks if b.count >= t.block_min_images]
    spread = full[-1].spread_ms if full else _pooled(state.blocks).spread_ms
    return spread / math.sqrt(state.smooth_count)


def baseline_of(state: GridState, t: Tuning) -> float:
    """The no-load latency: the last probe's mean, or lower, the lowest bound of the closed
    blocks since with enough images; before either, the bound of every image so far."""
    bounds = [b.bound_ms(t.baseline_z) for b in state.blocks[:-1] if b.count >= t.block_min_images]
    if state.probed is not None:
        bounds.append(state.probed.mean_ms)
    if bounds:
        return min(bounds)
    return _pooled(state.blocks).bound_ms(t.baseline_z)


def _pooled(blocks: tuple[Block, ...]) -> Block:
    """Every block's latencies in one."""
    pooled = Block(0.0)
    for block in blocks:
        pooled = pooled.merge(block)
    return pooled
