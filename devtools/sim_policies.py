"""The policies a simulated pass is run under: ours as deployed, the seed's, and today's.

- `ours`: the deployed batch-index and batch-check flows (flows/), each paced
  by `ControlledPace` over the controller, batch-check running beside
  batch-index from the start; as a stage deploys them (`Deployment`).
- `seed`: the seed's design as a careful operator would size it: a batch per
  one-minute tick, a share of the scenario's nominal capacity, projected
  in-process at a concurrency that keeps image-loader's slots busy, gated on
  the 5-minute maximum iterator age; batch-check afterwards, the same way on
  media-api. Deployed as the how-to leaves it: one invocation at a time, and
  Lambda's default maximum event age (a throttled tick is retried for hours).
- `today`: the one-batch design with PROD's values before continuous workers:
  500 ids every 5 minutes, `gridConcurrency` 32, two invocations at most, the
  deployed 60 s event age; batch-check afterwards, likewise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta

from devtools.sim_grid import DATA_SECONDS
from devtools.sim_lambda import DEFAULT_EVENT_AGE_SECONDS, SimLambda
from devtools.sim_world import World
from grid_reingest.domain.claims import (
    Source,
    Transition,
    failure_transition,
    lease_cutoff,
    outcome_transition,
    release_transition,
)
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.domain.outcome import Failed, Outcome, Ready
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import Cause, Judge, Symptom, Verdict, cause_of
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.flows.invocation import SystemicFailure
from grid_reingest.flows.pace import ControlledPace, grid_only
from grid_reingest.flows.probes import LookupProbe, ProjectionProbe
from grid_reingest.ports import PublishResult
from grid_reingest.settings import BatchCheckSettings, BatchIndexSettings, load

MINUTE = 60.0
WORKER_TIMEOUT_SECONDS = 900.0
INDEX_MEMORY_MB = 1024
CHECK_MEMORY_MB = 256
# Today's design (PROD's cdk.json before continuous workers).
TODAY_BATCH = 500
TODAY_EVERY_SECONDS = 300.0
TODAY_CONCURRENCY = 32
TODAY_RESERVED = 2
TODAY_EASY_SHARE = 0.5
TODAY_SMALLEST_SHARE = 0.1


@dataclass(frozen=True)
class Deployment:
    """What a stage deploys that the pass runs with (infra/config.py reads it from cdk.json)."""

    in_flight: int  # the pass's ceiling on projections in flight (batch-index's MAX_IN_FLIGHT)
    index_reserved: int  # batch-index invocations at once
    projection_reserved: int  # image-projection's reserved concurrency
    check_in_flight: int
    check_reserved: int
    threshold_ms: float
    checkpoints: bool = True  # thrall's lease table read (thrallCheckpointTable set)
    event_age_seconds: float = 60.0  # the rules' maximum event age


def index_settings(**overrides: object) -> BatchIndexSettings:
    """batch-index's settings as deployed (defaults), with `overrides`."""
    settings = load(
        BatchIndexSettings,
        {"STATE_TABLE_NAME": "sim", "THRALL_STREAM_NAME": "sim", "PROJECTION_FUNCTION_NAME": "sim"},
    )
    return replace(settings, **overrides)


def check_settings(**overrides: object) -> BatchCheckSettings:
    """batch-check's settings as deployed (defaults), with `overrides`."""
    settings = load(
        BatchCheckSettings,
        {"STATE_TABLE_NAME": "sim", "GRID_DOMAIN_ROOT": "sim.example.org", "GRID_API_KEY": "k"},
    )
    return replace(settings, **overrides)


class SimRule:
    """A worker's own schedule (the RuleSwitch port): switched off, its ticks stop."""

    def __init__(self, function: Callable[[], SimLambda]) -> None:
        self._function = function

    def disable(self) -> bool:
        """Switch off; whether it was on."""
        function = self._function()
        was, function.enabled = function.enabled, False
        return was

    def enable(self) -> bool:
        """Switch on; whether it was off."""
        function = self._function()
        was, function.enabled = function.enabled, True
        return not was


# -- ours -----------------------------------------------------------------------------


def ours(world: World, deployment: Deployment) -> list[SimLambda]:
    """batch-index and batch-check as deployed, both started at once."""
    return [_paced_index(world, deployment), _paced_check(world, deployment)]


