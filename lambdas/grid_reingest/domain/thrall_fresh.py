"""The thrall loop on thrall's checkpoints: seconds late, not minutes, and thrall's rate counted.

A rising age is answered at the low mark by a cut under the rate thrall was
counted taking; past the high mark, by a stop while thrall works through what
waits (the age peaks when it reaches the records published at the stop,
whatever is sent meanwhile). A checkpoint overdue is a stall: a trickle until
it moves. Which reading the loop goes by (this worker's, another's, or
CloudWatch's) is `view_of`. Pure; docs/throughput.md says why each branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from grid_reingest.domain.signals import Signals
from grid_reingest.domain.thrall_state import MINUTE, Reading, ThrallState
from grid_reingest.domain.tuning import Tuning


@dataclass(frozen=True)
class View:
    """thrall's iterator age as the thrall loop judges it, and how late it is."""

    age_ms: float | None
    previous_ms: float | None  # a minute before, on the trend
    delay_seconds: float  # how long ago the latest reading's moment was
    fresh: bool = False  # from thrall's checkpoints (else CloudWatch's points)
    stalled_seconds: float = 0.0

    @property
    def slope(self) -> float:
        """Seconds of iterator age gained per second, over the last minute."""
        if self.previous_ms is None or self.age_ms is None:
            return 0.0
        return (self.age_ms - self.previous_ms) / 60_000


def view_of(signals: Signals, s: ThrallState, now: float, t: Tuning) -> View:
    """thrall's checkpoints when this worker or another read them lately, else CloudWatch's.

    Each worker sees only its own records: the pass's age is the highest of each
    worker's latest reading, among those read within `fresh_merge_seconds` (a worker
    that has just started, its records all taken, must not hide another's backlog
    or stall; nor may a worker's own earlier reading outlive its later one).
    """
    if signals.checkpoint_age_ms is not None:
        s.readings[signals.worker] = Reading(
            signals.checkpoint_age_ms,
            now - signals.checkpoint_delay_seconds,
            now,
            signals.checkpoint_previous_ms,
        )
    for key in [k for k, r in s.readings.items() if now - r.read_at > t.fresh_merge_seconds]:
        del s.readings[key]
    if s.readings:
        # (The same age from an older moment says less: a worker that goes on from an
        # ended one's reads dates a move early in the gap since.)
        top = max(s.readings.values(), key=lambda r: (r.age_ms, r.at))
        s.fresh_age_ms, s.fresh_at, s.fresh_previous_ms = top.age_ms, top.at, top.previous_ms
    mark = signals.checkpoint_mark
    if signals.stalled_seconds > 0 and mark is not None:
        s.stalled_seconds, s.stalled_at, s.stalled_mark = signals.stalled_seconds, now, mark
    elif mark is not None and s.stalled_mark is not None and mark != s.stalled_mark:
        # A stall stands, whichever worker reads next (one just started cannot tell a
        # stall for a minute), until the checkpoints are seen to have moved since. Then
        # thrall has the stall's backlog before it: nothing new until a checkpoint
        # after this one says how fast it goes.
        s.stalled_seconds = s.stalled_at = s.stalled_mark = None
        s.stall_ended_at = now
    cloudwatch = View(signals.iterator_age_ms, signals.previous_age_ms, t.point_delay_seconds)
    if s.fresh_at is None or s.fresh_age_ms is None or now - s.fresh_at > t.fresh_seconds:
        return cloudwatch
    over = signals.iterator_age_ms is not None and signals.iterator_age_ms > t.max_iterator_age_ms
    if over and now - t.point_delay_seconds > s.fresh_at:
        # CloudWatch says thrall is over the threshold, as of later than the checkpoints'
        # latest reading: an older checkpoint never overrides it.
        return cloudwatch
    stalled = 0.0
    if s.stalled_at is not None and s.stalled_seconds is not None:
        stalled = s.stalled_seconds + now - s.stalled_at
    return View(
        s.fresh_age_ms,
        s.fresh_previous_ms,
        now - s.fresh_at,
        fresh=True,
        stalled_seconds=stalled,
    )


