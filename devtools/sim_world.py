"""A whole pass on simulated time: the real batch-index over a simulated Grid, thrall and Lambda.

`World.run(policy)` loads the ids into the in-memory state table, schedules
the worker as EventBridge and Lambda would, drives the virtual clock until
thrall has taken the pass's last record, and reports what happened. The
worker code is the project's own (flows, ControlledPace, Controller,
MemoryStore); only the Grid, thrall, CloudWatch's delay and the Lambda
runtime are simulated.

Policies:
- `ours`: the paced worker — runs until its time budget is spent, asking the
  Pace port how many images may be in flight (`invoke_index`);
- `fixed_batch`: one batch per schedule tick with a fixed concurrency, gated
  by the iterator age as a baseline would be (the seed's and today's designs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from devtools.sim_clock import VirtualClock
from devtools.sim_grid import OVERLOAD_STATUSES, Pool, SimGrid
from devtools.sim_lambda import SimLambda
from devtools.sim_thrall import SAMPLE_SECONDS, SimThrall
from grid_reingest.domain.backpressure import Verdict
from grid_reingest.domain.control import PaceState
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.domain.outcome import Failed, Outcome
from grid_reingest.domain.states import ProgressState
from grid_reingest.flows.batch_index import IndexDeps, IndexSummary, run_batch_index
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.ports import Clock, Observation, Pace, Projector
from grid_reingest.settings import BatchIndexSettings, load

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WORK_STATES = (ProgressState.NOT_STARTED, ProgressState.IN_PROGRESS)
# How often the simulator checks whether the pass is over.
DONE_CHECK_SECONDS = 10.0
# Wake-ups are rounded up to this grid (simulated seconds): fewer scheduler steps.
QUANTUM_SECONDS = 0.05


@dataclass(frozen=True)
class WorldSpec:
    """A simulated Grid and thrall, and what happens to them during the pass."""

    images: int
    loader_slots: int
    thrall_per_minute: float
    loader_base_seconds: float = 0.4
    loader_queue: int | None = None  # None: eight times the slots
    data_slots: int | None = None  # None: four times the loader's
    data_base_seconds: float = 0.05
    threshold_ms: float = 60_000
    # (simulated second, what, value): "loader_slots" n, "thrall_paused" 0/1
    events: tuple[tuple[float, str, float], ...] = ()
    horizon_seconds: float = 4 * 3600
    seed: int = 1

    @property
    def grid_per_minute(self) -> float:
        """The Grid's nominal capacity (images a minute, every loader slot busy at base)."""
        return self.loader_slots * 60 / self.loader_base_seconds

    @property
    def nominal_per_minute(self) -> float:
        """The pass's ceiling: the slower of the Grid and thrall."""
        return min(self.grid_per_minute, self.thrall_per_minute)


@dataclass
class PassResult:
    """What one pass did, for the benchmark to score."""

    spec: WorldSpec
    finished: bool
    duration_seconds: float
    images: int  # images whose pass ended (any final state)
    overload_failures: int  # images left at 4 or 8 by an overload answer
    ages: list[tuple[float, float]]  # (second, true iterator age in seconds)
    publish_times: list[float]
    index_gb_seconds: float
    projection_seconds: float
    invocations: int
    steps: int
    answers: dict[str, int]
    # (second, limit, rate ceiling, reason) at each decision of the controller
    timeline: list[tuple[float, float, float | None, str]] = field(default_factory=list)


