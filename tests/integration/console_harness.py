"""Workers for the console's tests: a stage on the emulator (devtools.local_stage) and
`FakeWorkers`, which move the states the way the workers would when `watch` waits."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from devtools.local_stage import STREAM, Stage, deploy_stage
from devtools.testing import grid_id
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.states import ProgressState as S

__all__ = ["STREAM", "FakeWorkers", "Stage", "deploy_stage", "grid_id"]


@dataclass
class FakeWorkers:
    """Moves states the way the workers would, one step each time watch waits.

    batch-index takes up to `per_tick` items from 0 to 3 (those in `fail` to 8) and
    switches its rule off when none is left; batch-check likewise from 3 to 6, running
    beside it, and switches its rule off only once batch-index has nothing left either.
    """

    stage: Stage
    ids: list[str]
    per_tick: int = 1000
    fail: set[str] = field(default_factory=set)
    ticks: list[str] = field(default_factory=list)
    on_tick: Callable[[int], None] | None = None

    def __call__(self, seconds: float) -> None:
        if self.on_tick:
            self.on_tick(len(self.ticks))
        for worker, source, target in (
            ("index", S.NOT_STARTED, S.ENQUEUED),
            ("check", S.ENQUEUED, S.VERIFIED),
        ):
            if self.stage.rule(worker) != "ENABLED":
                continue
            self.ticks.append(worker)
            states = self._states()
            waiting = [i for i in self.ids if states.get(i) == source]
            self._move(waiting[: self.per_tick], source, target)
            index_left = worker == "check" and S.NOT_STARTED in self._states().values()
            if len(waiting) <= self.per_tick and not index_left:
                self.stage.events.disable_rule(Name=self.stage.rules[worker])

    def _states(self) -> dict[str, int]:
        return {i: s for page in self.stage.table.scan(segments=1) for i, s in page}

    def _move(self, ids: Iterable[str], source: S, target: S) -> None:
        transitions = [
            Transition(i, source, S.UNKNOWN_ERROR if i in self.fail else target) for i in ids
        ]
        self.stage.table.apply(transitions)