# One decision table: each branch is a case docs/throughput.md lists.
def step_fresh(  # noqa: PLR0911
    view: View, s: ThrallState, now: float, t: Tuning
) -> tuple[bool, str]:
    """(stop taking work, reason or "" when thrall has headroom), on checkpoints."""
    age = view.age_ms or 0.0
    threshold = t.max_iterator_age_ms
    cap = s.rate_cap
    rising = view.previous_ms is not None and age > view.previous_ms
    s.drain_from = None
    high = age > threshold * t.high_age_share
    if age > threshold * t.low_age_share or view.stalled_seconds > 0:
        s.rises = 0  # the climb starts slow again after any sign thrall is behind
    if view.stalled_seconds > 0:
        # A trickle, not nothing: thrall checkpoints only as it processes records, so
        # a thrall that took the last ones without a checkpoint is told apart from a
        # stopped one by the next few (a stopped one gets a few more to catch up on).
        s.draining = t.stall_probe_per_minute
        return False, (
            f"thrall stalled: no checkpoint for {view.stalled_seconds:.0f} s past due "
            f"with records waiting (iterator age over {age / 1000:.0f} s); "
            f"{t.stall_probe_per_minute:.0f}/min to see it move"
        )
    ended = s.stall_ended_at
    if ended is not None:
        if now - view.delay_seconds <= ended and now - ended < t.fresh_hold_seconds:
            # The stall's backlog first, and a trickle, not nothing: a thrall through it
            # checkpoints only on records that come after, and its next checkpoint is
            # what says how fast it goes.
            s.draining = t.stall_probe_per_minute
            return False, (
                "thrall moving again after a stall: "
                f"{t.stall_probe_per_minute:.0f}/min until its next checkpoint"
            )
        s.stall_ended_at = None
    if rising and view.slope >= t.stall_slope and age > threshold * t.low_age_share:
        # A second a second: thrall stood still between the samples (a deploy) and has
        # just moved again. Nothing is learnt of its rate; the next sample says how
        # fast the backlog goes.
        return True, f"thrall moving again {age / 1000:.0f} s behind: waiting for its pace"
    if age > threshold * t.low_age_share and (rising or high):
        # After a cut the age goes on rising until thrall reaches what was published
        # at the cut (the drain): that peak the hold waits out. An age past the high
        # mark and beyond that peak by more than the low mark is not the cut's to
        # answer (thrall slowed again, or the cut was held to its floor): the flood
        # is real, and the second cut and the stop the high mark calls for are not
        # held back.
        foreseen = s.hold_peak_ms
        unforeseen = foreseen is not None and age > foreseen + threshold * t.low_age_share
        escalate = high and now < s.hold_until and unforeseen
        if now >= s.hold_until or escalate:
            if rising:
                _cut(view, s, now, t)
            # Past the high mark, nothing new until thrall is nearly through what waits
            # (the age peaks then, whatever is sent); under it, the cut is enough.
            drain = backlog_seconds(view, s, now, t) or drain_seconds(view, t)
            s.resume_at = now + (t.resume_lead * drain if high else 0.0)
            s.hold(now + drain + t.fresh_hold_seconds, max(age, drain * 1000))
        if now < (s.resume_at or 0.0):
            return True, (
                f"thrall {age / 1000:.0f} s behind: nothing new "
                f"for {(s.resume_at or now) - now:.0f} s while it catches up"
            )
        return False, (
            f"thrall {age / 1000:.0f} s behind: holding {s.rate_cap or 0:.0f}/min "
            "until the checkpoints show the cut"
        )
    s.resume_at = None
    if age > threshold * t.low_age_share:
        return False, f"thrall {age / 1000:.0f} s behind and catching up: holding"
    if cap is not None and now >= s.hold_until:
        _climb(s, cap, t)
    elif cap is not None and s.thrall_rate and cap < s.thrall_rate:
        # Within a cut's hold, thrall through what waited: back to its counted rate
        # (the knee step), not beyond it, until the hold ends.
        s.rate_cap = min(s.thrall_rate, cap * (1 + t.knee_step))
    return False, ""


