"""The pace controller: images in flight and starts a minute, from what the Grid and thrall show.

Two loops, because the two signals arrive on different clocks:

- **In flight, from the Grid** (seconds old): a delay-based limiter in the
  manner of TCP Vegas and Netflix concurrency-limits' gradient limits. The
  queue the worker builds at the Grid is estimated from projection latency
  against its no-load baseline (in flight x (1 - baseline / latency)); the
  limit grows while that queue is under a small target and jumps back to
  the level that would leave the target queue when it is over twice that.
  Overload answers (429/502/503/504, throttles) cut it multiplicatively.
- **Starts a minute, from thrall** (its checkpoints, about a minute late, when
  the worker reads them; else CloudWatch one-minute maxima that arrive 1-3
  minutes late): AIMD on a rate ceiling. A rising iterator age cuts the
  ceiling below the rate the worker actually achieved, then the loop *holds*
  for the data delay before judging again, so one episode of lag is not
  punished once per stale point; a low, steady age raises it additively.
  Above the threshold the worker takes nothing until the age comes back down.

Why this shape and how each constant was chosen: docs/throughput.md. Pure:
the worker's glue (flows/pace.py) reads the signals and keeps the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import median

from grid_reingest.domain.control import Knobs, PaceState
from grid_reingest.domain.isotime import format_instant


@dataclass(frozen=True)
class Signals:
    """What the controller sees at one decision."""

    now: datetime
    iterator_age_ms: float | None  # the latest one-minute maximum visible; None: no data
    previous_age_ms: float | None  # the point before it, for the trend; None: unknown
    finished: int  # images finished since the last decision
    overloaded: int  # of those, overload answers (429/502/503/504, throttles)
    latencies_ms: tuple[float, ...]  # projection times of those images (overloads excluded)
    # The seconds those counts cover (None: since the last decision saved), and how
    # many workers run alike: one worker's counts stand for the pass's x workers.
    span_seconds: float | None = None
    workers: int = 1
    # thrall's checkpoints (domain/thrall_progress.py), when the worker reads them: the
    # age at the latest checkpoint that moved, the age a minute before on its trend,
    # how long ago that checkpoint moved, and how long one is overdue (0: none).
    checkpoint_age_ms: float | None = None
    checkpoint_previous_ms: float | None = None
    checkpoint_delay_seconds: float = 0.0
    stalled_seconds: float = 0.0
    checkpoint_mark: float | None = None  # a fingerprint of the checkpoints read (not read: None)
    # Records the stream accepted from this worker since its last decision: how many
    # seconds before `now` each was published.
    published_ago: tuple[float, ...] = ()
    # CloudWatch could not be read at this decision (its age is then None).
    age_unread: bool = False


@dataclass(frozen=True)
class Tuning:
    """The controller's constants; `max_limit` is the deployed ceiling (MAX_IN_FLIGHT)."""

    max_limit: int
    max_iterator_age_ms: float
    start_limit: int = 2
    min_limit: float = 1.0
    # -- in flight (the Grid) --
    grow: float = 0.2  # limit x (1 + grow) per decision with headroom (at least +1)
    backoff: float = 0.7  # factor on overload answers
    overload_share: float = 0.05  # more overload answers than this share: back off
    queue_share: float = 0.1  # target queue at the Grid, a share of in flight...
    min_queue: float = 1.0  # ...and at least this many images
    used_share: float = 0.7  # grow only while the worker uses this share of its limit
    baseline_minutes: int = 10  # the no-load baseline is the lowest median of these minutes
    # -- starts a minute (thrall) --
    low_age_share: float = 0.2  # age under this share of the threshold: headroom
    high_age_share: float = 0.4  # rising above this share: a deep cut
    rate_cut: float = 0.9  # ceiling x this when the age rises past the low mark
    deep_cut: float = 0.75  # ... past the high mark
    stop_cut: float = 0.75  # ... above the threshold, or when thrall stalls
    rate_step: float = 0.005  # ceiling + this share a decision while the age is low...
    knee_step: float = 0.05  # ...and this while under thrall's rate as last estimated
    stall_slope: float = 0.8  # an age climbing this fast (s/s) is a stopped consumer
    drain_share: float = 0.9  # share of the ceiling (or rate) taken while a high age falls
    hold_seconds: float = 300.0  # after a cut, points this late still show the old lag
    point_delay_seconds: float = 90.0  # a visible point's minute ended about this long ago
    resume_lead: float = 0.8  # resume this share of the way through the estimated drain
    free_ceiling: float = 2.0  # the ceiling rises no further than this times the rate achieved
    rate_weight: float = 0.3  # how fast the achieved rate follows (EWMA)
    # -- thrall's checkpoints, when read --
    fresh_seconds: float = 120.0  # another worker's checkpoint reading stands this long
    fresh_hold_seconds: float = 75.0  # a cut shows in the checkpoints after the age + this
    fresh_merge_seconds: float = 30.0  # the highest reading of any worker stands this long
    fresh_rate_step: float = 0.01  # the ceiling's rise a decision beyond thrall's rate
    stall_probe_per_minute: float = 2.0  # starts a minute while thrall looks stalled
    # -- a signal that cannot be read --
    unread_hold_seconds: float = 300.0  # CloudWatch unreadable: hold this long, then stop
    default_seconds: float = 15.0  # the first decision's span


