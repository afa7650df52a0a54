"""A whole pass under one injected fault, in memory: the world the fault table runs in.

Runs the real flows (batch-index, batch-check) with the real pace, through the
real adapters for the image-projection invoke (LambdaProjector), the projection
(GridProjector, OutcomeProjector) and thrall's stream (kinesis.Publisher), and
media-api's lookup as the batch-check handler builds it. Each adapter talks to
an in-memory client here — the Grid, the Lambda service, Kinesis — and the
state table is the in-memory store (atomic conditional writes). Faults are
hooks on those clients, on the store, on one invocation's life, and on the
operator. Time is compressed: it moves when something sleeps (a projection's
latency, a backoff, an idle poll), and a minute passes between schedule ticks.

Example::

    world = World(ids=300)
    world.grid.faults.append(lambda endpoint, image_id, n: ...)
    report = world.run_pass()
    assert not report.lost and not report.double_published
"""

from __future__ import annotations

import gzip
import io
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from devtools.testing import FakeClock, grid_id
from grid_reingest import names
from grid_reingest.adapters.api_key import with_fresh_key
from grid_reingest.adapters.grid import DATA_CALLS, GridResponse
from grid_reingest.adapters.grid_projector import GridProjector, OutcomeProjector, to_outcome
from grid_reingest.adapters.kinesis import Publisher
from grid_reingest.adapters.lambda_projector import LambdaProjector
from grid_reingest.domain.claims import Transition
from grid_reingest.domain.control import Knobs
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.domain.outcome import Failed, to_json
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import REFUSED_STATUSES
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.flows.batch_index import IndexDeps, run_batch_index
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.flows.probes import LookupProbe, ProjectionProbe
from grid_reingest.flows.summary import Summary
from grid_reingest.handlers.batch_check import media_api_lookup
from grid_reingest.ports import PartialApply, PublishResult
from grid_reingest.settings import BatchCheckSettings, BatchIndexSettings, load
from infra import constants as c

# Where a pass leaves an image for good; anything else at the end of a pass is lost.
FINAL = frozenset(
    {
        ProgressState.NOT_FOUND,
        ProgressState.KNOWN_ERROR,
        ProgressState.VERIFIED,
        ProgressState.NOT_FOUND_IN_MEDIA_API,
        ProgressState.UNKNOWN_ERROR,
        ProgressState.TOO_BIG,
    }
)
# A Lambda invocation's budget (the workers' timeout).
BUDGET_MS = 15 * 60 * 1000
# Virtual seconds one projection takes (image-loader and the data services).
PROJECTION_SECONDS = 0.2
LOOKUP_SECONDS = 0.05
# The schedule's keep-alive: one tick a minute.
TICK_SECONDS = 60.0
# thrall's lag the check waits out before the operator switches batch-check on.
CHECK_AFTER_SECONDS = 600.0
# A pass that has not ended after this many ticks is stalled.
MAX_TICKS = 240
# The alarms' period (infra/constants.py).
PERIOD_SECONDS = c.METRIC_PERIOD_MINUTES * 60
# The unknown-failure alarm's share, as the PROD stage sets it in cdk.json.
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
STREAM = "thrall-TEST"
PROJECTION_FUNCTION = "image-projection-TEST"


def client_error(code: str, status: int, operation: str, message: str = "") -> ClientError:
    """A botocore ClientError as AWS raises it."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message or code},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class WorkerDied(Exception):
    """The invocation's process is gone: nothing it does reaches anything any more."""


# (endpoint, image id, how many times this endpoint was asked about this id, 1-based)
GridFault = Callable[[str, str, int], GridResponse | None]