class RecordingControl(MemoryControl):
    """The control item in memory, keeping every state the controller saved (for reports)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self.timeline: list[tuple[float, float, float | None, str]] = []

    def save_pace(self, pace: PaceState, expected_version: int) -> bool:
        """Save as MemoryControl does; remember (second, limit, rate, reason) when saved."""
        saved = super().save_pace(pace, expected_version)
        if saved:
            self.timeline.append(
                (self._clock.monotonic(), pace.limit, pace.rate_per_minute, pace.reason)
            )
        return saved


class ObservedProjector:
    """A projector that keeps what the Pace needs: finished, overloaded, latencies."""

    def __init__(self, projector: Projector, clock: Clock) -> None:
        self._projector = projector
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = Observation()
        self.seconds = 0.0  # projection time in all, for its cost

    def project(self, image_id: str) -> Outcome:
        """Project, timing it on the clock."""
        started = self._clock.monotonic()
        outcome = self._projector.project(image_id)
        took = self._clock.monotonic() - started
        with self._lock:
            self.seconds += took
            self._pending.finished += 1
            if isinstance(outcome, Failed) and outcome.status in OVERLOAD_STATUSES:
                self._pending.overloaded += 1
            else:
                self._pending.latencies_ms.append(took * 1000)
        return outcome

    def take(self) -> Observation:
        """What happened since the last take."""
        with self._lock:
            seen, self._pending = self._pending, Observation()
            return seen


@dataclass
class Worker:
    """What an invocation of the simulated batch-index works with."""

    settings: BatchIndexSettings
    store: MemoryStore
    projector: ObservedProjector
    thrall: SimThrall
    clock: VirtualClock
    name: str = "batch-index"
    _count: int = 0

    def deps(self, remaining_ms: Callable[[], int], verdict: Callable[[], Verdict]) -> IndexDeps:
        """The ports of one invocation."""
        self._count += 1
        return IndexDeps(
            table=self.store,
            projector=self.projector,
            publisher=self.thrall,
            backpressure=verdict,
            disable_schedule=None,
            remaining_ms=remaining_ms,
            worker=f"{self.name}-{self._count}",
            now=self.clock.now,
        )


# -- the paced worker (ours) ----------------------------------------------------------

# Rounds of `in_flight` images per batch of the one-batch flow: the pace is
# asked again between batches, so a batch lasts a few seconds.
ROUNDS_PER_BATCH = 20
# A batch under a rate ceiling lasts this long (simulated seconds).
RATE_STRETCH_SECONDS = 10.0
IDLE_SECONDS = 5.0


def invoke_index(worker: Worker, pace: Pace, remaining_ms: Callable[[], int]) -> list[IndexSummary]:
    """One invocation of the paced worker: batches sized by the Pace until the budget is spent.

    Written over the one-batch flow (`run_batch_index`); the continuous flow
    takes the Pace and the Clock itself and replaces this loop.
    """
    margin_ms = worker.settings.stop_margin_seconds * 1000
    summaries = []
    clock = worker.clock
    while remaining_ms() > margin_ms:
        decision = pace.decide(worker.projector.take())
        if decision.paused or decision.in_flight <= 0:
            # Nothing to do for now: end, and let the next keep-alive ask again
            # (an invocation that waits pays for its wait).
            return summaries
        batch = decision.in_flight * ROUNDS_PER_BATCH
        if decision.rate_per_minute:
            batch = max(1, min(batch, int(decision.rate_per_minute * RATE_STRETCH_SECONDS / 60)))
        started = clock.monotonic()
        verdict = Verdict(batch, None, decision.reason)
        summary = run_batch_index(
            replace(worker.settings, concurrency=decision.in_flight),
            worker.deps(remaining_ms, lambda v=verdict: v),
        )
        summaries.append(summary)
        if summary.finished_pass:
            return summaries
        if summary.claimed == 0:
            clock.sleep(IDLE_SECONDS)
        if decision.rate_per_minute:
            clock.sleep(started + batch * 60 / decision.rate_per_minute - clock.monotonic())
    return summaries


# -- the world ----------------------------------------------------------------------


def worker_settings(**overrides: object) -> BatchIndexSettings:
    """batch-index's settings as deployed (defaults), with `overrides`."""
    settings = load(
        BatchIndexSettings,
        {
            "STATE_TABLE_NAME": "sim",
            "THRALL_STREAM_NAME": "sim",
            "PROJECTION_FUNCTION_NAME": "sim",
        },
    )
    return replace(settings, **overrides)


