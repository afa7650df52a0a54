"""How a simulated pass is scored: the figures the pass benchmark reports for each run (M).

Each is defined in docs/throughput.md ("Scores"); the benchmark's JSON carries
them under these names.
"""

from __future__ import annotations

import bisect
import statistics
from typing import Any

from devtools.sim_scenario import Scenario
from devtools.sim_world import PassResult

MINUTE = 60.0
# Throughput counts as recovered once a minute's published images reach this share of the
# capacity in force.
RECOVERED_SHARE = 0.8
# The recovery is looked for in steps of this many seconds.
RECOVERY_STEP_SECONDS = 5.0
# For each figure, which way is worse (the "worst" of several seeds).
WORSE_IS_LOWER = {"throughput_share"}
FIGURES = (
    "throughput_share",
    "over_threshold_share",
    "peak_iterator_age_s",
    "charged_failures",
    "images",
    "index_minutes",
    "pass_minutes",
    "recovery_minutes",
)


def score(result: PassResult, threshold_ms: float) -> dict[str, Any]:
    """One pass as M: throughput over the whole pass, time over the threshold, and the rest."""
    scenario = result.scenario
    pass_minutes = result.pass_seconds / MINUTE
    per_minute = result.verified / pass_minutes if pass_minutes else 0.0
    index_end = result.index_seconds
    paused = paused_spans(scenario)
    counted = [
        age for t, age in result.ages if t <= index_end and not any(a <= t < b for a, b in paused)
    ]
    over = sum(1 for age in counted if age * 1000 > threshold_ms)
    running = [age for t, age in result.ages if t <= result.pass_seconds]
    return {
        "throughput_share": round(per_minute / scenario.capacity_per_minute, 3),
        "over_threshold_share": round(over / len(counted), 3) if counted else 0.0,
        "peak_iterator_age_s": round(max(running, default=0.0), 1),
        "charged_failures": result.charged,
        "images": result.final,
        "index_minutes": round(index_end / MINUTE, 1),
        "pass_minutes": round(pass_minutes, 1),
        "recovery_minutes": recovery(result),
    }


def best_share(scenario: Scenario) -> float:
    """The throughput share of a pass publishing at the capacity in force all along, every
    image verified as it goes: what no policy can beat (1 where capacity is steady; less
    where it changes, the share being of the nominal capacity)."""
    done, seconds = 0.0, 0
    while done < scenario.images and seconds < scenario.minutes_max * MINUTE:
        done += scenario.capacity_at(seconds) / MINUTE
        seconds += 1
    return round(min(done, scenario.images) / (seconds / MINUTE) / scenario.capacity_per_minute, 3)


def paused_spans(scenario: Scenario) -> list[tuple[float, float]]:
    """(start, end) seconds while thrall takes nothing (a rate of 0): nothing a worker does
    changes the age of records already waiting."""
    spans, started = [], None
    for change in sorted(scenario.thrall.changes, key=lambda c: c.at_minute):
        if change.per_minute == 0 and started is None:
            started = change.at_minute * MINUTE
        elif change.per_minute > 0 and started is not None:
            spans.append((started, change.at_minute * MINUTE))
            started = None
    if started is not None:
        spans.append((started, float("inf")))
    return spans


def recovery(result: PassResult) -> float | None:
    """The slowest recovery of the pass, in minutes: from each disturbance inside the index
    part (a capacity change, a burst's end) until a minute's published images reach 80%
    of the capacity then in force; a window that ends (the next disturbance, the end of
    the index part) before they do counts whole. A change to no capacity (a pause) is
    not measured: its end is; nor is a window shorter than a minute. None: no disturbance
    measured."""
    scenario = result.scenario
    end = result.index_seconds
    starts = [d for d in scenario.disturbances if d < end]
    times = sorted(result.publish_times)
    slowest = None
    for k, start in enumerate(starts):
        if scenario.capacity_at(start) <= 0:
            continue
        until = starts[k + 1] if k + 1 < len(starts) else end
        if until - start < MINUTE:
            continue  # no whole minute to judge by
        minutes = (until - start) / MINUTE
        t = start
        while t + MINUTE <= until:
            wanted = RECOVERED_SHARE * scenario.capacity_at(t)
            if bisect.bisect_left(times, t + MINUTE) - bisect.bisect_left(times, t) >= wanted:
                minutes = (t - start) / MINUTE
                break
            t += RECOVERY_STEP_SECONDS
        slowest = minutes if slowest is None else max(slowest, minutes)
    return None if slowest is None else round(slowest, 1)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (None where a run has none)."""
    out: dict[str, Any] = {}
    for name in FIGURES:
        values = [r[name] for r in runs if r[name] is not None]
        if len(values) < len(runs):
            out[name] = None if not values else statistics.median(values)
        else:
            out[name] = statistics.median(values)
        if isinstance(out[name], float):
            out[name] = round(out[name], 3)
    return out


def worst_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure at its worst over the runs (lowest throughput; highest of the others)."""
    out: dict[str, Any] = {}
    for name in FIGURES:
        values = [r[name] for r in runs if r[name] is not None]
        if not values:
            out[name] = None
        elif name in WORSE_IS_LOWER or name == "images":
            out[name] = min(values)
        else:
            out[name] = max(values)
    return out


def cost(result: PassResult, projection_mb: int) -> dict[str, float]:
    """Lambda GB-seconds per 1,000 images: batch-index's, image-projection's, batch-check's;
    and of batch-index's, invocations that took no image."""
    per = 1000 / max(1, result.final)
    return {
        "index": round(result.index_gb_seconds * per, 1),
        "projection": round(result.projection_seconds * projection_mb / 1024 * per, 1),
        "check": round(result.check_gb_seconds * per, 1),
        "idle": round(result.idle_gb_seconds * per, 1),
    }
