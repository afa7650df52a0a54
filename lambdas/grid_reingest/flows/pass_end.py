"""The end of a pass: once nothing is left in 0, 1, 3 or 5, the pass record is finished once,
with its report, and the report is published when the pass has a topic.

Either worker may find the pass over (whichever finds its own states empty
last); the record's conditional write lets exactly one of them finish it. The
report is read of the table as it is then: items per state counted on the
index (exact, a read of the keys-only index once a pass), present and repaired
as batch-check counted them on the pass record, and the failure groups of a
sample of the failed items (domain/reasons.py). docs/state-table.md, "Passes".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grid_reingest.domain.passes import FAILED_STATES, WORKING_STATES, Pass, Report, Status
from grid_reingest.domain.reasons import group_id, normalise
from grid_reingest.domain.states import ProgressState
from grid_reingest.flows.summary import Summary
from grid_reingest.ports import Notifier, PassFacts, PassStore

# Failed items read for the report's groups: a bounded read (one GetItem each) whatever the
# number of failures; the report says when the groups come from a sample.
GROUP_SAMPLE = 1000
# Groups a report names.
GROUPS_KEPT = 20


@dataclass
class PassEnd:
    """What ending a pass works with."""

    passes: PassStore
    table: PassFacts
    now: Callable[[], datetime]
    # Where the report goes, given the pass's own topic (the scheduled repair's, or None):
    # that topic, else the stage's REPORT_TOPIC_ARN, else nowhere (None).
    notifier_for: Callable[[str | None], Notifier | None] = field(default=lambda topic: None)


def end_if_over(end: PassEnd | None, summary: Summary) -> None:
    """After a worker found its own states empty (`summary.finished_pass`): end the pass if
    nothing is left anywhere, noting on the summary the pass this invocation ended."""
    if end is None or not summary.finished_pass:
        return
    ended = end_pass_if_over(end)
    summary.ended_pass = None if ended is None else ended.id


def end_pass_if_over(end: PassEnd) -> Pass | None:
    """Finish the current pass if it runs and nothing is left in 0, 1, 3 or 5: the finished
    record (with its report) for the one call that finished it, else None."""
    current = end.passes.current()
    if current is None or current.status is not Status.RUNNING:
        return None
    if end.table.has_any(WORKING_STATES):
        return None
    report = pass_report(end, current)
    ended = current.finished(report, end.now())
    if not end.passes.finish(ended):
        return None  # the other worker finished it first
    notifier = end.notifier_for(ended.topic)
    if notifier is not None:
        notifier.publish(f"grid-reingest: pass {ended.id} finished", report_text(ended))
    return ended


def pass_report(end: PassEnd, current: Pass) -> Report:
    """The report of `current` as the table stands now."""
    counts = end.table.counts(tuple(ProgressState))
    failed = sum(n for s, n in counts.items() if s in FAILED_STATES)
    sample = end.table.errors(sorted(FAILED_STATES), GROUP_SAMPLE) if failed else []
    groups = failure_groups(sample, failed)
    return Report(
        states={int(s): n for s, n in counts.items() if n},
        present=current.present,
        repaired=current.repaired,
        groups=groups,
        seconds=current.seconds(end.now()),
        gb_seconds=current.gb_seconds,
    )


def failure_groups(sample: list[tuple[int, str | None]], failed: int) -> tuple[dict[str, Any], ...]:
    """The groups of a sample of `failed` items, largest first; each group's count is scaled
    to the whole when the sample is not all of them (`sampled`)."""
    counted = Counter((state, normalise(error)) for state, error in sample)
    scale = failed / len(sample) if sample else 0.0
    groups = []
    for (state, reason), n in counted.most_common(GROUPS_KEPT):
        group: dict[str, Any] = {
            "id": group_id(state, reason),
            "state": state,
            "reason": reason,
            "count": round(n * scale),
        }
        if len(sample) < failed:
            group["sampled"] = n
        groups.append(group)
    return tuple(groups)


def report_text(ended: Pass) -> str:
    """The message a finished pass publishes."""
    assert ended.report is not None
    head = (
        f"pass {ended.id} ({ended.kind.value}, from {ended.source}, started by "
        f"{ended.started_by}) finished at {ended.ended_at}"
    )
    return head + "\n" + ended.report.text(ended.kind)
