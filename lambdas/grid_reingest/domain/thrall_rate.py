"""The thrall loop: how many images may start a minute, from how far behind thrall is.

AIMD on a rate ceiling, aware of the delay of its signal. On CloudWatch's
one-minute maxima (1-3 minutes late) a rising iterator age cuts the ceiling
below the rate the pass achieved in the minutes the points describe, then the
loop *holds* for the data's delay before judging again, so one episode of lag
is not punished once per stale point; a low, steady age raises it. Above the
threshold nothing starts for about as long as thrall needs to work through
what waits. On thrall's own checkpoints, when a worker reads them, the same
decisions come within a minute (domain/thrall_fresh.py).

Pure; its state (`ThrallState`) is saved with the controller's. Why each
branch and constant: docs/throughput.md.
"""

from __future__ import annotations

from grid_reingest.domain.signals import Signals
from grid_reingest.domain.thrall_fresh import View, drain_seconds, step_fresh, view_of
from grid_reingest.domain.thrall_state import ThrallState
from grid_reingest.domain.tuning import Tuning


class ThrallRate:
    """Steps the rate ceiling; see the module docstring."""

    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning

    def observe(
        self, state: ThrallState, signals: Signals, now: float, achieved: float | None
    ) -> None:
        """Take what the pass did since the last decision (before `step`): its rate, when it
        was let run, and the records it published."""
        t = self.tuning
        if achieved is not None:
            state.note_rate(achieved, t.rate_weight)
        state.count_published(now, signals.published_ago, t)
        state.keep_minutes(now, t)

    def step(self, s: ThrallState, signals: Signals, now: float) -> tuple[bool, str]:
        """(stop taking work, reason or "" when thrall has headroom); updates `s`."""
        t = self.tuning
        view = view_of(signals, s, now, t)
        stop, reason = self._judge(view, s, signals, now)
        spoke = s.fresh_at is not None and signals.checkpoint_mark is not None
        if stop and not view.fresh and spoke:
            # Stopped on CloudWatch's late points while thrall's checkpoints, which have
            # told this pass's age before, have no news: thrall checkpoints only on
            # records it processes, so a thrall through its backlog (a pause's end)
            # says so only if it gets a few more.
            s.draining = t.stall_probe_per_minute
            return False, (
                f"{reason}; {t.stall_probe_per_minute:.0f}/min until thrall's checkpoints move"
            )
        return stop, reason

    # One decision table: each branch is a case docs/throughput.md lists.
    def _judge(  # noqa: PLR0911, PLR0912
        self, view: View, s: ThrallState, signals: Signals, now: float
    ) -> tuple[bool, str]:
        t = self.tuning
        age = view.age_ms
        if age is not None:
            s.age_ms, s.age_at = age, now - view.delay_seconds
        if signals.age_unread and not view.fresh:
            return self._unread(s, now)
        s.age_unread_since = None
        if age is None:
            return True, "no iterator-age data: taking nothing"
        threshold = t.max_iterator_age_ms
        s.draining = None
        if view.fresh:
            return step_fresh(view, s, now, t)
        cap = s.rate_cap
        # Cuts are shares of the rate that made the lag (the slope says by how much):
        # the rate of the minutes the latest points describe, not of the last decision.
        base = s.rate_then() or cap
        holding = now < s.hold_until
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
            feed = cap or s.drain_from or s.rate_seen
            if feed is None:
                return True, over_reason(age, threshold)
            s.drain_from = feed
            s.draining = feed * t.drain_share
            return False, (
                f"iterator age {age / 1000:.0f} s > {threshold / 1000:.0f} s but falling: "
                f"{feed * t.drain_share:.0f}/min while it drains"
            )
        if age > threshold:
            if s.resume_at is None or now >= s.hold_until:
                # On the way in (or still over once the last cut had its time): cut
                # once, and stop for as long as thrall needs to work through what
                # the points say is waiting; the points come too late to say when.
                if base is not None:
                    cut = base * self._drain_factor(slope, t.stop_cut)
                    s.rate_cap = min(cap or cut, cut)
                    s.thrall_rate = base * (1 - min(1.0, max(0.0, slope)))
                drain = drain_seconds(view, t)
                s.resume_at = now + t.resume_lead * drain
                s.hold(s.resume_at + t.hold_seconds, max(age, drain * 1000))
            if now < s.resume_at:
                return True, over_reason(age, threshold)
            return False, (
                f"iterator age {age / 1000:.0f} s > {threshold / 1000:.0f} s in late points: "
                f"thrall should be through its backlog; {s.rate_cap or 0:.0f}/min"
            )
        s.resume_at = None
        s.drain_from = None
        if age > threshold * t.low_age_share and rising:
            if holding:
                return False, f"iterator age {age / 1000:.0f} s: holding the last cut"
            if base is None:
                return False, ""
            deep = age > threshold * t.high_age_share
            cut = base * self._drain_factor(slope, t.deep_cut if deep else t.rate_cut)
            s.rate_cap = min(cap or cut, cut)
            s.thrall_rate = base * (1 - slope)
            s.hold(now + t.hold_seconds, max(age, drain_seconds(view, t) * 1000))
            return False, (
                f"thrall lagging: iterator age {age / 1000:.0f} s and rising; "
                f"rate cut to {s.rate_cap:.0f}/min"
            )
        if age > threshold * t.low_age_share:
            return False, f"iterator age {age / 1000:.0f} s, not rising: holding"
        if cap is not None and not holding:
            s.raise_cap(t.rate_step, t)
        return False, ""

    def _unread(self, s: ThrallState, now: float) -> tuple[bool, str]:
        """Nothing fresher to go by: hold the ceiling (no rise on no news) for a while, then
        take nothing, as with no data at all."""
        if s.age_unread_since is None:
            s.age_unread_since = now
        since = s.age_unread_since
        if now - since > self.tuning.unread_hold_seconds:
            return True, f"iterator age unreadable for {now - since:.0f} s: taking nothing"
        return False, "iterator age unreadable: holding"

    def _drain_factor(self, slope: float, most: float) -> float:
        """The share of its rate the pass keeps after a lag: at most `most`, less as the age
        climbs.

        While the pass publishes P a minute and thrall takes R, thrall reaches
        the records published R/P seconds ago each second, so the age grows by
        1 - R/P seconds a second; two one-minute points give that slope, so R is
        about P x (1 - slope), and the pass goes a little under it to drain.
        """
        t = self.tuning
        return max(t.deepest_cut, min(most, t.drain_share * (1 - max(0.0, slope))))


def over_reason(age_ms: float, threshold_ms: float) -> str:
    """Why nothing starts while thrall is behind, as `watch` shows it."""
    return f"back-pressure: iterator age {age_ms / 1000:.0f} s > {threshold_ms / 1000:.0f} s"
