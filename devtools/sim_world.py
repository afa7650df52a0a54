"""A whole pass on simulated time: the real batch-index over a simulated Grid, thrall and Lambda.

`World.run(policy)` loads the ids into the in-memory state table, schedules
the worker as EventBridge and Lambda would, drives the virtual clock until
thrall has taken the pass's last record, and reports what happened. The
worker code is the project's own (flows, ControlledPace, Controller,
MemoryStore); only the Grid, thrall, CloudWatch's delay and the Lambda
runtime are simulated.

Policies:
- `paced` (ours): the deployed batch-index flow (`flows.batch_index.run_batch_index`),
  continuous within each invocation, paced by `ControlledPace` over the
  controller, the control item and CloudWatch's late view of thrall;
- `fixed_batch`: one batch per schedule tick with a fixed concurrency, gated
  by the iterator age (the seed's and today's designs, `one_batch`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from devtools.sim_clock import VirtualClock
from devtools.sim_grid import OVERLOAD_STATUSES, Pool, SimGrid
from devtools.sim_lambda import SimLambda
from devtools.sim_thrall import SAMPLE_SECONDS, SimThrall
from grid_reingest.domain.claims import (
    Source,
    Transition,
    failure_transition,
    lease_cutoff,
    release_transition,
)
from grid_reingest.domain.control import PaceState
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.domain.outcome import Failed, Outcome, Ready
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import Cause, Judge, Symptom, Verdict, cause_of
from grid_reingest.domain.thrall_message import PUT_RECORDS_MAX_RECORDS
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.ports import Clock, Projector
from grid_reingest.settings import BatchIndexSettings, load

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WORK_STATES = (ProgressState.NOT_STARTED, ProgressState.IN_PROGRESS)
HELD = ProgressState.IN_PROGRESS
# How often the simulator checks whether the pass is over.
DONE_CHECK_SECONDS = 10.0
# The first tick comes this long after the ids are loaded: a worker takes only
# items changed before it started, as in a real pass (loaded long before).
FIRST_TICK_SECONDS = 1.0
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
    checkpoints: bool = True  # the worker reads thrall's checkpoints (else CloudWatch's only)

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
    idle_gb_seconds: float  # of index_gb_seconds, invocations that took no image
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
    """A projector that adds up the time its projections took (image-projection's bill)."""

    def __init__(self, projector: Projector, clock: Clock) -> None:
        self._projector = projector
        self._clock = clock
        self._lock = threading.Lock()
        self.seconds = 0.0

    def project(self, image_id: str) -> Outcome:
        """Project, timing it on the clock."""
        started = self._clock.monotonic()
        outcome = self._projector.project(image_id)
        with self._lock:
            self.seconds += self._clock.monotonic() - started
        return outcome


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
            function.start(FIRST_TICK_SECONDS)
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
            idle_gb_seconds=sum(f.idle_gb_seconds for f in functions),
            projection_seconds=self.projector.seconds,
            invocations=sum(f.invocations for f in functions),
            steps=self.clock.steps,
            answers=dict(self.grid.answers),
            timeline=list(self.control.timeline),
        )


# -- policies -----------------------------------------------------------------------


def paced(world: World, tuning: Tuning, *, memory_mb: int, reserved: int = 1) -> list[SimLambda]:
    """Ours: the continuous batch-index flow paced by the controller, as deployed.

    A keep-alive tick every minute, at most `reserved` invocations at once.
    With one, the pace (and its cached decision) outlives invocations as it
    does in a warm Lambda container; with more, each invocation has its own,
    as concurrent containers do, and they share only the control item.
    """
    settings = worker_settings(max_in_flight=tuning.max_limit)

    def new_pace() -> ControlledPace:
        return ControlledPace(
            Controller(tuning),
            world.control,
            world.age_reading,
            world.clock,
            refresh_seconds=settings.refresh_seconds,
            checkpoints=world.thrall.checkpoints if world.spec.checkpoints else None,
        )

    shared = new_pace()
    count = itertools.count(1)

    def invoke(remaining_ms: Callable[[], int]) -> int:
        pace = shared if reserved == 1 else new_pace()
        deps = IndexDeps(
            store=world.store,
            projector=world.projector,
            publisher=world.thrall,
            pace=pace,
            clock=world.clock,
            remaining_ms=remaining_ms,
            worker=f"batch-index-{next(count)}",
            rule=None,
            control=world.control,
        )
        return run_batch_index(settings, deps).claimed

    return [
        SimLambda(
            world.clock,
            invoke,
            every_seconds=60,
            timeout_seconds=900,
            memory_mb=memory_mb,
            reserved=reserved,
        )
    ]


def fixed_batch(
    world: World,
    *,
    every_seconds: float,
    concurrency: int,
    gate: Callable[[float | None], int],
    memory_mb: int,
    reserved: int = 1,
) -> list[SimLambda]:
    """A baseline: one batch per tick, its size `gate(5-minute maximum iterator age)`."""
    settings = worker_settings()
    count = itertools.count(1)

    def invoke(remaining_ms: Callable[[], int]) -> int:
        size = gate(world.window_max_ms())
        if size <= 0:
            return 0
        return one_batch(world, settings, size, concurrency, f"fixed-{next(count)}")

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


def one_batch(
    world: World, settings: BatchIndexSettings, size: int, concurrency: int, worker: str
) -> int:
    """The one-batch design the baselines model: claim `size`, project them `concurrency` at a
    time, publish the ready ones in PutRecords-sized calls, record every outcome (overload
    that hits many at once given back untouched); the images claimed."""
    now = world.clock.now()
    sources = [
        Source(HELD, lease_cutoff(now, settings.lease_seconds), reclaim=True),
        Source(settings.start_state, now),
    ]
    claims = world.store.claim(sources, HELD, size, worker)
    if not claims:
        return 0
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(world.projector.project, [c.id for c in claims]))
    transitions: list[Transition] = []
    ready: list[tuple[str, bytes]] = []
    judge = Judge()
    for claim, outcome in zip(claims, outcomes, strict=True):
        symptom = None
        if isinstance(outcome, Failed) and not outcome.known:
            symptom = Symptom(outcome.service, cause_of(outcome.status))
            judge.failed(symptom)
        else:
            judge.served()
        if isinstance(outcome, Ready):
            ready.append((claim.id, outcome.record))
        elif (
            symptom is not None
            and symptom.cause is Cause.OVERLOAD
            and judge.without_probe(symptom, final=True) is Verdict.SYSTEMIC
        ):
            # Overload that hits many images at once goes back without an attempt
            # counted, as in the deployed flow.
            transitions.append(release_transition(claim, HELD, worker, outcome.describe()))
        else:
            error = outcome.describe() if isinstance(outcome, Failed) else type(outcome).__name__
            transitions.append(
                failure_transition(claim, HELD, worker, error, settings.max_attempts)
            )
    for first in range(0, len(ready), PUT_RECORDS_MAX_RECORDS):
        result = world.thrall.publish(ready[first : first + PUT_RECORDS_MAX_RECORDS])
        transitions += [
            Transition(i, HELD, ProgressState.ENQUEUED, worker=worker, attempts=0)
            for i in result.accepted
        ]
    world.store.apply(transitions)
    return len(claims)
