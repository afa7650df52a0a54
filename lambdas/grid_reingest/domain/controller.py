"""The pace controller: how many images may be in flight, from what the Grid and thrall show.

An AIMD limiter (additive increase, multiplicative decrease), as TCP's
congestion control and Netflix's concurrency-limits' AIMD limit: it grows the
limit by a step while every signal has headroom and cuts it by a factor when
one says "too much". Why this one, and how it was tuned, is in
docs/throughput.md. Pure: the worker's glue (flows/pace.py) reads the signals
and keeps the state in the control item.
"""

from __future__ import annotations

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
    latencies_ms: tuple[float, ...]  # projection times of those images


@dataclass(frozen=True)
class Tuning:
    """The controller's constants; `max_limit` is the deployed ceiling (MAX_IN_FLIGHT)."""

    max_limit: int
    max_iterator_age_ms: float
    start_limit: int = 2
    increase: float = 1.0  # images added per decision with headroom
    backoff: float = 0.7  # factor on overload or lag
    overload_share: float = 0.05  # more overload answers than this share: back off
    latency_factor: float = 2.0  # median latency above this times the baseline: back off
    baseline_weight: float = 0.05  # how fast the latency baseline follows (EWMA)
    easy_age_share: float = 0.5  # iterator age under this share of the threshold: headroom
    min_limit: float = 1.0


class Controller:
    """Steps the limit once per decision; see the module docstring."""

    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning

    def step(self, state: PaceState | None, signals: Signals, knobs: Knobs) -> PaceState:
        """The next state: limit, rate ceiling and the reason, in an operator's words."""
        t = self.tuning
        ceiling = float(min(t.max_limit, knobs.max_in_flight or t.max_limit))
        limit = state.limit if state is not None else float(t.start_limit)
        memory = dict(state.memory) if state is not None else {}
        limit = min(max(limit, t.min_limit), ceiling)
        rate = float(knobs.max_rate_per_minute) if knobs.max_rate_per_minute else None
        baseline = memory.get("latency_baseline_ms")
        latency = median(signals.latencies_ms) if signals.latencies_ms else None

        age = signals.iterator_age_ms
        if knobs.paused:
            new, reason = limit, "paused by the operator"
        elif age is None:
            new, reason = 0.0, "no iterator-age data: taking nothing"
        elif age > t.max_iterator_age_ms:
            threshold_s = t.max_iterator_age_ms / 1000
            new, reason = (
                0.0,
                f"back-pressure: iterator age {age / 1000:.0f} s > {threshold_s:.0f} s",
            )
        elif signals.finished and signals.overloaded / signals.finished > t.overload_share:
            new = max(t.min_limit, limit * t.backoff)
            reason = f"overload: {signals.overloaded} of {signals.finished} answers; limit cut"
        elif latency is not None and baseline is not None and latency > baseline * t.latency_factor:
            new = max(t.min_limit, limit * t.backoff)
            reason = (
                f"latency {latency:.0f} ms > {t.latency_factor:g} x baseline {baseline:.0f} ms; "
                "limit cut"
            )
        elif age > t.max_iterator_age_ms * t.easy_age_share and _rising(signals):
            new = max(t.min_limit, limit * t.backoff)
            reason = f"thrall lagging: iterator age {age / 1000:.0f} s and rising; limit cut"
        elif age > t.max_iterator_age_ms * t.easy_age_share:
            new, reason = limit, f"iterator age {age / 1000:.0f} s, not rising: holding"
        elif signals.finished == 0 and state is not None:
            new, reason = limit, "no finished images to judge by: holding"
        else:
            new = min(ceiling, limit + t.increase)
            reason = "headroom: limit raised" if new > limit else "at the ceiling"
        if latency is not None and (baseline is None or latency <= baseline * t.latency_factor):
            # The baseline follows latency only while it is not congested.
            memory["latency_baseline_ms"] = (
                latency if baseline is None else baseline + t.baseline_weight * (latency - baseline)
            )
        when = format_instant(signals.now)
        next_state = PaceState(
            min(new, ceiling), rate, reason, when, memory, state.history if state else ()
        )
        return next_state.with_history(f"{when} {next_state.limit:.1f} {reason}")


def _rising(signals: Signals) -> bool:
    return (
        signals.previous_age_ms is not None
        and signals.iterator_age_ms is not None
        and signals.iterator_age_ms > signals.previous_age_ms
    )
