"""The pace controller: images in flight and starts a minute, from what the Grid and thrall show.

Two loops, because the two signals arrive on different clocks, each a class
of its own with its own typed state:

- **In flight, from the Grid** (seconds old): `GridLimit` (domain/grid_limit.py),
  a delay-based limiter on projection latency against a no-load baseline, cut
  multiplicatively on overload answers.
- **Starts a minute, from thrall** (its checkpoints, about a minute late, when
  the worker reads them; else CloudWatch one-minute maxima that arrive 1-3
  minutes late): `ThrallRate` (domain/thrall_rate.py), AIMD on a rate ceiling
  that holds for the data's delay after a cut.

A worker with no thrall behind it (batch-check, paced on media-api's answers)
runs the Grid loop alone. Every constant is in domain/tuning.py; why each:
docs/throughput.md. Pure: the worker's glue (flows/pace.py) reads the signals
and keeps the state.
"""

from __future__ import annotations

from grid_reingest.domain.control import Knobs, PaceState
from grid_reingest.domain.grid_limit import GridLimit, GridSample
from grid_reingest.domain.grid_state import GridState
from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.signals import Signals
from grid_reingest.domain.thrall_rate import ThrallRate
from grid_reingest.domain.thrall_state import ThrallState
from grid_reingest.domain.tuning import Tuning

__all__ = ["Controller", "Signals", "Tuning"]


class Controller:
    """Steps the pace once per decision; see the module docstring. With `thrall` False, the
    Grid loop alone (no rate ceiling but the operator's)."""

    def __init__(self, tuning: Tuning, *, thrall: bool = True) -> None:
        self.tuning = tuning
        self.grid = GridLimit(tuning)
        self.thrall = ThrallRate(tuning) if thrall else None

    def step(self, state: PaceState | None, signals: Signals, knobs: Knobs) -> PaceState:
        """The next state: limit, rate ceiling and the reason, in an operator's words."""
        t = self.tuning
        now = signals.now.timestamp()
        grid, thrall = self._states(state)
        span = signals.span_seconds
        if span is None:
            last = state.stepped_at if state is not None else None
            span = now - last if last is not None else t.default_seconds
        # The pass's images finished a second, as one worker's counts tell them.
        workers = max(1, signals.workers)
        elapsed = min(t.longest_span_seconds, max(1.0, span)) / workers
        ceiling = float(min(t.max_limit, knobs.max_in_flight or t.max_limit))
        if thrall is not None and self.thrall is not None:
            let_run = state is None or state.limit > 0
            # Learnt only from a stretch the pass was let run (not the tail of a stop), by
            # the same workers throughout: across a hand-over one worker's count times the
            # workers is not the pass's rate, and its dip would start a climb over.
            learnt = signals.finished and let_run and not signals.workers_changed
            achieved = signals.finished / elapsed * 60 if learnt else None
            self.thrall.observe(thrall, signals, now, achieved)
        stopped = False
        if knobs.paused:
            reason = "paused by the operator"
        else:
            in_flight = None
            if signals.busy_seconds is not None and span > 0:
                in_flight = signals.busy_seconds / span * workers
            sample = GridSample(
                now,
                signals.finished,
                signals.overloaded,
                signals.latencies_ms,
                elapsed,
                in_flight,
                workers,
            )
            grid, reason = self.grid.step(grid, sample, ceiling)
            if thrall is not None and self.thrall is not None:
                stopped, thrall_reason = self.thrall.step(thrall, signals, now)
                if stopped or thrall_reason:
                    reason = thrall_reason
        rate = None
        if thrall is not None:
            rate = thrall.draining or thrall.rate_cap
        if knobs.max_rate_per_minute:
            rate = min(rate or knobs.max_rate_per_minute, float(knobs.max_rate_per_minute))
        when = format_instant(signals.now)
        limit = 0.0 if stopped else min(grid.limit, ceiling)
        next_state = PaceState(
            limit,
            rate,
            reason,
            when,
            grid=grid,
            thrall=thrall,
            workers=dict(state.workers) if state is not None else {},
            held=dict(state.held) if state is not None else {},
            handover=state.handover if state is not None else None,
            history=state.history if state is not None else (),
            stepped_at=now,
        )
        return next_state.with_history(f"{when} {next_state.limit:.1f} {reason}")

    def _states(self, state: PaceState | None) -> tuple[GridState, ThrallState | None]:
        """Each loop's state to step from (copied: the state given is not changed). A state
        saved before the loops had states of their own keeps its limit and rate."""
        start = float(self.tuning.start_limit)
        if state is None:
            grid = self.grid.fresh()
        elif state.grid is None:
            grid = GridState(max(state.limit, start))
        else:
            grid = state.grid
        if self.thrall is None:
            return grid, None
        if state is None:
            return grid, ThrallState()
        if state.thrall is None:
            return grid, ThrallState(rate_cap=state.rate_per_minute)
        return grid, state.thrall.copy()