class MemoryGrid:
    """The Grid's services in memory, answering as GridClient does (GridResponse).

    Endpoints are grid_server's names: projection, leases, collections, edits,
    syndication, usages, crops, soft_delete, image. media-api's image answers
    200 once thrall has indexed the image (`indexed`), and 401 to a key other
    than `valid_key`.
    """

    def __init__(self, indexed: Callable[[str], bool], valid_key: str = "key-1") -> None:
        self.indexed = indexed
        self.valid_key = valid_key
        self.faults: list[GridFault] = []
        self.images: dict[str, dict[str, Any]] = {}  # answers other than the usual image
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def client(self, key: str) -> MemoryGridClient:
        """A client calling with `key`."""
        return MemoryGridClient(self, key)

    def answer(self, endpoint: str, service: str, image_id: str, key: str) -> GridResponse:
        with self._lock:
            self.calls[(endpoint, image_id)] += 1
            n = self.calls[(endpoint, image_id)]
        if key != self.valid_key:
            return GridResponse(service, 401, message="Unauthorized", text="Unauthorized")
        for fault in self.faults:
            answer = fault(endpoint, image_id, n)
            if answer is not None:
                return answer
        if endpoint == "projection":
            return GridResponse(service, 200, body=self.images.get(image_id) or image(image_id))
        if endpoint == "image":
            return GridResponse(service, 200 if self.indexed(image_id) else 404)
        if endpoint == "health":
            return GridResponse(service, 200)
        return GridResponse(service, 404)  # a data service with nothing on this image


class MemoryGridClient:
    """What GridProjector and media_api_lookup call (GridClient's interface)."""

    def __init__(self, grid: MemoryGrid, key: str) -> None:
        self.grid = grid
        self.key = key

    def with_key(self, api_key: str) -> MemoryGridClient:
        return MemoryGridClient(self.grid, api_key)

    def projection(self, image_id: str) -> GridResponse:
        return self.grid.answer("projection", "image-loader", image_id, self.key)

    def data(self, call: str, image_id: str) -> GridResponse:
        return self.grid.answer(call, DATA_CALLS[call][0], image_id, self.key)

    def image(self, image_id: str) -> GridResponse:
        return self.grid.answer("image", "media-api", image_id, self.key)

    def health(self, service: str) -> bool | None:
        """A service's health route: the endpoint `health`, the service as its "image id"."""
        status = self.grid.answer("health", service, service, self.key).status
        return status == 200 if status is None or status == 200 or status >= 500 else None


def image(image_id: str, **extra: Any) -> dict[str, Any]:
    """A Grid image as image-loader projects it (fields no reingestion code knows included)."""
    return {
        "id": image_id,
        "uploadTime": "2024-05-01T10:00:00.000Z",
        "uploadedBy": "someone@example.org",
        "metadata": {"description": f"image {image_id[-6:]}"},
        "usageRights": {},
        "fieldAddedLater": {"kept": True},
        **extra,
    }


def huge_image(image_id: str, payload: str) -> dict[str, Any]:
    """An image whose record cannot fit on the stream (its metadata does not compress)."""
    return image(image_id, fileMetadata={"xmp": {"blob": payload}})


# The image-projection invoke's fault: an error to raise for this image, or None.
InvokeFault = Callable[[str], ClientError | None]


class CachedSecret:
    """The API key where a function reads it, through a cache as Powertools' (virtual time)."""

    def __init__(self, secret: dict[str, str], clock: FakeClock) -> None:
        self._secret = secret
        self._clock = clock
        self._read: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def read(self, max_age: int) -> str:
        """The key, from the cache while it is younger than `max_age` seconds."""
        with self._lock:
            if self._read is None or self._clock.t - self._read[0] >= max_age:
                self._read = (self._clock.t, self._secret["key"])
            return self._read[1]


class MemoryLambda:
    """The Lambda service invoking image-projection in memory (the `lambda` client's invoke),
    which projects as its handler does: the key from a cache, read again after a 401."""

    def __init__(self, projector: OutcomeProjector, clock: FakeClock, key: CachedSecret) -> None:
        self.projector = projector
        self.clock = clock
        self.key = key
        self.faults: list[InvokeFault] = []
        self.throttles = 0  # AWS/Lambda Throttles of image-projection
        self._lock = threading.Lock()

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        event = json.loads(Payload)
        image_id = event.get("id", "")
        for fault in self.faults:
            error = fault(image_id)
            if error is not None:
                if error.response["Error"]["Code"] == "TooManyRequestsException":
                    with self._lock:
                        self.throttles += 1
                raise error
        if "health" in event:
            answer = {"health": event["health"], "healthy": self.projector.health(event["health"])}
            return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}
        self.clock.sleep(PROJECTION_SECONDS)
        projection = with_fresh_key(
            lambda key: self.projector.projector.project(image_id, api_key=key),
            lambda answer: isinstance(answer, Failed) and answer.status in REFUSED_STATUSES,
            self.key.read,
        )
        outcome = to_outcome(projection, self.projector.max_message_bytes, self.clock.now)
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(to_json(outcome)).encode())}


