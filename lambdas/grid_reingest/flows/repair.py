"""The scheduled repair: a check-first pass over the Grid's image bucket (or its inventory).

At each run of its schedule: unless a pass is still running (one at a time: the
run is refused, loudly), start a check-first pass, list its source a part at a
time (hex prefixes of the bucket, or the inventory's data files) and upload the
ids armed for it — re-arming what a finished pass left final — recording after
each part what is left, so that a run that runs out of time carries on in the
next invocation (`resume`). Once every part is loaded, the pass runs: both
workers' schedules are switched on, batch-check first (it looks at every id
before anything is re-projected). The workers end the pass and publish its
report (flows/pass_end.py). docs/state-table.md, "Passes", is the design.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.passes import Arming, Kind, Pass, Status
from grid_reingest.ports import Clock, IdLoader, IdSource, Notifier, PassStore, RuleSwitch

# A pass still loading whose record has not moved for this long lost its loader (the
# invocation died and its retries were spent): the schedule's next run carries it on.
STALLED_LOADING_SECONDS = 30 * 60


class RepairRefused(RuntimeError):
    """Another pass is still running: this run started nothing."""


@dataclass
class RepairDeps:
    """What a repair run works with."""

    passes: PassStore
    source: IdSource
    loader: IdLoader
    rules: Sequence[RuleSwitch]  # batch-check's, then batch-index's
    clock: Clock
    remaining_ms: Callable[[], int]
    resume: Callable[[str], None]  # carry on loading this pass in another invocation
    notifier: Notifier | None = None


@dataclass
class RepairSummary:
    """What one run did."""

    pass_id: str | None = None
    parts_loaded: int = 0
    parts_left: int = 0
    ids_loaded: int = 0
    started: bool = False
    running: bool = False  # every part loaded, the workers switched on
    refused: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The summary as one structured log line."""
        return {
            "passId": self.pass_id,
            "partsLoaded": self.parts_loaded,
            "partsLeft": self.parts_left,
            "idsLoaded": self.ids_loaded,
            "started": self.started,
            "running": self.running,
            "refused": self.refused,
        }


def start_repair(deps: RepairDeps, *, topic: str | None, margin_ms: int) -> RepairSummary:
    """A run of the schedule: start a pass and load it, or carry on a stalled loading;
    RepairRefused (after telling the topic) while another pass runs."""
    now = deps.clock.now()
    current = deps.passes.current()
    stalled = current is not None and current.quiet_for(now) > STALLED_LOADING_SECONDS
    if current is not None and current.status is Status.LOADING and stalled:
        return load_repair(current.id, deps, margin_ms=margin_ms)
    if current is not None and current.status is not Status.FINISHED:
        refused = (
            f"scheduled repair not started: pass {current.id} ({current.kind.value}, from "
            f"{current.source}, started {current.started_at}) is still {current.status.value}"
        )
        if deps.notifier is not None:
            deps.notifier.publish("grid-reingest: scheduled repair refused", refused)
        raise RepairRefused(refused)
    new = Pass.start(
        Kind.CHECK_FIRST, deps.source.describe(), now, started_by="schedule", topic=topic
    )
    new = replace(new, status=Status.LOADING, remaining=tuple(deps.source.parts()))
    deps.passes.start(new)  # PassRunning if another started meanwhile
    summary = load_repair(new.id, deps, margin_ms=margin_ms)
    summary.started = True
    return summary


def load_repair(pass_id: str, deps: RepairDeps, *, margin_ms: int) -> RepairSummary:
    """Load what is left of `pass_id`'s parts while there is time; then switch the workers on,
    or ask for another invocation to carry on."""
    summary = RepairSummary(pass_id)
    record = deps.passes.current()
    if record is None or record.id != pass_id or record.status is not Status.LOADING:
        return summary  # loaded already (a duplicate of the resume event), or superseded
    arming = Arming(pass_id, Kind.CHECK_FIRST, rearm=True)
    while record.remaining and deps.remaining_ms() > margin_ms:
        part = record.remaining[0]
        loaded = sum(deps.loader.load(page, arming) for page in deps.source.ids(part))
        record = replace(
            record,
            remaining=record.remaining[1:],
            loaded=record.loaded + loaded,
            updated_at=format_instant(deps.clock.now()),
        )
        if not deps.passes.save(record, Status.LOADING):
            return summary  # another loader of this pass got there first
        summary.parts_loaded += 1
        summary.ids_loaded += loaded
    summary.parts_left = len(record.remaining)
    if record.remaining:
        deps.resume(pass_id)
        return summary
    if deps.passes.save(replace(record, status=Status.RUNNING), Status.LOADING):
        for rule in deps.rules:
            rule.enable()
        summary.running = True
    return summary