def _paced_index(world: World, dep: Deployment) -> SimLambda:
    settings = index_settings(
        max_in_flight=dep.in_flight, max_iterator_age_ms=int(dep.threshold_ms)
    )
    tuning = Tuning(max_limit=dep.in_flight, max_iterator_age_ms=dep.threshold_ms)

    def new_pace(name: str) -> ControlledPace:
        return ControlledPace(
            Controller(tuning),
            world.control,
            world.age_reading,
            world.clock,
            refresh_seconds=settings.loop.refresh_seconds,
            checkpoints=world.checkpoints if dep.checkpoints else None,
            name=name,
        )

    shared = new_pace("batch-index")
    count = itertools.count(1)
    function: list[SimLambda] = []

    def invoke(remaining_ms: Callable[[], int]) -> int:
        n = next(count)
        # One invocation at a time: the pace outlives it, as in a warm container.
        pace = shared if dep.index_reserved == 1 else new_pace(f"batch-index-{n:05d}")
        deps = IndexDeps(
            store=world.store,  # type: ignore[arg-type]
            projector=world.projector,
            publisher=world.thrall,
            pace=pace,
            clock=world.clock,
            remaining_ms=remaining_ms,
            invocation=f"batch-index-{n}",
            rule=SimRule(lambda: function[0]),
            control=world.control,
            probe=ProjectionProbe(world.projector),
        )
        return run_batch_index(settings, deps).claimed

    function.append(
        _function(
            world,
            invoke,
            name="batch-index",
            memory_mb=INDEX_MEMORY_MB,
            reserved=dep.index_reserved,
            event_age=dep.event_age_seconds,
        )
    )
    return function[0]


def _paced_check(world: World, dep: Deployment) -> SimLambda:
    settings = check_settings(max_in_flight=dep.check_in_flight)
    count = itertools.count(1)
    function: list[SimLambda] = []
    lookup = world.grid.lookup

    def invoke(remaining_ms: Callable[[], int]) -> int:
        n = next(count)
        pace = ControlledPace(
            grid_only(dep.check_in_flight),
            world.check_control,
            lambda: None,
            world.clock,
            refresh_seconds=settings.loop.refresh_seconds,
            name=f"batch-check-{n:05d}",
        )
        deps = CheckDeps(
            store=world.store,  # type: ignore[arg-type]
            lookup=lookup,
            pace=pace,
            clock=world.clock,
            remaining_ms=remaining_ms,
            invocation=f"batch-check-{n}",
            rule=SimRule(lambda: function[0]),
            probe=LookupProbe(lookup, lambda: True),
            thrall_lag=world.thrall_lag,
        )
        return run_batch_check(settings, deps).claimed

    function.append(
        _function(
            world,
            invoke,
            name="batch-check",
            memory_mb=CHECK_MEMORY_MB,
            reserved=dep.check_reserved,
            event_age=dep.event_age_seconds,
        )
    )
    return function[0]


def _function(
    world: World,
    invoke: Callable,
    *,
    name: str,
    memory_mb: int,
    reserved: int,
    event_age: float,
    every_seconds: float = MINUTE,
) -> SimLambda:
    """A worker function on its schedule, Lambda's time limit and the rule's event age; an
    invocation that fails for the system's failure (flows/invocation.py) is expected."""
    return SimLambda(
        world.clock,
        invoke,
        every_seconds=every_seconds,
        timeout_seconds=WORKER_TIMEOUT_SECONDS,
        memory_mb=memory_mb,
        reserved=reserved,
        max_event_age_seconds=event_age,
        name=name,
        expected=(SystemicFailure,),
    )


# -- the seed's and today's one-batch designs ----------------------------------------------


def seed(world: World, share: float, deployment: Deployment) -> list[SimLambda]:
    """The seed's policy with batches of `share` of the nominal capacity."""
    scenario = world.scenario
    batch = max(1, int(share * scenario.capacity_per_minute))
    grid = scenario.grid
    per_image = grid.service_seconds + DATA_SECONDS
    concurrency = math.ceil(grid.slots * per_image / grid.service_seconds) + 1
    threshold = deployment.threshold_ms

    def gate(age_ms: float | None) -> int:
        return 0 if age_ms is None or age_ms >= threshold else batch

    media = scenario.media_api
    check_batch = max(1, int(share * media.slots * MINUTE / media.service_seconds))
    return _one_batch_pair(
        world,
        every_seconds=MINUTE,
        concurrency=concurrency,
        gate=gate,
        check_batch=check_batch,
        check_concurrency=media.slots,
        reserved=1,
        event_age=DEFAULT_EVENT_AGE_SECONDS,
    )


def today_batch(age_ms: float | None, threshold_ms: float, batch: int = TODAY_BATCH) -> int:
    """Today's batch for a 5-minute maximum iterator age (none without data)."""
    if age_ms is None or age_ms > threshold_ms:
        return 0
    easy = threshold_ms * TODAY_EASY_SHARE
    if age_ms <= easy:
        return batch
    share = max(TODAY_SMALLEST_SHARE, (threshold_ms - age_ms) / (threshold_ms - easy))
    return max(1, int(batch * share))


def today(world: World, deployment: Deployment) -> list[SimLambda]:
    """Today's design: a batch per 5-minute tick, GRID_CONCURRENCY, the back-pressure cut."""
    return _one_batch_pair(
        world,
        every_seconds=TODAY_EVERY_SECONDS,
        concurrency=TODAY_CONCURRENCY,
        gate=lambda age: today_batch(age, deployment.threshold_ms),
        check_batch=TODAY_BATCH,
        check_concurrency=deployment.check_in_flight,
        reserved=TODAY_RESERVED,
        event_age=deployment.event_age_seconds,
    )