# A PutRecords fault: the call's records -> an error to raise, or one error code
# (None: accepted) per record, or None for no fault.
StreamFault = Callable[[list[dict[str, Any]]], ClientError | list[str | None] | None]


class MemoryKinesis:
    """thrall's stream in memory (the `kinesis` client's put_records); thrall reads what it
    accepts at once, decoding each record as thrall does."""

    def __init__(self) -> None:
        self.faults: list[StreamFault] = []
        self.accepted: Counter[str] = Counter()  # records accepted per partition key
        self.mismatched: list[tuple[str, str]] = []  # (partition key, the image id inside)
        self.calls = 0
        self._lock = threading.Lock()

    def put_records(self, Records: list[dict[str, Any]], **target: str) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        codes: list[str | None] = [None] * len(Records)
        for fault in self.faults:
            answer = fault(Records)
            if isinstance(answer, ClientError):
                raise answer
            if answer is not None:
                codes = answer
                break
        entries = []
        for record, code in zip(Records, codes, strict=True):
            if code is not None:
                entries.append({"ErrorCode": code, "ErrorMessage": f"{code} (injected)"})
                continue
            self._consume(record["PartitionKey"], record["Data"])
            entries.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum(c is not None for c in codes), "Records": entries}

    def _consume(self, key: str, data: bytes) -> None:
        body = gzip.decompress(data[1:]) if data[:1] == b"\x00" else data
        inside = json.loads(body)["image"]["id"]
        with self._lock:
            self.accepted[key] += 1
            if inside != key:
                self.mismatched.append((key, inside))

    def indexed(self, image_id: str) -> bool:
        with self._lock:
            return self.accepted[image_id] > 0


# A fault on the store's writes: the transitions of one apply() -> fail it (True) or not.
WriteFault = Callable[[list[Transition]], bool]