class Controller:
    """Steps the pace once per decision; see the module docstring."""

    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning

    def step(self, state: PaceState | None, signals: Signals, knobs: Knobs) -> PaceState:
        """The next state: limit, rate ceiling and the reason, in an operator's words."""
        t = self.tuning
        memory = dict(state.memory) if state is not None else {}
        now = signals.now.timestamp()
        span = signals.span_seconds
        if span is None:
            span = now - memory.get("at", now - t.default_seconds)
        # The pass's images finished a second, as one worker's counts tell them.
        elapsed = min(300.0, max(1.0, span)) / max(1, signals.workers)
        memory["at"] = now
        ceiling = float(min(t.max_limit, knobs.max_in_flight or t.max_limit))
        limit = memory.get("kept_limit", state.limit if state is not None else t.start_limit)
        limit = min(max(limit, t.min_limit), ceiling)
        latency = median(signals.latencies_ms) if signals.latencies_ms else None
        achieved = signals.finished / elapsed * 60
        if signals.finished and (state is None or state.limit > 0):
            # Learnt only from a stretch the worker was let run (not the tail of a stop).
            seen = memory.get("rate_seen", achieved)
            memory["rate_seen"] = seen + t.rate_weight * (achieved - seen)
        _count_published(memory, now, signals.published_ago)
        _keep_minutes(memory, now)

        if knobs.paused:
            reason = "paused by the operator"
            stopped = False
        else:
            limit, grid_reason = self._grid(
                limit,
                ceiling=ceiling,
                latency=latency,
                signals=signals,
                elapsed=elapsed,
                memory=memory,
            )
            stopped, thrall_reason = self._thrall(signals, memory, now)
            reason = thrall_reason if (stopped or thrall_reason) else grid_reason
        rate = memory.get("draining") or memory.get("rate_cap")
        if knobs.max_rate_per_minute:
            rate = min(rate or knobs.max_rate_per_minute, float(knobs.max_rate_per_minute))
        if stopped:
            memory["kept_limit"] = limit
        else:
            memory.pop("kept_limit", None)
        when = format_instant(signals.now)
        next_state = PaceState(
            0.0 if stopped else limit,
            rate,
            reason,
            when,
            memory,
            state.history if state else (),
        )
        return next_state.with_history(f"{when} {next_state.limit:.1f} {reason}")

    # -- the Grid: images in flight ---------------------------------------------------

    def _grid(
        self,
        limit: float,
        *,
        ceiling: float,
        latency: float | None,
        signals: Signals,
        elapsed: float,
        memory: dict[str, float],
    ) -> tuple[float, str]:
        t = self.tuning
        if signals.finished and signals.overloaded / signals.finished > t.overload_share:
            memory["grown"] = 1.0
            cut = max(t.min_limit, limit * t.backoff)
            return cut, f"overload: {signals.overloaded} of {signals.finished} answers; limit cut"
        if latency is None:
            return limit, "no finished images to judge by: holding"
        # The no-load baseline: the lowest median of the last minutes (a window, not
        # a creep: a baseline that creeps up under load lets the queue grow with it).
        memory["latency_min_0"] = min(latency, memory.get("latency_min_0", latency))
        baseline = min(
            memory[f"latency_min_{k}"]
            for k in range(t.baseline_minutes)
            if f"latency_min_{k}" in memory
        )
        memory["latency_baseline_ms"] = baseline
        # Little's law: the images the worker really had in flight on average.
        used = min(limit, signals.finished * latency / 1000 / elapsed)
        queue = used * (1 - baseline / latency)
        target = max(t.min_queue, t.queue_share * used)
        if queue >= target:
            memory["grown"] = 1.0  # the slow start is over: the Grid has a queue
        if queue > 2 * target:
            new = min(limit, max(t.min_limit, used * baseline / latency + target))
            return new, (
                f"latency {latency:.0f} ms over baseline {baseline:.0f} ms "
                f"(~{queue:.1f} queued at the Grid); limit cut"
            )
        if queue < target and used >= t.used_share * int(limit):
            # A fresh controller doubles until the Grid first queues (TCP's slow start).
            grow = limit if not memory.get("grown") else max(1.0, t.grow * limit)
            new = min(ceiling, limit + grow)
            return new, "headroom: limit raised" if new > limit else "at the ceiling"
        return limit, f"~{queue:.1f} queued at the Grid: holding"

    # -- thrall: starts a minute ---------------------------------------------------------

    # One decision table: each branch is a case docs/throughput.md lists.
    def _thrall(  # noqa: PLR0911, PLR0912
        self, signals: Signals, memory: dict[str, float], now: float
    ) -> tuple[bool, str]:
        """(stop taking work, reason or "" when thrall has headroom)."""
        t = self.tuning
        view = _view(signals, memory, now, t)
        age = view.age_ms
        if signals.age_unread and not view.fresh:
            # Nothing fresher to go by: hold the ceiling (no rise on no news) for a while,
            # then take nothing, as with no data at all.
            since = memory.setdefault("age_unread_since", now)
            if now - since > t.unread_hold_seconds:
                return True, f"iterator age unreadable for {now - since:.0f} s: taking nothing"
            return False, "iterator age unreadable: holding"
        memory.pop("age_unread_since", None)
        if age is None:
            return True, "no iterator-age data: taking nothing"
        threshold = t.max_iterator_age_ms
        memory.pop("draining", None)
        if view.fresh:
            return self._thrall_fresh(view, memory, now)
        achieved = memory.get("rate_seen")
        cap = memory.get("rate_cap")
        # Cuts are shares of the rate that made the lag (the slope says by how much):
        # the rate of the minutes the latest points describe, not of the last decision.
        base = _rate_then(memory) or cap
        holding = now < memory.get("hold_until", 0.0)
        slope = view.slope
        rising = view.previous_ms is not None and age > view.previous_ms
        if rising and slope >= t.stall_slope and age > threshold * t.low_age_share:
            # An age growing a second a second is a consumer that stopped (a deploy),
            # not a slow one: nothing is learnt of its rate (a five-fold flood would
            # look the same, and is caught by the next episode's slope).
            return True, f"thrall stalled: iterator age {age / 1000:.0f} s climbing 1 s a second"
        if age > threshold and not rising:
            # The points are minutes old and falling: thrall is catching up. Feed
            # it well under its rate rather than let it idle once the backlog is gone.
            # From the rate before the drain began (what is achieved while draining
            # is the drain's own rate: following it would spiral down).
            feed = cap or memory.get("drain_from") or achieved
            if feed is None:
                return True, _over(age, threshold)
            memory["drain_from"] = feed
            memory["draining"] = feed * t.drain_share
            return False, (
                f"iterator age {age / 1000:.0f} s > {threshold / 1000:.0f} s but falling: "
                f"{feed * t.drain_share:.0f}/min while it drains"
            )
        if age > threshold:
            if "resume_at" not in memory or now >= memory.get("hold_until", 0.0):
                # On the way in (or still over once the last cut had its time): cut
                # once, and stop for as long as thrall needs to work through what
                # the points say is waiting; the points come too late to say when.
                if base is not None:
                    cut = base * _drain_factor(slope, t.stop_cut)
                    memory["rate_cap"] = min(cap or cut, cut)
                    memory["thrall_rate"] = base * (1 - min(1.0, max(0.0, slope)))
                memory["resume_at"] = now + t.resume_lead * _drain_seconds(view, t)
                memory["hold_until"] = memory["resume_at"] + t.hold_seconds
            if now < memory["resume_at"]:
                return True, _over(age, threshold)
            return False, (
                f"iterator age {age / 1000:.0f} s > {threshold / 1000:.0f} s in late points: "
                f"thrall should be through its backlog; {memory.get('rate_cap', 0):.0f}/min"
            )
        memory.pop("resume_at", None)
        memory.pop("drain_from", None)
        if age > threshold * t.low_age_share and rising:
            if holding:
                return False, f"iterator age {age / 1000:.0f} s: holding the last cut"
            if base is None:
                return False, ""
            deep = age > threshold * t.high_age_share
            cut = base * _drain_factor(slope, t.deep_cut if deep else t.rate_cut)
            memory["rate_cap"] = min(cap or cut, cut)
            memory["thrall_rate"] = base * (1 - slope)
            memory["hold_until"] = now + t.hold_seconds
            return False, (
                f"thrall lagging: iterator age {age / 1000:.0f} s and rising; "
                f"rate cut to {memory['rate_cap']:.0f}/min"
            )
        if age > threshold * t.low_age_share:
            return False, f"iterator age {age / 1000:.0f} s, not rising: holding"
        if cap is not None and not holding:
            # Quickly back up to thrall's rate as last estimated, slowly beyond it.
            below = cap < memory.get("thrall_rate", 0.0)
            raised = cap * (1 + (t.knee_step if below else t.rate_step))
            if achieved:
                # A ceiling far above what the worker achieves says nothing: keep it near.
                raised = min(raised, max(cap, t.free_ceiling * achieved))
            memory["rate_cap"] = raised
        return False, ""

    def _thrall_fresh(  # noqa: PLR0911 (one decision table, as _thrall)
        self, view: _View, memory: dict[str, float], now: float
    ) -> tuple[bool, str]:
        """The thrall loop on thrall's checkpoints: seconds late, not minutes, and thrall's
        rate counted from what it took. A rising age is answered at the low mark by a cut
        under that rate; past the high mark, by a stop while thrall works through what
        waits (the age peaks when it reaches the records published at the stop, whatever
        is sent meanwhile). A checkpoint overdue is a stall: nothing until it moves."""
        t = self.tuning
        age = view.age_ms or 0.0
        threshold = t.max_iterator_age_ms
        cap = memory.get("rate_cap")
        rising = view.previous_ms is not None and age > view.previous_ms
        memory.pop("drain_from", None)
        high = age > threshold * t.high_age_share
        if view.stalled_seconds > 0:
            # A trickle, not nothing: thrall checkpoints only as it processes records, so
            # a thrall that took the last ones without a checkpoint is told apart from a
            # stopped one by the next few (a stopped one gets a few more to catch up on).
            memory["draining"] = t.stall_probe_per_minute
            return False, (
                f"thrall stalled: no checkpoint for {view.stalled_seconds:.0f} s past due "
                f"with records waiting (iterator age over {age / 1000:.0f} s); "
                f"{t.stall_probe_per_minute:.0f}/min to see it move"
            )
        ended = memory.get("stall_ended_at")
        if ended is not None:
            if now - view.delay_seconds <= ended and now - ended < t.fresh_hold_seconds:
                return True, "thrall moving again after a stall: waiting for its next checkpoint"
            memory.pop("stall_ended_at")
        if rising and view.slope >= t.stall_slope and age > threshold * t.low_age_share:
            # A second a second: thrall stood still between the samples (a deploy) and has
            # just moved again. Nothing is learnt of its rate; the next sample says how
            # fast the backlog goes.
            return True, f"thrall moving again {age / 1000:.0f} s behind: waiting for its pace"
        if age > threshold * t.low_age_share and (rising or high):
            if now >= memory.get("hold_until", 0.0):
                if rising:
                    self._cut_fresh(view, memory, now)
                # Past the high mark, nothing new until thrall is nearly through what waits
                # (the age peaks then, whatever is sent); under it, the cut is enough.
                drain = _backlog_seconds(view, memory, now) or _drain_seconds(view, t)
                memory["resume_at"] = now + (t.resume_lead * drain if high else 0.0)
                memory["hold_until"] = now + drain + t.fresh_hold_seconds
            if now < memory.get("resume_at", 0.0):
                return True, (
                    f"thrall {age / 1000:.0f} s behind: nothing new "
                    f"for {memory['resume_at'] - now:.0f} s while it catches up"
                )
            return False, (
                f"thrall {age / 1000:.0f} s behind: holding {memory.get('rate_cap', 0):.0f}/min "
                "until the checkpoints show the cut"
            )
        memory.pop("resume_at", None)
        if age > threshold * t.low_age_share:
            return False, f"thrall {age / 1000:.0f} s behind and catching up: holding"
        if cap is not None and now >= memory.get("hold_until", 0.0):
            # Checkpoints answer a probe within a minute or two: a quicker climb than
            # on CloudWatch's points.
            below = cap < memory.get("thrall_rate", 0.0)
            raised = cap * (1 + (t.knee_step if below else t.fresh_rate_step))
            achieved = memory.get("rate_seen")
            if achieved:
                raised = min(raised, max(cap, t.free_ceiling * achieved))
            memory["rate_cap"] = raised
        return False, ""

    def _cut_fresh(self, view: _View, memory: dict[str, float], now: float) -> None:
        """Cut the ceiling under thrall's rate as counted; where it cannot be counted, under
        the rate given, less what the age gained. No cut goes deeper than `stop_cut` of the
        ceiling: a bad count costs little, a real flood takes two cuts."""
        t = self.tuning
        cap = memory.get("rate_cap")
        rate = _taken(view, memory, now)
        if rate is None:
            given = cap or memory.get("rate_seen")
            if given is None:
                return
            rate = given * (1 - min(1.0, max(0.0, view.slope)))
        else:
            memory["thrall_rate"] = rate
        cut = rate * t.drain_share
        if cap is not None:
            cut = min(cap, max(cut, cap * t.stop_cut))
        memory["rate_cap"] = max(1.0, cut)


