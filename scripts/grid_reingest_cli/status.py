"""What `watch` says about a pass: rates, ETAs and why a worker is idle.

Pure: no AWS, no clock of its own. watch.py reads the table, the control item,
the rules and CloudWatch, and hands the readings here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WIDTH = 30


@dataclass(frozen=True)
class WorkerView:
    """One worker as a look shows it."""

    worker: str
    rule: str | None  # "ENABLED", "DISABLED" or None (no rule known)
    remaining: int
    held: int
    done: int
    rate_per_minute: float | None
    eta_seconds: float | None
    status: str  # "working", "idle" or "done"
    reason: str

    @property
    def share(self) -> float | None:
        total = self.done + self.remaining
        return self.done / total if total else None


class RateMeter:
    """Items done per minute over the last `window_s` seconds of readings."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> float | None:
        """Record `done` at monotonic time `at`; the rate per minute, None until two readings."""
        self.samples.append((at, done))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window_s:
            self.samples.popleft()
        first_at, first_done = self.samples[0]
        if at - first_at <= 0:
            return None
        # A reset moves items back: progress never counts as negative.
        return max(done - first_done, 0) * 60 / (at - first_at)


def eta_seconds(remaining: int, rate_per_minute: float | None) -> float | None:
    """Seconds until `remaining` items are done at `rate_per_minute`; None when unknown."""
    if remaining == 0:
        return 0.0
    if not rate_per_minute:
        return None
    return remaining / rate_per_minute * 60


def idle_reason(
    worker: str,
    *,
    rule: str | None,
    paused: bool,
    iterator_age_s: float | None,
    threshold_s: float | None,
    streams_known: bool,
) -> str | None:
    """Why `worker` takes no work now, in the operator's words; None if nothing stops it."""
    if rule == "DISABLED":
        return "rule off"
    if paused:
        return "paused"
    if worker == "index" and streams_known:
        if iterator_age_s is None:
            return "no iterator-age data"
        if threshold_s is not None and iterator_age_s > threshold_s:
            return f"back-pressure: iterator age {iterator_age_s:.0f} s > {threshold_s:.0f} s"
    return None


def worker_view(
    worker: str,
    *,
    rule: str | None,
    remaining: int,
    held: int,
    done: int,
    rate_per_minute: float | None,
    blocked_by: str | None,
) -> WorkerView:
    """The worker's line: done when nothing is left, idle (with why) or working."""
    eta = eta_seconds(remaining, rate_per_minute)
    if remaining == 0:
        reason = "nothing left" if rule != "ENABLED" else "nothing left; switches itself off"
        return WorkerView(worker, rule, 0, 0, done, rate_per_minute, 0.0, "done", reason)
    if blocked_by and held == 0:
        return WorkerView(
            worker, rule, remaining, held, done, rate_per_minute, None, "idle", blocked_by
        )
    reason = blocked_by or ("measuring" if rate_per_minute is None else "")
    return WorkerView(worker, rule, remaining, held, done, rate_per_minute, eta, "working", reason)


def duration(seconds: float | None) -> str:
    """e.g. '—', '45 s', '12 min', '3 h 05 min', '2 d 04 h'."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s < 600 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def bar(share: float | None) -> str:
    """'[#########.....................]  30.0%'; blank bar when unknown."""
    if share is None:
        return f"[{' ' * WIDTH}]     -"
    filled = int(min(max(share, 0.0), 1.0) * WIDTH)
    return f"[{'#' * filled}{'.' * (WIDTH - filled)}] {share:6.1%}"