def _one_batch_pair(
    world: World,
    *,
    every_seconds: float,
    concurrency: int,
    gate: Callable[[float | None], int],
    check_batch: int,
    check_concurrency: int,
    reserved: int,
    event_age: float,
) -> list[SimLambda]:
    index = index_settings()
    check = check_settings()
    count = itertools.count(1)

    def invoke_index(remaining_ms: Callable[[], int]) -> int:
        size = gate(world.window_max_ms())
        if size <= 0:
            return 0
        return one_batch(world, index, size, concurrency, f"fixed-{next(count)}")

    def invoke_check(remaining_ms: Callable[[], int]) -> int:
        if not world.index_done:
            return 0  # the operator starts batch-check once batch-index has finished
        return one_check(world, check, check_batch, check_concurrency, f"check-{next(count)}")

    every = {"every_seconds": every_seconds, "event_age": event_age}
    return [
        _function(
            world,
            invoke_index,
            name="batch-index",
            memory_mb=INDEX_MEMORY_MB,
            reserved=reserved,
            **every,
        ),
        _function(
            world, invoke_check, name="batch-check", memory_mb=CHECK_MEMORY_MB, reserved=1, **every
        ),
    ]


def one_batch(
    world: World, settings: BatchIndexSettings, size: int, concurrency: int, invocation: str
) -> int:
    """The one-batch design: claim `size`, project them `concurrency` at a time, each record
    put on the stream as its projection ends (as the Grid's own producer sends one message
    at a time), then record every outcome (overload that hits many at once given back
    untouched, as the deployed flow does); the images claimed."""
    held = ProgressState.IN_PROGRESS
    now = world.clock.now()
    sources = [
        Source(held, lease_cutoff(now, settings.loop.lease_seconds), reclaim=True),
        Source(settings.start_state, now),
    ]
    claims = world.store.claim(sources, held, size, invocation)
    if not claims:
        return 0

    def project_and_send(image_id: str) -> tuple[Outcome, PublishResult | None]:
        outcome = world.projector.project(image_id)
        if not isinstance(outcome, Ready):
            return outcome, None
        return outcome, world.thrall.publish([(image_id, outcome.record)])

    with ThreadPoolExecutor(concurrency, thread_name_prefix=f"{invocation}-work") as pool:
        answers = list(pool.map(project_and_send, [c.id for c in claims]))
    transitions: list[Transition] = []
    judge = Judge()
    for claim, (outcome, sent) in zip(claims, answers, strict=True):
        symptom = None
        if isinstance(outcome, Failed) and not outcome.known:
            symptom = Symptom(outcome.service, cause_of(outcome.status))
            judge.failed(symptom)
        else:
            judge.served()
        if sent is not None:
            if sent.accepted:
                transitions.append(
                    Transition(
                        claim.id, held, ProgressState.ENQUEUED, invocation=invocation, attempts=0
                    )
                )
            else:
                # The seed's "any other failure": an attempt, 8 once they are spent (given
                # back untouched, a record no second of its shard can take would hold the
                # seed's pass, and its batch-check, for ever).
                error = next(iter(sent.rejected.values()), "not sent")
                transitions.append(
                    failure_transition(claim, held, invocation, error, settings.loop.max_attempts)
                )
        elif (
            symptom is not None
            and symptom.cause is Cause.OVERLOAD
            and judge.without_probe(symptom, final=True) is Verdict.SYSTEMIC
        ):
            transitions.append(release_transition(claim, held, invocation, outcome.describe()))
        else:
            error = outcome.describe() if isinstance(outcome, Failed) else type(outcome).__name__
            transitions.append(
                failure_transition(claim, held, invocation, error, settings.loop.max_attempts)
            )
    world.store.apply(transitions)
    return len(claims)


def one_check(
    world: World, settings: BatchCheckSettings, size: int, concurrency: int, invocation: str
) -> int:
    """The seed's batch-check: claim `size` enqueued images old enough, ask media-api about
    each, record 6, 7 or a failure; the images claimed."""
    held = ProgressState.LOOKING_FOR_IMAGE
    now = world.clock.now()
    sources = [
        Source(held, lease_cutoff(now, settings.loop.lease_seconds), reclaim=True),
        Source(settings.start_state, now - timedelta(seconds=settings.min_age_seconds)),
    ]
    claims = world.store.claim(sources, held, size, invocation)
    if not claims:
        return 0
    with ThreadPoolExecutor(concurrency, thread_name_prefix=f"{invocation}-work") as pool:
        answers = list(pool.map(world.grid.lookup, [c.id for c in claims]))
    transitions = []
    for claim, answer in zip(claims, answers, strict=True):
        if answer.status == 200:
            transitions.append(outcome_transition(claim, held, ProgressState.VERIFIED, invocation))
        elif answer.status == 404:
            transitions.append(
                outcome_transition(claim, held, ProgressState.NOT_FOUND_IN_MEDIA_API, invocation)
            )
        elif cause_of(answer.status) is Cause.OVERLOAD:
            transitions.append(release_transition(claim, held, invocation, answer.message))
        else:
            error = f"media-api: HTTP {answer.status}"
            transitions.append(
                failure_transition(claim, held, invocation, error, settings.loop.max_attempts)
            )
    world.store.apply(transitions)
    return len(claims)