class FaultyStore(MemoryStore):
    """The in-memory store whose apply() can fail as DynamoDB's does: some writes done, the
    rest failed (PartialApply), while a fault says so."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__(clock=clock)
        self.write_faults: list[WriteFault] = []
        self.failed_applies = 0

    def apply(self, transitions: Iterable[Transition]) -> list[bool]:
        transitions = list(transitions)
        if any(fault(transitions) for fault in self.write_faults):
            self.failed_applies += 1
            half = len(transitions) // 2
            done: list[bool | None] = list(super().apply(transitions[:half]))
            error = OSError("ProvisionedThroughputExceededException (injected)")
            raise PartialApply(done + [None] * (len(transitions) - half), error)
        return super().apply(transitions)


class Life:
    """One invocation's process: once dead, every port it holds raises WorkerDied.

    `die_at_projection`: it dies as its n-th projection starts (out of memory, a timeout);
    `die_after_accepted_call`: it dies just after the stream accepted its n-th call, before
    writing those images' state.
    """

    def __init__(
        self, die_at_projection: int | None = None, die_after_accepted_call: int | None = None
    ) -> None:
        self.die_at_projection = die_at_projection
        self.die_after_accepted_call = die_after_accepted_call
        self.dead = False
        self.projections = 0
        self.accepted_calls = 0
        self.accepted: list[str] = []  # ids whose records this invocation got accepted
        self._lock = threading.Lock()

    def check(self) -> None:
        if self.dead:
            raise WorkerDied("the invocation's process is gone")


class MortalStore:
    """The store as one invocation reaches it."""

    def __init__(self, store: MemoryStore, life: Life) -> None:
        self._store = store
        self._life = life

    def claim(self, sources, to_state, limit, invocation):
        self._life.check()
        return self._store.claim(sources, to_state, limit, invocation)

    def claim_stream(self, sources, to_state, limit, invocation, stop=lambda: False):
        self._life.check()
        return self._store.claim_stream(sources, to_state, limit, invocation, stop)

    def apply(self, transitions):
        self._life.check()
        return self._store.apply(transitions)

    def has_any(self, states):
        self._life.check()
        return self._store.has_any(states)

    def sample(self, states):
        self._life.check()
        return self._store.sample(states)

    def oldest_change(self, state):
        self._life.check()
        return self._store.oldest_change(state)


class MortalPublisher:
    """The stream as one invocation reaches it; notes what it got accepted."""

    def __init__(self, publisher: Publisher, life: Life) -> None:
        self._publisher = publisher
        self._life = life

    def publish(self, records: list[tuple[str, bytes]]) -> PublishResult:
        self._life.check()
        result = self._publisher.publish(records)
        life = self._life
        with life._lock:
            life.accepted += result.accepted
            if result.accepted:
                life.accepted_calls += 1
                if life.accepted_calls == life.die_after_accepted_call:
                    life.dead = True
        return result


class MortalProjector:
    """The projector as one invocation reaches it; `started` runs as each projection starts."""

    def __init__(
        self, projector: LambdaProjector, life: Life, started: Callable[[], None] = lambda: None
    ) -> None:
        self._projector = projector
        self._life = life
        self._started = started

    def project(self, image_id: str):
        self._started()
        life = self._life
        with life._lock:
            life.check()
            life.projections += 1
            if life.projections == life.die_at_projection:
                life.dead = True
        life.check()
        return self._projector.project(image_id)

    def health(self, service: str) -> bool | None:
        self._life.check()
        return self._projector.health(service)


class Rule:
    """A worker's schedule rule in memory."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.switches: list[str] = []

    def disable(self) -> bool:
        was, self.enabled = self.enabled, False
        self.switches.append("off")
        return was

    def enable(self) -> bool:
        was, self.enabled = self.enabled, True
        self.switches.append("on")
        return not was


@dataclass
class Invocation:
    """What the world noted about one invocation."""

    service: str
    id: str  # the invocation's id: what its claims are held by
    tick: int
    period: int
    summary: Summary | None
    error: str | None
    accepted_unrecorded: list[str] = field(default_factory=list)


@dataclass
class PassReport:
    """What a whole pass came to."""

    images: int
    states: dict[int, int]  # final items per state (non-zero only)
    published: int  # images with at least one record accepted by the stream
    records: int  # records accepted in all
    double_published: dict[str, int]  # image id -> records accepted, where more than one
    accepted_unrecorded: set[str]  # accepted, then the invocation failed before recording
    lost: list[str]  # not in a final state at the end of the pass
    mismatched: list[tuple[str, str]]  # records whose image is not their partition key
    metrics: dict[str, float]  # our metrics, summed over every invocation (non-zero only)
    errors: dict[str, int]  # failed invocations per function (AWS/Lambda Errors)
    alarms: list[str]  # the alarms that would have gone off
    attempts_charged: int  # attempts counted on images, in all
    ticks: int
    finished: bool  # both workers found nothing left and switched their rules off
    operator: list[str]  # what the operator did, and what the commands answered
    seconds: float = 0.0  # virtual seconds the pass took

    @property
    def undocumented_doubles(self) -> list[str]:
        """Images published twice though no invocation failed between acceptance and record."""
        return sorted(set(self.double_published) - self.accepted_unrecorded)


