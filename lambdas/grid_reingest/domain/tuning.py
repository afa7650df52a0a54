"""Every constant of the pace controller, once, with where its value comes from.

docs/throughput.md's table lists the same fields (a test checks that it names
each one). The two loops read them from here only: the Grid's in-flight limit
(domain/grid_limit.py) and thrall's rate (domain/thrall_rate.py,
domain/thrall_fresh.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """The controller's constants. `max_limit` and `max_iterator_age_ms` come from the
    deployment (the pass's in-flight ceiling and MAX_ITERATOR_AGE_MS); the rest are
    chosen, each for the reason its comment gives (the simulator's `tuning-*`
    scenarios, docs/throughput.md)."""

    max_limit: int
    max_iterator_age_ms: float
    # -- in flight (the Grid) ---------------------------------------------------------
    start_limit: int = 2  # in flight before any answer: a Grid answers within a decision
    min_limit: float = 1.0  # the limit never goes below one image
    grow: float = 0.2  # limit x (1 + grow) a refresh with headroom, once the Grid has queued...
    grow_floor: float = 0.1  # ...times the share of the target queue still free, at least this
    backoff: float = 0.7  # limit x this on overload answers (TCP's and AIMD's factor)
    overload_share: float = 0.05  # overload answers above this share of a decision: back off
    queue_share: float = 0.1  # target queue at the Grid, a share of what is in flight...
    min_queue: float = 1.0  # ...and at least this many images
    used_share: float = 0.7  # grow only while the pass uses this share of its limit
    # The no-load baseline: blocks of this many seconds, each summarised by its images'
    # mean latency plus `baseline_z` standard errors (the lowest of many noisy means is
    # far below the true one, and shows a queue that is not there); the baseline is the
    # lowest of the last `baseline_blocks` blocks with at least `block_min_images` images.
    block_seconds: float = 60.0
    baseline_blocks: int = 15
    block_min_images: int = 30
    first_block_images: int = 90  # the first block closes at this many (a few round trips)
    baseline_z: float = 2.0
    # Every this many seconds of a busy pass, a probe: the limit held at `probe_share` of
    # what the Grid serves for `probe_latencies` latencies (at least two refreshes, and
    # long enough for a block's worth of answers at that limit), the first half to drain
    # what queued, the second to measure the latency with no queue (a baseline learnt
    # under load creeps up with the queue it should measure).
    probe_every_seconds: float = 300.0
    probe_share: float = 0.8
    probe_latencies: float = 6.0
    # No probe holds the limit longer than this: one that could not have a block's worth
    # of answers within it (a few in flight on a slow Grid) would hold a limit that cannot
    # rise for many minutes, to measure nothing; it is not begun (tried again a probe
    # period later).
    probe_longest_seconds: float = 300.0
    # A probe's measure is pooled with the earlier ones it agrees with, each earlier one
    # counting this much less: a probe at a low limit holds tens of images.
    probe_keep: float = 0.5
    # The latency judged at a decision: the mean of the decision's images and the earlier
    # decisions', each earlier one weighted this much less (one decision's few are noisy).
    latency_weight: float = 0.6
    outlier_factor: float = 10.0  # an image's time counts as at most this times the baseline
    # A cut on latency needs the smoothed latency this many standard errors over the
    # baseline's: after a cut the smoothed mean starts afresh from a few images, whose
    # spread alone (a converting Grid's, sigma 0.8) can look like a queue of a few.
    cut_z: float = 2.0
    # After a cut, no further cut for this many latencies (at least a refresh): until the
    # images started after it have answered.
    cut_hold_latencies: float = 2.0
    # -- starts a minute (thrall) -------------------------------------------------------
    low_age_share: float = 0.2  # age under this share of the threshold: headroom (12 s)
    high_age_share: float = 0.4  # rising above this share: a deep cut (24 s)
    rate_cut: float = 0.9  # the most a cut keeps when the age rises past the low mark
    deep_cut: float = 0.75  # ... past the high mark
    stop_cut: float = 0.75  # ... above the threshold (CloudWatch)
    # On checkpoints, the least a cut keeps of the ceiling: a bad count costs little.
    fresh_cut_floor: float = 0.75
    deepest_cut: float = 0.3  # no single cut on CloudWatch's slope keeps less than this
    drain_share: float = 0.9  # share of thrall's estimated rate fed so that a backlog drains
    rate_step: float = 0.005  # ceiling + this share a decision beyond thrall's rate (CloudWatch)
    knee_step: float = 0.05  # ...and this while under thrall's rate as last estimated
    stall_slope: float = 0.8  # an age climbing this fast (s/s) is a stopped consumer
    hold_seconds: float = 300.0  # after a cut, CloudWatch's points this late show the old lag
    point_delay_seconds: float = 90.0  # a visible point's minute ended about this long ago
    resume_lead: float = 0.8  # resume this share of the way through the estimated drain
    free_ceiling: float = 2.0  # the ceiling rises no further than this times the rate achieved
    rate_weight: float = 0.3  # how fast the achieved rate follows (EWMA a decision)
    rate_minutes: int = 4  # the achieved rate kept a minute at a time for this many minutes
    # -- thrall's checkpoints, when read ------------------------------------------------
    fresh_seconds: float = 120.0  # a checkpoint reading (any worker's) stands this long
    fresh_hold_seconds: float = 75.0  # a cut shows in the checkpoints after the drain + this
    fresh_merge_seconds: float = 30.0  # each worker's latest reading stands this long
    fresh_rate_step: float = 0.01  # the ceiling's rise a decision beyond thrall's rate
    climb_every: int = 8  # ...doubled after this many rises in a row, up to knee_step
    climb_used_share: float = 0.8  # ...counted while the pass achieves this share of the ceiling
    stall_probe_per_minute: float = 2.0  # starts a minute while thrall looks stalled
    published_bucket_seconds: float = 10.0  # the pass's records counted per this many seconds
    published_keep_seconds: float = 600.0  # ...kept this long
    # -- a signal that cannot be read, and the first decision ----------------------------
    unread_hold_seconds: float = 300.0  # CloudWatch unreadable: hold this long, then stop
    default_seconds: float = 15.0  # the first decision's span (a refresh)
    longest_span_seconds: float = 300.0  # counts over a longer span are taken as this long
