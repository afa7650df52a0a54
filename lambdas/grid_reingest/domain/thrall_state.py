"""The thrall loop's memory between decisions, typed, and how it is written down.

One field per thing the loop keeps (docs/throughput.md says what each is for);
`to_json` / `from_json` name each field explicitly, so that the control item
holds a readable object and an older or malformed one is refused by name
rather than half-read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from grid_reingest.domain.tuning import Tuning


@dataclass(frozen=True)
class Lag:
    """How far behind thrall is, in seconds: as last judged, and at most now (that, plus the
    time since the moment the judgement describes: thrall may have stopped since; infinite
    while thrall is seen stalled)."""

    seconds: float
    at_most: float


@dataclass(frozen=True)
class Reading:
    """One worker's latest reading of thrall's checkpoints."""

    age_ms: float
    at: float  # the moment it describes
    read_at: float  # when it was read
    previous_ms: float | None  # the age a minute before it, on its trend

    def to_json(self) -> dict[str, float | None]:
        """Plain JSON values, named as the fields are."""
        return {
            "age_ms": self.age_ms,
            "at": self.at,
            "read_at": self.read_at,
            "previous_ms": self.previous_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reading:
        """From `to_json`'s object (KeyError, TypeError or ValueError when malformed)."""
        previous = data["previous_ms"]
        return cls(
            age_ms=float(data["age_ms"]),
            at=float(data["at"]),
            read_at=float(data["read_at"]),
            previous_ms=None if previous is None else float(previous),
        )