class World:
    """One pass: the table, the Grid, the Lambda service, the stream, the rules, the operator."""

    def __init__(self, ids: int = 300, *, overlap: int = 1, max_in_flight: int = 32) -> None:
        self.clock = FakeClock()
        self.store = FaultyStore(self.clock.now)
        self.ids = [grid_id(n) for n in range(1, ids + 1)]
        self.kinesis = MemoryKinesis()
        self.grid = MemoryGrid(self.kinesis.indexed)
        self.secret = {"key": self.grid.valid_key}  # the API key where the workers read it
        self.grid_projector = GridProjector(self.grid.client(self.secret["key"]), images_at_once=32)  # type: ignore[arg-type]
        self.index_settings = load(
            BatchIndexSettings,
            {
                "STATE_TABLE_NAME": "state-TEST",
                "THRALL_STREAM_NAME": STREAM,
                "PROJECTION_FUNCTION_NAME": PROJECTION_FUNCTION,
                "MAX_IN_FLIGHT": str(max_in_flight),
            },
        )
        self.check_settings = load(
            BatchCheckSettings,
            {
                "STATE_TABLE_NAME": "state-TEST",
                "GRID_DOMAIN_ROOT": "media.example.org",
                "GRID_API_KEY": "unused",
            },
        )
        self.lam = MemoryLambda(
            OutcomeProjector(
                self.grid_projector, self.index_settings.max_message_bytes, self.clock.now
            ),
            self.clock,
            CachedSecret(self.secret, self.clock),
        )
        self.control = MemoryControl()
        self.index_rule = Rule()
        self.check_rule = Rule()
        self.overlap = overlap
        self.tick = 0
        self.phase = "index"
        self.invocations: list[Invocation] = []
        self.operator_log: list[str] = []
        self.exit_codes: list[int] = []  # the operator's commands' exit codes
        # Called at the start of each tick (the operator's actions, faults that come and go).
        self.on_tick: list[Callable[[World], None]] = []
        # Called as each projection starts, with how many had started in the pass.
        self.on_projection: list[Callable[[World, int], None]] = []
        self.lives: dict[int, Life] = {}  # the n-th batch-index invocation's (1-based) fate
        # thrall's signals as batch-index reads them: CloudWatch's iterator age (thrall keeps
        # up: low and flat) and, when set, its lease table's checkpoints (None: not read).
        self.iterator_age: Callable[[], tuple[float, float | None] | None] = lambda: (
            1_000.0,
            1_000.0,
        )
        self.checkpoints: Callable[[], dict[str, int]] | None = None
        self._projections = 0
        self._lock = threading.Lock()
        self._count = Counter[str]()

    def store_ids(self) -> list[str]:
        """Every id in the table (the pass's and any uploaded during it)."""
        return list(self.store._items)

    # -- the operator -----------------------------------------------------------------

    def note(self, line: str) -> None:
        """What the operator did or saw."""
        self.operator_log.append(f"tick {self.tick}: {line}")

    def pause(self, paused: bool) -> None:
        """`reingest pause` / `reingest resume`: the control item's knob."""
        self.control.set_knobs(Knobs(paused=paused))
        self.note("pause" if paused else "resume")

    # -- one invocation ---------------------------------------------------------------

    def _pace(self, max_in_flight: int) -> ControlledPace:
        controller = Controller(Tuning(max_limit=max_in_flight, max_iterator_age_ms=60_000))
        return ControlledPace(
            controller,
            self.control,
            self.iterator_age,
            self.clock,
            refresh_seconds=self.index_settings.loop.refresh_seconds,
            checkpoints=self.checkpoints,
        )

    def _remaining(self) -> Callable[[], int]:
        t0 = self.clock.t
        return lambda: int(BUDGET_MS - (self.clock.t - t0) * 1000)

    def _projected(self) -> None:
        with self._lock:
            self._projections += 1
            n = self._projections
        for hook in self.on_projection:
            hook(self, n)

    def invoke_index(self) -> Invocation:
        """One batch-index invocation, as its handler composes it."""
        with self._lock:
            self._count[names.BATCH_INDEX] += 1
            n = self._count[names.BATCH_INDEX]
        life = self.lives.get(n) or Life()
        invocation_id = f"batch-index-{n}"
        publisher = Publisher(self.kinesis, STREAM, sleep=self.clock.sleep)
        projector = MortalProjector(
            LambdaProjector(self.lam, PROJECTION_FUNCTION), life, self._projected
        )
        deps = IndexDeps(
            store=MortalStore(self.store, life),  # type: ignore[arg-type]
            projector=projector,
            publisher=MortalPublisher(publisher, life),
            pace=self._pace(self.index_settings.max_in_flight),
            clock=self.clock,
            remaining_ms=self._remaining(),
            invocation=invocation_id,
            rule=self.index_rule,
            control=self.control,
            probe=ProjectionProbe(projector),
        )
        invocation = self._run(
            names.BATCH_INDEX, invocation_id, lambda: run_batch_index(self.index_settings, deps)
        )
        if invocation.error is not None:
            invocation.accepted_unrecorded = [
                i
                for i in life.accepted
                if (item := self.store.get(i)) is not None
                and item.state == ProgressState.IN_PROGRESS
                and item.claimed_by == invocation_id
            ]
        return invocation

    def invoke_check(self) -> Invocation:
        """One batch-check invocation, as its handler composes it (the key read on each)."""
        with self._lock:
            self._count[names.BATCH_CHECK] += 1
            n = self._count[names.BATCH_CHECK]
        invocation_id = f"batch-check-{n}"
        grid = self.grid.client("")
        lookup = media_api_lookup(grid, CachedSecret(self.secret, self.clock).read)  # type: ignore[arg-type]

        def timed(image_id: str):
            self.clock.sleep(LOOKUP_SECONDS)
            return lookup(image_id)

        deps = CheckDeps(
            store=self.store,
            lookup=timed,
            pace=self._pace(self.check_settings.max_in_flight),
            clock=self.clock,
            remaining_ms=self._remaining(),
            invocation=invocation_id,
            rule=self.check_rule,
            probe=LookupProbe(timed, lambda: grid.health("media-api")),
        )
        return self._run(
            names.BATCH_CHECK, invocation_id, lambda: run_batch_check(self.check_settings, deps)
        )

    def _run(self, service: str, invocation_id: str, run: Callable[[], Summary]) -> Invocation:
        error: str | None = None
        try:
            summary: Summary | None = run()
        except Exception as failure:  # the invocation fails: Lambda counts an error
            summary = getattr(failure, "summary", None)
            error = f"{type(failure).__name__}: {failure}"
        invocation = Invocation(
            service, invocation_id, self.tick, int(self.clock.t // PERIOD_SECONDS), summary, error
        )
        with self._lock:
            self.invocations.append(invocation)
        return invocation

    def _invoke_many(self, invoke: Callable[[], Invocation]) -> None:
        if self.overlap == 1:
            invoke()
            return
        start = threading.Barrier(self.overlap)

        def overlapping() -> None:
            start.wait()
            invoke()

        threads = [threading.Thread(target=overlapping) for _ in range(self.overlap)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- the pass ---------------------------------------------------------------------

    def run_pass(self) -> PassReport:
        """Upload, start batch-index, tick until it switches itself off; then batch-check the
        same way. The report says where every image ended and what the operator saw."""
        try:
            self.store.put_new(self.ids)
            self.index_rule.enable()
            ticks_on: dict[str, set[int]] = defaultdict(set)
            while self.tick < MAX_TICKS:
                for hook in self.on_tick:
                    hook(self)
                if self.phase == "index" and not self.index_rule.enabled:
                    self.phase = "check"
                    self.clock.advance_to(self.clock.t + CHECK_AFTER_SECONDS)
                    self.check_rule.enable()
                    self.note("batch-index switched its rule off: switch batch-check on")
                rule = self.index_rule if self.phase == "index" else self.check_rule
                if not rule.enabled:
                    break
                service = names.BATCH_INDEX if self.phase == "index" else names.BATCH_CHECK
                ticks_on[service].add(int(self.clock.t // PERIOD_SECONDS))
                self._invoke_many(self.invoke_index if self.phase == "index" else self.invoke_check)
                self.tick += 1
                self.clock.advance_to((self.clock.t // TICK_SECONDS + 1) * TICK_SECONDS)
            return self._report(ticks_on)
        finally:
            self.grid_projector.close()

    def _report(self, ticks_on: dict[str, set[int]]) -> PassReport:
        counts = self.store.counts()
        items = [self.store.get(i) for i in self.store_ids()]
        lost = [item.id for item in items if item is not None and item.state not in FINAL]
        accepted = self.kinesis.accepted
        unrecorded = {i for inv in self.invocations for i in inv.accepted_unrecorded}
        metrics: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for inv in self.invocations:
            if inv.error is not None:
                errors[inv.service] += 1
            if inv.summary is not None:
                for name, value in inv.summary.metric_counts().items():
                    if name not in (names.CONTROL_LIMIT, names.CONTROL_RATE):
                        metrics[f"{inv.service} {name}"] += value
        if self.lam.throttles:
            metrics[f"{names.IMAGE_PROJECTION} Throttles (AWS/Lambda)"] += self.lam.throttles
        return PassReport(
            images=len(items),
            states={int(s): n for s, n in counts.items() if n},
            published=len(accepted),
            records=sum(accepted.values()),
            double_published={i: n for i, n in accepted.items() if n > 1},
            accepted_unrecorded=unrecorded,
            lost=lost,
            mismatched=list(self.kinesis.mismatched),
            metrics={k: v for k, v in sorted(metrics.items()) if v},
            errors=dict(errors),
            alarms=self._alarms(ticks_on),
            attempts_charged=sum(item.attempts for item in items if item is not None),
            ticks=self.tick,
            finished=not self.index_rule.enabled
            and not self.check_rule.enabled
            and self.tick < MAX_TICKS,
            operator=list(self.operator_log),
            seconds=self.clock.t,
        )

    def _alarms(self, ticks_on: dict[str, set[int]]) -> list[str]:
        """The stack's alarms (infra/constructs/monitoring.py) over this pass's metrics, by
        five-minute period."""
        by_period: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
        for inv in self.invocations:
            period = by_period[(inv.service, inv.period)]
            period["Errors"] += int(inv.error is not None)
            if inv.summary is not None:
                for name, value in inv.summary.metric_counts().items():
                    period[name] += value
        alarms: set[str] = set()
        # A metric's alarm: its name part and how much of it in a period sets it off.
        thresholds = {
            names.KINESIS_REFUSED: ("kinesis-refused", c.SAFETY_ALARM_THRESHOLD),
            names.LOST_CLAIMS: ("lost-claims", c.SAFETY_ALARM_THRESHOLD),
            names.EXPIRED_CLAIMS: ("expired-claims", c.SAFETY_ALARM_THRESHOLD),
            names.SYSTEMIC_FAILURES: ("systemic-failures", c.SAFETY_ALARM_THRESHOLD),
            names.CHECKPOINTS_UNREAD: ("checkpoints-unread", c.UNREAD_ALARM_STEPS),
            names.ITERATOR_AGE_UNREAD: ("iterator-age-unread", c.UNREAD_ALARM_STEPS),
        }
        share = unknown_failure_alarm_share()
        for service in (names.BATCH_INDEX, names.BATCH_CHECK):
            periods = sorted(p for s, p in by_period if s == service)
            failing = stalled = 0
            for p in range(min(periods, default=0), max(periods, default=-1) + 1):
                seen = by_period.get((service, p), Counter())
                if seen["Errors"] >= c.ERROR_ALARM_THRESHOLD:
                    alarms.add(f"{service}-errors")
                for name, (part, threshold) in thresholds.items():
                    if seen[name] >= threshold:
                        alarms.add(f"{service}-{part}")
                claimed = seen[names.CLAIMED]
                failing = failing + 1 if claimed and seen[names.FAILED] / claimed > share else 0
                if failing >= c.FAILURE_ALARM_PERIODS:
                    alarms.add(f"{service}-unknown-failures")
                moving = claimed + seen[names.COMPLETED] + seen[names.PAUSED]
                stalled = stalled + 1 if p in ticks_on[service] and not moving else 0
                if stalled >= c.STALL_ALARM_PERIODS:
                    alarms.add(f"{service}-stalled")
        if self.lam.throttles:
            alarms.add(f"{names.IMAGE_PROJECTION}-throttles")
        return sorted(alarms)


def unknown_failure_alarm_share(stage: str = "PROD") -> float:
    """The unknown-failure alarm's share as cdk.json sets it for `stage`."""
    stages = json.loads(CDK_JSON.read_text())["context"][c.STAGES_CONTEXT_KEY]
    return float(stages[stage]["unknownFailureAlarmShare"])