def _climb(s: ThrallState, cap: float, t: Tuning) -> None:
    """Raise the ceiling while thrall keeps up.

    Checkpoints answer a probe within a minute or two: a quicker climb than on
    CloudWatch's points, and quickening while thrall keeps up (it may have sped
    up, or been under-counted): each `climb_every` rises in a row past its rate
    double the step, up to the knee step. Any age over the low mark starts it
    over, so a climb that finds thrall's rate pays for it once. A ceiling the
    pass does not reach (the Grid binds, a new invocation starts slow) is
    neither raised nor counted, as TCP leaves a window it does not fill
    (RFC 7661): thrall keeping up with less than the ceiling says nothing of
    the ceiling, a cut from far above what the pass achieves takes several to
    bite, and a dip that is not thrall's does not cost the climb its pace.
    """
    if s.rate_seen is None or s.rate_seen < t.climb_used_share * cap:
        return
    step = min(t.knee_step, t.fresh_rate_step * 2 ** (s.rises // t.climb_every))
    if cap >= (s.thrall_rate or 0.0):
        s.rises += 1
    s.raise_cap(step, t)


def _cut(view: View, s: ThrallState, now: float, t: Tuning) -> None:
    """Cut the ceiling under thrall's rate as counted; where it cannot be counted, under
    the rate given, less what the age gained. No cut goes deeper than `fresh_cut_floor` of the
    ceiling: a bad count costs little, a real flood takes two cuts."""
    cap = s.rate_cap
    rate = _taken(view, s, now, t)
    if rate is None:
        given = cap or s.rate_seen
        if given is None:
            return
        rate = given * (1 - min(1.0, max(0.0, view.slope)))
    else:
        s.thrall_rate = rate
    cut = rate * t.drain_share
    if cap is not None:
        cut = min(cap, max(cut, cap * t.fresh_cut_floor))
    s.rate_cap = max(1.0, cut)


def backlog_seconds(view: View, s: ThrallState, now: float, t: Tuning) -> float | None:
    """How long thrall needs for what waits, counted: the records published since the oldest
    waiting at the latest reading, less what thrall took since, at its counted rate. None
    without a counted rate."""
    rate = s.thrall_rate
    if not rate or view.age_ms is None:
        return None
    sampled = now - view.delay_seconds
    waiting = s.published_between(sampled - view.age_ms / 1000, now, t)
    waiting -= rate * view.delay_seconds / MINUTE
    return max(0.0, waiting / rate * MINUTE)


def _taken(view: View, s: ThrallState, now: float, t: Tuning) -> float | None:
    """thrall's rate (a minute) over the minute before the latest reading, from what it took:
    the records published between the oldest waiting at the earlier point of the trend and
    the oldest waiting at the latest. None without a trend, or where the pass published
    nothing for a while in that stretch (thrall may have idled: it took less than it can)."""
    if view.previous_ms is None or view.age_ms is None:
        return None
    sampled = now - view.delay_seconds
    start = sampled - MINUTE - view.previous_ms / 1000
    end = sampled - view.age_ms / 1000
    if end <= start or not s.counted_throughout(start, end, t):
        return None
    return s.published_between(start, end, t)


def drain_seconds(view: View, t: Tuning) -> float:
    """How long thrall needs to work through what is waiting, from the latest point.

    The point's age A is about `point_delay_seconds` (d) old and climbing at
    `slope` (s) while thrall takes records published at the worker's old pace;
    with nothing new published, the backlog is gone when the oldest record
    waiting was published now: after (d + A) / (1 - s) - d seconds.
    """
    age = (view.age_ms or 0.0) / 1000
    slope = min(t.stall_slope, max(0.0, view.slope))
    d = view.delay_seconds
    return max(0.0, (d + age) / (1 - slope) - d)
