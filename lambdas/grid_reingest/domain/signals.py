"""What the pace controller sees at one decision (flows/pace.py gathers it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Signals:
    """What the controller sees at one decision."""

    now: datetime
    iterator_age_ms: float | None  # the latest one-minute maximum visible; None: no data
    previous_age_ms: float | None  # the point before it, for the trend; None: unknown
    finished: int  # images finished since the last decision
    overloaded: int  # of those, overload answers (429/502/503/504, throttles)
    latencies_ms: tuple[float, ...]  # times of those images (overloads excluded)
    # The seconds those counts cover (None: since the last decision saved), and how
    # many workers run alike: one worker's counts stand for the pass's x workers.
    span_seconds: float | None = None
    workers: int = 1
    # The workers running changed during the span (one joined or left): one worker's
    # counts then tell the pass's rate for neither count.
    workers_changed: bool = False
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
    # Image-seconds this worker had in flight over the span (None: not measured; the
    # controller then estimates it with Little's law).
    busy_seconds: float | None = None
    # Which worker this is (its key in the control item): each keeps its own latest
    # reading of thrall's checkpoints there.
    worker: str = ""