def _backlog_seconds(view: _View, memory: dict[str, float], now: float) -> float | None:
    """How long thrall needs for what waits, counted: the records published since the oldest
    waiting at the latest reading, less what thrall took since, at its counted rate. None
    without a counted rate."""
    rate = memory.get("thrall_rate")
    if not rate or view.age_ms is None:
        return None
    sampled = now - view.delay_seconds
    waiting = _published_between(memory, sampled - view.age_ms / 1000, now)
    waiting -= rate * view.delay_seconds / MINUTE
    return max(0.0, waiting / rate * MINUTE)


def _taken(view: _View, memory: dict[str, float], now: float) -> float | None:
    """thrall's rate (a minute) over the minute before the latest reading, from what it took:
    the records published between the oldest waiting at the earlier point of the trend and
    the oldest waiting at the latest. None without a trend, or where the worker published
    nothing for a while in that stretch (thrall may have idled: it took less than it can)."""
    if view.previous_ms is None or view.age_ms is None:
        return None
    sampled = now - view.delay_seconds
    start = sampled - MINUTE - view.previous_ms / 1000
    end = sampled - view.age_ms / 1000
    if end <= start:
        return None
    buckets = range(int(start // PUBLISHED_BUCKET), int(end // PUBLISHED_BUCKET) + 1)
    if any(f"{PUBLISHED}{b}" not in memory for b in buckets):
        return None
    return _published_between(memory, start, end)


@dataclass(frozen=True)
class _View:
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


def _view(signals: Signals, memory: dict[str, float], now: float, t: Tuning) -> _View:
    """thrall's checkpoints when this worker or another read them lately, else CloudWatch's.

    Each worker sees only its own records: the pass's age is the highest any worker
    read lately, so a reading replaces the shared one only when it is as high, or the
    shared one has aged (a worker that has just started, its records all taken, must
    not hide another's backlog or stall).
    """
    if signals.checkpoint_age_ms is not None:
        shared_fresh = now - memory.get("fresh_read_at", -math.inf) <= t.fresh_merge_seconds
        if not shared_fresh or signals.checkpoint_age_ms >= memory.get("fresh_age_ms", 0.0):
            memory["fresh_age_ms"] = signals.checkpoint_age_ms
            memory["fresh_at"] = now - signals.checkpoint_delay_seconds
            memory["fresh_read_at"] = now
            if signals.checkpoint_previous_ms is None:
                memory.pop("fresh_previous_ms", None)
            else:
                memory["fresh_previous_ms"] = signals.checkpoint_previous_ms
    mark = signals.checkpoint_mark
    if signals.stalled_seconds > 0 and mark is not None:
        memory["fresh_stalled"] = signals.stalled_seconds
        memory["fresh_stalled_at"] = now
        memory["fresh_stalled_mark"] = mark
    elif mark is not None and mark != memory.get("fresh_stalled_mark", mark):
        # A stall stands, whichever worker reads next (one just started cannot tell a
        # stall for a minute), until the checkpoints are seen to have moved since. Then
        # thrall has the stall's backlog before it: nothing new until a checkpoint
        # after this one says how fast it goes.
        for key in ("fresh_stalled", "fresh_stalled_at", "fresh_stalled_mark"):
            memory.pop(key, None)
        memory["stall_ended_at"] = now
    cloudwatch = _View(signals.iterator_age_ms, signals.previous_age_ms, t.point_delay_seconds)
    if now - memory.get("fresh_at", -math.inf) > t.fresh_seconds:
        return cloudwatch
    over = signals.iterator_age_ms is not None and signals.iterator_age_ms > t.max_iterator_age_ms
    if over and now - t.point_delay_seconds > memory["fresh_at"]:
        # CloudWatch says thrall is over the threshold, as of later than the checkpoints'
        # latest reading: an older checkpoint never overrides it.
        return cloudwatch
    stalled = 0.0
    if "fresh_stalled_at" in memory:
        stalled = memory["fresh_stalled"] + now - memory["fresh_stalled_at"]
    return _View(
        memory["fresh_age_ms"],
        memory.get("fresh_previous_ms"),
        now - memory["fresh_at"],
        fresh=True,
        stalled_seconds=stalled,
    )


def _drain_factor(slope: float, most: float) -> float:
    """The share of its rate the worker keeps after a lag: at most `most`, less as the age climbs.

    While the worker publishes P a minute and thrall takes R, thrall reaches
    the records published R/P seconds ago each second, so the age grows by
    1 - R/P seconds a second; two one-minute points give that slope, so R is
    about P x (1 - slope), and the worker goes a little under it to drain.
    """
    return max(DEEPEST_CUT, min(most, DRAIN_SHARE * (1 - max(0.0, slope))))


# The achieved rate is kept a minute at a time for this many minutes; the
# latest visible point describes a minute that ended 1-3 minutes ago.
RATE_MINUTES = 4
MINUTE = 60.0
# The pass's records published, counted per this many seconds, kept this long.
PUBLISHED = "published."
PUBLISHED_BUCKET = 10.0
PUBLISHED_KEEP = 600.0
# Minutes of lowest latency kept (at least Tuning.baseline_minutes).
LATENCY_MINUTES = 30


def _keep_minutes(memory: dict[str, float], now: float) -> None:
    """Shift the per-minute record of the achieved rate once a minute."""
    if now - memory.get("minute_at", 0.0) < 60:
        return
    memory["minute_at"] = now
    for k in range(LATENCY_MINUTES - 1, 0, -1):
        if f"latency_min_{k - 1}" in memory:
            memory[f"latency_min_{k}"] = memory[f"latency_min_{k - 1}"]
    memory.pop("latency_min_0", None)
    for k in range(RATE_MINUTES - 1, 0, -1):
        if f"rate_{k - 1}" in memory:
            memory[f"rate_{k}"] = memory[f"rate_{k - 1}"]
    if "rate_seen" in memory:
        memory["rate_0"] = memory["rate_seen"]


def _count_published(memory: dict[str, float], now: float, ago: tuple[float, ...]) -> None:
    """Add a worker's records to the pass's count of records published, per 10 s (each
    worker adds its own: whichever worker reads thrall next knows what thrall was given)."""
    for seconds in ago:
        key = f"{PUBLISHED}{int((now - seconds) // PUBLISHED_BUCKET)}"
        memory[key] = memory.get(key, 0.0) + 1
    oldest = int((now - PUBLISHED_KEEP) // PUBLISHED_BUCKET)
    for key in [k for k in memory if k.startswith(PUBLISHED)]:
        if int(key[len(PUBLISHED) :]) < oldest:
            del memory[key]


def _published_between(memory: dict[str, float], start: float, end: float) -> float:
    """The pass's records published between two instants (a bucket counted in part
    for the part of it inside)."""
    total = 0.0
    for bucket in range(int(start // PUBLISHED_BUCKET), int(end // PUBLISHED_BUCKET) + 1):
        count = memory.get(f"{PUBLISHED}{bucket}", 0.0)
        lo, hi = bucket * PUBLISHED_BUCKET, (bucket + 1) * PUBLISHED_BUCKET
        inside = min(hi, end) - max(lo, start)
        if count and inside > 0:
            total += count * inside / PUBLISHED_BUCKET
    return total


def _rate_then(memory: dict[str, float]) -> float | None:
    """The rate achieved 1-3 minutes ago (the minutes the latest points describe)."""
    rates = [memory[f"rate_{k}"] for k in range(1, RATE_MINUTES) if f"rate_{k}" in memory]
    if not rates:
        return memory.get("rate_seen")
    return sum(rates) / len(rates)


def _drain_seconds(view: _View, t: Tuning) -> float:
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


# thrall's rate as estimated from the slope, times this: the backlog drains.
DRAIN_SHARE = 0.9
# No single cut goes below this share of the rate achieved.
DEEPEST_CUT = 0.3


def _over(age_ms: float, threshold_ms: float) -> str:
    """Why nothing starts while thrall is behind, as `watch` shows it."""
    return f"back-pressure: iterator age {age_ms / 1000:.0f} s > {threshold_ms / 1000:.0f} s"
