"""What each worker has left to do, read from the counts per state and its rule.

Pure: no AWS. `run`, `start` and `watch` share these rules so that they agree on
when a worker is finished, when it is worth starting, and why it is idle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grid_reingest.domain.states import ProgressState as S

WORKERS = ("index", "check")


@dataclass(frozen=True)
class Work:
    """The states a worker takes items from, and the claim state it holds them in."""

    start: S
    held: S

    @property
    def states(self) -> tuple[S, S]:
        return (self.start, self.held)


DEFAULT_WORK = {
    "index": Work(S.NOT_STARTED, S.IN_PROGRESS),
    "check": Work(S.ENQUEUED, S.LOOKING_FOR_IMAGE),
}


def work(index_start: S | None = None, check_start: S | None = None) -> dict[str, Work]:
    """Each worker's Work, with the start states the deployed functions were given."""
    return {
        "index": Work(index_start or S.NOT_STARTED, S.IN_PROGRESS),
        "check": Work(check_start or S.ENQUEUED, S.LOOKING_FOR_IMAGE),
    }


def remaining(counts: Mapping[int, int], of: Work) -> int:
    """Items the worker has still to start or to finish."""
    return sum(counts.get(s, 0) for s in of.states)


def start_warnings(
    worker: str,
    *,
    has_work: bool,
    index_left: int | None,
    works: Mapping[str, Work] = DEFAULT_WORK,
) -> list[str]:
    """What an operator should know before switching `worker` on: whether it has work (asked
    of the index), and for batch-check, how much batch-index has still to do (0: nothing;
    None: some, how much unknown)."""
    warnings = []
    if not has_work:
        warnings.append(
            f"batch-{worker} has nothing to do: no item at state {int(works[worker].start)} "
            f"({works[worker].start.label}); it will switch itself off at its first run"
        )
    if worker == "check" and index_left != 0:
        left = "work" if index_left is None else f"{index_left:,} item(s) to do"
        warnings.append(
            f"batch-index still has {left}: batch-check may switch itself off before they are "
            "enqueued; start it when batch-index has finished"
        )
    return warnings


def next_step(rule_enabled: bool, has_work: bool) -> str:
    """For `run`: "watch" (its rule is on), "start" (work left, rule off) or "skip" (finished).

    `has_work` is asked of the index (an item in one of the worker's states), not read
    from counts that may be seconds behind.
    """
    if rule_enabled:
        return "watch"
    if has_work:
        return "start"
    return "skip"
