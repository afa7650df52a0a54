"""A whole pass on simulated time: the real workers over a simulated Grid, thrall and Lambda.

`World(scenario, seed)` loads the ids into the in-memory state table, plays the
scenario's changes (slots, background load, error bursts, thrall's rate), runs
the functions a policy gives it (devtools/sim_policies.py) as EventBridge and
Lambda would, drives the virtual clock until every image has reached a final
state (verified or failed: batch-check included), and reports what happened.
The worker code is the project's own (flows, ControlledPace, Controller,
MemoryStore); only the Grid, thrall and its stream, AWS's round trips and the
Lambda runtime are simulated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from devtools.sim_aws import SimControl, SimStore
from devtools.sim_clock import VirtualClock, watching
from devtools.sim_grid import SimGrid, record_bytes
from devtools.sim_lambda import SimLambda
from devtools.sim_scenario import Scenario
from devtools.sim_thrall import SAMPLE_SECONDS, SimThrall
from grid_reingest.domain.control import PaceState
from grid_reingest.domain.outcome import Outcome
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.thrall_state import Lag
from grid_reingest.flows.pace import thrall_lag
from grid_reingest.ports import Clock, Projector

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
INDEX_STATES = (ProgressState.NOT_STARTED, ProgressState.IN_PROGRESS)
UNFINISHED = (*INDEX_STATES, ProgressState.ENQUEUED, ProgressState.LOOKING_FOR_IMAGE)
# How often the simulator checks whether the pass is over.
DONE_CHECK_SECONDS = 5.0
# The first tick comes this long after the ids are loaded: a worker takes only
# items changed before it started, as in a real pass (loaded long before).
FIRST_TICK_SECONDS = 1.0
# Wake-ups are rounded up to this grid (simulated seconds).
QUANTUM_SECONDS = 0.001
# CloudWatch's GetMetricData and a scan of thrall's lease table, as the pace reads them.
CLOUDWATCH_SECONDS = 0.05
LEASE_TABLE_SECONDS = 0.02
# Time for running invocations to end after the pass (their budget runs out).
WIND_DOWN_SECONDS = 900.0


@dataclass
class PassResult:
    """What one pass did, for the benchmark to score."""

    scenario: Scenario
    seed: int
    finished: bool  # every image reached a final state before minutes_max
    index_seconds: float  # until thrall took the last record of ours (batch-index's part)
    pass_seconds: float  # until the last image was verified or failed
    final: int  # images in a final state
    verified: int
    # Images charged an attempt, or judged missing: every image reaches media-api, and the
    # only one that fails on its own is one whose record no second of its shard can take
    # beside the other producers' (`own`).
    charged: int
    own: int
    ages: list[tuple[float, float]]  # (second, true iterator age in seconds)
    publish_times: list[float]
    index_gb_seconds: float
    check_gb_seconds: float
    idle_gb_seconds: float  # of batch-index's, invocations that took no image
    projection_seconds: float
    invocations: int
    failed_invocations: int
    throttled_ticks: int
    answers: dict[str, int]
    kinesis_rejected: int
    steps: int
    # (second, limit, rate ceiling, reason) at each decision of batch-index's controller
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

    def health(self, service: str) -> bool | None:
        """The projector's health route."""
        return self._projector.health(service)


def image_ids(count: int) -> list[str]:
    """The pass's ids, as the Grid writes them (40 lower-case hex characters)."""
    return [f"{i:040x}" for i in range(1, count + 1)]