class World:
    """One simulated pass."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self.clock = VirtualClock(START, quantum=QUANTUM_SECONDS)
        self.store = MemoryStore(self.clock.now)
        self.store.put_new(f"img-{i:07d}" for i in range(spec.images))
        loader = Pool(
            "image-loader",
            spec.loader_slots,
            spec.loader_queue or 8 * spec.loader_slots,
            spec.loader_base_seconds,
        )
        data_slots = spec.data_slots or 4 * spec.loader_slots
        data = Pool("media-api", data_slots, 2 * data_slots, spec.data_base_seconds)
        self.grid = SimGrid(self.clock, loader, data, seed=spec.seed)
        self.thrall = SimThrall(self.clock, spec.thrall_per_minute, seed=spec.seed + 1)
        self.projector = ObservedProjector(self.grid, self.clock)
        self.control = RecordingControl(self.clock)
        self._done = False

    def worker(self, **settings: object) -> Worker:
        """The worker's ports over this world."""
        return Worker(
            worker_settings(**settings), self.store, self.projector, self.thrall, self.clock
        )

    def age_reading(self) -> tuple[float, float | None] | None:
        """thrall's iterator age as ControlledPace reads it (CloudWatch's visible points)."""
        return self.thrall.age_points()

    def window_max_ms(self) -> float | None:
        """The 5-minute maximum iterator age (the baselines' gate)."""
        return self.thrall.window_max_ms()

    def run(self, functions: list[SimLambda]) -> PassResult:
        """Run the pass with these scheduled functions until thrall has taken its last record."""
        self._schedule_world()
        for function in functions:
            function.start()
        self.clock.run_until(self.spec.horizon_seconds, lambda: self._done)
        for function in functions:
            function.enabled = False
        # Let running invocations end (their budget runs out on the simulated clock).
        self.clock.run_until(
            self.clock.monotonic() + 900, lambda: not any(f.running for f in functions)
        )
        errors = [e for f in functions for e in f.errors]
        if errors:
            raise errors[0]
        return self._result(functions)

    def _schedule_world(self) -> None:
        def sample() -> None:
            self.thrall.tick()
            self.clock.call_at(self.clock.monotonic() + SAMPLE_SECONDS, sample, quiet=True)

        def check() -> None:
            if not self.store.has_any(WORK_STATES) and self.thrall.backlog == 0:
                self._done = True
            self.clock.call_at(self.clock.monotonic() + DONE_CHECK_SECONDS, check, quiet=True)

        self.clock.call_at(SAMPLE_SECONDS, sample, quiet=True)
        self.clock.call_at(DONE_CHECK_SECONDS, check, quiet=True)
        for when, what, value in self.spec.events:
            self.clock.call_at(
                when, lambda what=what, value=value: self._event(what, value), quiet=True
            )

    def _event(self, what: str, value: float) -> None:
        if what == "loader_slots":
            self.grid.loader.resize(int(value))
        elif what == "thrall_paused":
            self.thrall.paused = bool(value)
        else:
            raise ValueError(f"unknown simulation event {what!r}")

    def _result(self, functions: list[SimLambda]) -> PassResult:
        counts = self.store.counts()
        overload = 0
        for state in (ProgressState.KNOWN_ERROR, ProgressState.UNKNOWN_ERROR):
            if counts[state]:
                overload += sum(
                    1
                    for i in range(self.spec.images)
                    if (item := self.store.get(f"img-{i:07d}")) is not None
                    and item.state == state
                    and any(f"HTTP {s}" in (item.last_error or "") for s in OVERLOAD_STATUSES)
                )
        return PassResult(
            spec=self.spec,
            finished=self._done,
            duration_seconds=self.clock.monotonic() if self._done else self.spec.horizon_seconds,
            images=self.spec.images
            - counts[ProgressState.NOT_STARTED]
            - counts[ProgressState.IN_PROGRESS],
            overload_failures=overload,
            ages=list(self.thrall.ages),
            publish_times=list(self.thrall.publish_times),
            index_gb_seconds=sum(f.gb_seconds for f in functions),
            projection_seconds=self.projector.seconds,
            invocations=sum(f.invocations for f in functions),
            steps=self.clock.steps,
            answers=dict(self.grid.answers),
            timeline=list(self.control.timeline),
        )


# -- policies -----------------------------------------------------------------------


def paced(
    world: World, tuning: Tuning, *, memory_mb: int, refresh_seconds: float = 15.0
) -> list[SimLambda]:
    """Ours: the paced worker, a keep-alive every minute, one invocation at a time."""
    worker = world.worker(concurrency=tuning.max_limit)
    pace = ControlledPace(
        Controller(tuning),
        world.control,
        world.age_reading,
        world.clock,
        refresh_seconds=refresh_seconds,
    )
    function = SimLambda(
        world.clock,
        lambda remaining_ms: invoke_index(worker, pace, remaining_ms),
        every_seconds=60,
        timeout_seconds=900,
        memory_mb=memory_mb,
    )
    return [function]


def fixed_batch(
    world: World,
    *,
    every_seconds: float,
    batch: int,
    concurrency: int,
    gate: Callable[[float | None], Verdict],
    memory_mb: int,
    reserved: int = 1,
) -> list[SimLambda]:
    """A baseline: one batch per tick, its size from `gate(5-minute maximum iterator age)`."""
    worker = world.worker(concurrency=concurrency, batch_size=batch)

    def invoke(remaining_ms: Callable[[], int]) -> IndexSummary:
        verdict = gate(world.window_max_ms())
        return run_batch_index(worker.settings, worker.deps(remaining_ms, lambda: verdict))

    return [
        SimLambda(
            world.clock,
            invoke,
            every_seconds=every_seconds,
            timeout_seconds=900,
            memory_mb=memory_mb,
            reserved=reserved,
        )
    ]