@dataclass
class ThrallState:
    """Mutable inside one step (ThrallRate copies it first); saved between decisions."""

    # The rate the pass achieved (starts a minute, EWMA), and the same a minute at a
    # time for the last few minutes (newest first): the minutes late points describe.
    rate_seen: float | None = None
    rates: tuple[float, ...] = ()
    minute_at: float = 0.0  # when `rates` last moved on
    # The pass's records published, counted per bucket of Tuning.published_bucket_seconds
    # (bucket number: count), whichever worker published them.
    published: dict[int, float] = field(default_factory=dict)
    rate_cap: float | None = None  # the rate ceiling (starts a minute)
    thrall_rate: float | None = None  # thrall's rate as last estimated
    hold_until: float = 0.0  # no further cut (nor rise past thrall's rate) before this
    hold_peak_ms: float | None = None  # the age the hold's cut should peak at
    rises: int = 0  # the ceiling's rises in a row past thrall's rate (checkpoints)
    resume_at: float | None = None  # stopped until this
    draining: float | None = None  # the rate fed while a high age falls, or while stalled
    drain_from: float | None = None  # the ceiling the drain started from
    age_unread_since: float | None = None  # CloudWatch unreadable since
    # thrall's checkpoints: each worker's latest reading (by worker key), while recent...
    readings: dict[str, Reading] = field(default_factory=dict)
    # ...and the highest of them, the one the loop goes by
    fresh_age_ms: float | None = None
    fresh_at: float | None = None  # the moment that reading describes
    fresh_previous_ms: float | None = None  # the age a minute before it, on its trend
    stalled_seconds: float | None = None  # a checkpoint overdue this long when last read...
    stalled_at: float | None = None  # ...at this moment...
    stalled_mark: float | None = None  # ...with the checkpoints fingerprinted so
    stall_ended_at: float | None = None  # the checkpoints moved again after a stall
    # thrall's iterator age as the loop last judged it, and the moment it describes
    # (batch-check waits for thrall to be past what it checks).
    age_ms: float | None = None
    age_at: float | None = None

    def lag(self, now: float, fresh_for: float) -> Lag | None:
        """How far behind thrall was when last judged, and at most is at `now`, if that
        judgement was within `fresh_for` seconds of `now`; None when unknown or older."""
        if self.age_ms is None or self.age_at is None or now - self.age_at > fresh_for:
            return None
        seconds = self.age_ms / 1000
        if self.stalled_at is not None:
            # A checkpoint overdue with records waiting: no bound until it moves.
            return Lag(seconds, math.inf)
        # An iterator age grows at most a second a second (nothing read meanwhile).
        return Lag(seconds, seconds + max(0.0, now - self.age_at))

    def hold(self, until: float, peak_ms: float) -> None:
        """No further cut (nor rise past thrall's rate) before `until`, for a cut whose age
        should peak at `peak_ms`: on checkpoints, an age well past that peak escalates within
        the hold (domain/thrall_fresh.py), whichever signal set the hold."""
        self.hold_until = until
        self.hold_peak_ms = peak_ms

    def copy(self) -> ThrallState:
        """A copy to step (the published counts and the readings copied too)."""
        return replace(self, published=dict(self.published), readings=dict(self.readings))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, one per field, named as the fields are."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "published":
                value = {str(k): v for k, v in value.items()}
            elif f.name == "rates":
                value = list(value)
            elif f.name == "readings":
                value = {k: r.to_json() for k, r in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ThrallState:
        """From `to_json`'s object; ValueError naming an unknown or malformed field."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"thrall loop's state: unknown field(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        try:
            for name, value in data.items():
                if name == "published":
                    values[name] = {int(k): float(v) for k, v in value.items()}
                elif name == "rates":
                    values[name] = tuple(float(v) for v in value)
                elif name == "readings":
                    values[name] = {str(k): Reading.from_json(r) for k, r in value.items()}
                elif name in {"minute_at", "hold_until"}:
                    values[name] = float(value)
                elif name == "rises":
                    values[name] = int(value)
                else:
                    values[name] = None if value is None else float(value)
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"thrall loop's state: {name} is malformed ({error})") from None
        return cls(**values)

    # -- the achieved rate, a minute at a time ----------------------------------------

    def note_rate(self, achieved: float, weight: float) -> None:
        """Follow the rate achieved over the last stretch (EWMA)."""
        seen = self.rate_seen if self.rate_seen is not None else achieved
        self.rate_seen = seen + weight * (achieved - seen)

    def keep_minutes(self, now: float, tuning: Tuning) -> None:
        """Move the per-minute record of the achieved rate on, once a minute."""
        if now - self.minute_at < MINUTE:
            return
        self.minute_at = now
        if self.rate_seen is not None:
            self.rates = (self.rate_seen, *self.rates)[: tuning.rate_minutes]

    def rate_then(self) -> float | None:
        """The rate achieved 1-3 minutes ago (the minutes the latest points describe)."""
        older = self.rates[1:]
        if not older:
            return self.rate_seen
        return sum(older) / len(older)

    def raise_cap(self, step: float, tuning: Tuning) -> None:
        """Raise the ceiling while thrall keeps up: quickly (the knee step) back to thrall's
        rate as last estimated, by `step` beyond it; never far above what the pass
        achieves (a ceiling it never reaches says nothing)."""
        if self.rate_cap is None:
            return
        cap = self.rate_cap
        below = cap < (self.thrall_rate or 0.0)
        raised = cap * (1 + (tuning.knee_step if below else step))
        if self.rate_seen:
            raised = min(raised, max(cap, tuning.free_ceiling * self.rate_seen))
        self.rate_cap = raised

    # -- the pass's records published --------------------------------------------------

    def count_published(self, now: float, ago: tuple[float, ...], tuning: Tuning) -> None:
        """Add a worker's records (seconds before `now` each) to the pass's count (each
        worker adds its own: whichever worker reads thrall next knows what thrall was
        given); counts older than Tuning.published_keep_seconds are dropped."""
        size = tuning.published_bucket_seconds
        for seconds in ago:
            bucket = int((now - seconds) // size)
            self.published[bucket] = self.published.get(bucket, 0.0) + 1
        oldest = int((now - tuning.published_keep_seconds) // size)
        for bucket in [b for b in self.published if b < oldest]:
            del self.published[bucket]

    def published_between(self, start: float, end: float, tuning: Tuning) -> float:
        """The pass's records published between two instants (a bucket counted in part for
        the part of it inside)."""
        size = tuning.published_bucket_seconds
        total = 0.0
        for bucket in range(int(start // size), int(end // size) + 1):
            count = self.published.get(bucket, 0.0)
            lo, hi = bucket * size, (bucket + 1) * size
            inside = min(hi, end) - max(lo, start)
            if count and inside > 0:
                total += count * inside / size
        return total

    def counted_throughout(self, start: float, end: float, tuning: Tuning) -> bool:
        """Whether the pass published something in every bucket from `start` to `end`."""
        size = tuning.published_bucket_seconds
        return all(b in self.published for b in range(int(start // size), int(end // size) + 1))


MINUTE = 60.0
# Fields a state written by an earlier version may hold, read past: now derived (when the
# reading the loop goes by was read is its `Reading.read_at`).
RETIRED_FIELDS = frozenset({"fresh_read_at"})