class World:
    """One simulated pass of `scenario`, its randomness drawn from `seed`."""

    def __init__(
        self, scenario: Scenario, seed: int, *, invoked: bool = True, reserved: int | None = None
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.clock = VirtualClock(START, quantum=QUANTUM_SECONDS)
        self.memory = MemoryStore(self.clock.now)
        self.ids = image_ids(scenario.images)
        self.memory.put_new(self.ids)
        self.store = SimStore(self.memory, self.clock)
        self.thrall = SimThrall(self.clock, scenario, seed)
        self.grid = SimGrid(
            self.clock,
            scenario,
            seed,
            invoked=invoked,
            reserved=reserved,
            indexed=self.thrall.is_indexed,
        )
        self.projector = ObservedProjector(self.grid, self.clock)
        self.recording = RecordingControl(self.clock)
        self.control = SimControl(self.recording, self.clock)
        self.check_control = SimControl(MemoryControl(), self.clock)
        self._done_at: float | None = None
        self._index_done_at: float | None = None

    # -- what the workers read ------------------------------------------------------

    def age_reading(self) -> tuple[float, float | None] | None:
        """thrall's iterator age as ControlledPace reads it (CloudWatch's visible points)."""
        self.clock.sleep(CLOUDWATCH_SECONDS)
        return self.thrall.age_points()

    def checkpoints(self) -> dict[str, int]:
        """thrall's lease table, as the pace scans it."""
        self.clock.sleep(LEASE_TABLE_SECONDS)
        return self.thrall.checkpoints()

    def window_max_ms(self) -> float | None:
        """The 5-minute maximum iterator age (the baselines' gate)."""
        self.clock.sleep(CLOUDWATCH_SECONDS)
        return self.thrall.window_max_ms()

    def thrall_lag(self) -> Lag | None:
        """thrall's lag as batch-index's controller last judged it (batch-check's wait)."""
        return thrall_lag(self.recording, self.clock)()

    @property
    def index_done(self) -> bool:
        """Nothing left for batch-index and thrall has taken every record of ours."""
        return self._index_done_at is not None

    # -- running ----------------------------------------------------------------------

    def run(self, functions: list[SimLambda]) -> PassResult:
        """Run the pass with these scheduled functions until every image is final."""
        self._schedule_world()
        for function in functions:
            function.start(FIRST_TICK_SECONDS)
        horizon = self.scenario.minutes_max * 60
        with watching():
            self.clock.run_until(horizon, lambda: self._done_at is not None)
            for function in functions:
                function.enabled = False
            self.clock.run_until(
                self.clock.monotonic() + WIND_DOWN_SECONDS,
                lambda: not any(f.running for f in functions),
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
            now = self.clock.monotonic()
            index_idle = self._index_done_at is None and not self.memory.has_any(INDEX_STATES)
            if index_idle and self.thrall.backlog == 0:
                self._index_done_at = self.thrall.last_consumed_at
            if self._index_done_at is not None and not self.memory.has_any(UNFINISHED):
                self._done_at = now
            self.clock.call_at(now + DONE_CHECK_SECONDS, check, quiet=True)

        self.clock.call_at(SAMPLE_SECONDS, sample, quiet=True)
        self.clock.call_at(DONE_CHECK_SECONDS, check, quiet=True)
        grid = self.scenario.grid
        for change in grid.changes:
            self._at(change.at_minute, lambda n=change.slots: self.grid.set_slots(n))
        for minute in sorted(
            {b.from_minute for b in grid.background} | {b.to_minute for b in grid.background}
        ):
            self._at(minute, lambda m=minute: self.grid.set_background(self._background(m)))
        for change in self.scenario.thrall.changes:
            self._at(change.at_minute, lambda r=change.per_minute: self._set_rate(r))

    def _at(self, minute: float, action) -> None:
        self.clock.call_at(minute * 60, action, quiet=True, key="world")

    def _background(self, minute: float) -> int:
        return sum(
            b.slots_used
            for b in self.scenario.grid.background
            if b.from_minute <= minute < b.to_minute
        )

    def _set_rate(self, per_minute: float) -> None:
        self.thrall.rate_per_minute = per_minute

    def _result(self, functions: list[SimLambda]) -> PassResult:
        counts = self.memory.counts()
        charged = own = 0
        kb, sigma = self.scenario.kinesis.record_kb_mean, self.scenario.kinesis.record_kb_sigma
        for image_id, item in self.memory.read_items(self.ids).items():
            size = record_bytes(kb, sigma, self.seed, image_id)
            if not self.thrall.ever_takes(size) and item.state is ProgressState.UNKNOWN_ERROR:
                own += 1
            # Every image is the Grid's and reaches media-api in the end: one judged
            # missing was judged before thrall had reached it.
            elif item.attempts > 0 or item.state in (
                ProgressState.KNOWN_ERROR,
                ProgressState.UNKNOWN_ERROR,
                ProgressState.NOT_FOUND_IN_MEDIA_API,
            ):
                charged += 1
        horizon = self.scenario.minutes_max * 60
        index = [f for f in functions if f.name.startswith("batch-index")]
        check = [f for f in functions if not f.name.startswith("batch-index")]
        return PassResult(
            scenario=self.scenario,
            seed=self.seed,
            finished=self._done_at is not None,
            index_seconds=self._index_done_at if self._index_done_at is not None else horizon,
            pass_seconds=self._done_at if self._done_at is not None else horizon,
            final=self.scenario.images - sum(counts[s] for s in UNFINISHED),
            verified=counts[ProgressState.VERIFIED],
            charged=charged,
            own=own,
            ages=list(self.thrall.ages),
            publish_times=list(self.thrall.publish_times),
            index_gb_seconds=sum(f.gb_seconds for f in index),
            check_gb_seconds=sum(f.gb_seconds for f in check),
            idle_gb_seconds=sum(f.idle_gb_seconds for f in index),
            projection_seconds=self.projector.seconds,
            invocations=sum(f.invocations for f in functions),
            failed_invocations=sum(f.failed_invocations for f in functions),
            throttled_ticks=sum(f.throttles for f in functions),
            answers=dict(self.grid.answers),
            kinesis_rejected=self.thrall.rejected,
            steps=self.clock.steps,
            timeline=list(self.recording.timeline),
        )
