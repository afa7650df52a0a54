"""Back-pressure: how much work thrall can take now, from its stream's iterator age (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Below this share of the threshold thrall is keeping up: take a full batch.
# Between it and the threshold, take less the closer the age gets, so a run
# slows down before it has to stop instead of swinging between full and none.
EASY_SHARE = 0.5
SMALLEST_SHARE = 0.1


@dataclass(frozen=True)
class Verdict:
    """How many ids to take this time, and why."""

    batch: int
    iterator_age_ms: float | None
    reason: str


def decide(age_ms: float | None, silent: Sequence[str], threshold_ms: int, batch: int) -> Verdict:
    """The batch to take for an iterator age (pure)."""
    if silent:
        return Verdict(0, None, f"no iterator-age data for {', '.join(silent)}: not taking work")
    if age_ms is None:
        raise ValueError("an iterator age is needed when every stream has data")
    if age_ms > threshold_ms:
        return Verdict(0, age_ms, f"iterator age {age_ms:.0f} ms is above {threshold_ms} ms")
    easy = threshold_ms * EASY_SHARE
    if age_ms <= easy:
        return Verdict(batch, age_ms, f"iterator age {age_ms:.0f} ms: full batch")
    headroom = (threshold_ms - age_ms) / (threshold_ms - easy)
    share = max(SMALLEST_SHARE, headroom)
    size = max(1, int(batch * share))
    return Verdict(size, age_ms, f"iterator age {age_ms:.0f} ms: batch cut to {size} of {batch}")
