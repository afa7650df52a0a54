"""The one home of test doubles, for tests, the fault world and benchmarks: the id maker, a
compressed clock, a scripted projector and stream, a pace."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.outcome import Outcome, Ready
from grid_reingest.domain.thrall_message import encode_message
from grid_reingest.flows.batch_index import IndexDeps
from grid_reingest.ports import Observation, PaceDecision, PublishResult
from grid_reingest.settings import BatchCheckSettings, load

BUDGET_MS = 15 * 60 * 1000


def grid_id(n: int) -> str:
    """The n-th test image's id: 40 lower-case hex characters, as the Grid's are."""
    return f"{n:040x}"


class FakeClock:
    """The Clock port on compressed time: it moves only when someone sleeps (thread-safe)."""

    def __init__(self, start: datetime | None = None, *, tick_ms: int = 1) -> None:
        self.start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.t = 0.0
        self.ticks = 0
        # Each reading `tick_ms` later: writes keep their order, as on a real clock
        # (0: readings between sleeps are one instant).
        self.tick_ms = tick_ms
        self.lock = threading.Lock()

    def now(self) -> datetime:
        with self.lock:
            self.ticks += self.tick_ms
            return self.start + timedelta(seconds=self.t, milliseconds=self.ticks)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.t += max(0.0, seconds)

    def advance_to(self, t: float) -> None:
        """Move on to `t` (never back)."""
        with self.lock:
            self.t = max(self.t, t)

    def remaining(self, budget_ms: int = BUDGET_MS) -> Callable[[], int]:
        return lambda: int(budget_ms - self.t * 1000)


def ready(image_id: str) -> Ready:
    image = {"id": image_id, "uploadedBy": "someone@example.org", "extraField": {"kept": True}}
    return Ready(image_id, encode_message(image, utc_now()), 60)


class Scripted:
    """A projector answering from a script (default: ready), counting its calls."""

    def __init__(self, script=None, gate=None) -> None:
        self.script: dict[str, Outcome | Callable[[], Outcome]] = script or {}
        self.calls: Counter[str] = Counter()
        self.gate = gate
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def project(self, image_id: str) -> Outcome:
        with self.lock:
            self.calls[image_id] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                self.gate(image_id)
            answer = self.script.get(image_id)
            if callable(answer):
                answer = answer()
            return answer or ready(image_id)
        finally:
            with self.lock:
                self.in_flight -= 1


# The one shard of the in-memory stream; a record's sequence number is its place in it.
SHARD = "shardId-000000000000"


class Stream:
    """thrall's stream in memory; `answer` may turn a call into any PublishResult."""

    def __init__(self, answer=None) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.answer = answer
        self.lock = threading.Lock()
        self.calls = 0

    def publish(self, records):
        with self.lock:
            self.calls += 1
            if self.answer is not None:
                result = self.answer(records)
                if result is not None:
                    accepted = set(result.accepted)
                    self.records += [r for r in records if r[0] in accepted]
                    return result
            first = len(self.records) + 1
            self.records += list(records)
            return PublishResult(
                accepted=[i for i, _ in records],
                calls=1,
                positions=[(SHARD, first + k) for k in range(len(records))],
            )

    def counts(self) -> Counter[str]:
        return Counter(key for key, _ in self.records)


class Steady:
    """A pace that allows `limit` in flight, or whatever `script(n)` says at its n-th call."""

    def __init__(self, limit: int = 8, script=None) -> None:
        self.limit = limit
        self.script = script
        self.calls = 0
        self.seen = Observation()
        self.lock = threading.Lock()
        self.left = False
        self.held: list[int] = []  # what each leave() said was still in flight

    def leave(self, holding: int = 0) -> None:
        self.left = True
        self.held.append(holding)

    def take_unread(self) -> dict[str, int]:
        return {}

    def decide(self, observation: Observation) -> PaceDecision:
        with self.lock:
            self.calls += 1
            self.seen.finished += observation.finished
            self.seen.overloaded += observation.overloaded
            self.seen.latencies_ms += observation.latencies_ms
            self.seen.published += observation.published
            if self.script is not None:
                return self.script(self.calls)
            return PaceDecision(self.limit, None, "steady")


class Rule:
    """A schedule rule in memory; `on_disable` runs just after it is switched off."""

    def __init__(self, on_disable=None) -> None:
        self.enabled = True
        self.on_disable = on_disable
        self.switches: list[str] = []

    def disable(self) -> bool:
        was, self.enabled = self.enabled, False
        self.switches.append("off")
        if self.on_disable is not None:
            self.on_disable()
        return was

    def enable(self) -> bool:
        was, self.enabled = self.enabled, True
        self.switches.append("on")
        return not was


def index_deps(
    store: MemoryStore,
    projector,
    stream,
    *,
    clock=None,
    pace=None,
    rule=None,
    control=None,
    remaining=None,
    invocation="invocation-1",
    probe=None,
) -> IndexDeps:
    clock = clock or FakeClock()
    return IndexDeps(
        store=store,
        projector=projector,
        publisher=stream,
        pace=pace or Steady(),
        clock=clock,
        remaining_ms=remaining or clock.remaining(),
        invocation=invocation,
        rule=rule,
        control=control if control is not None else MemoryControl(),
        probe=probe,
    )


def check_settings(**env: str) -> BatchCheckSettings:
    """batch-check's settings for a test: a table, a Grid and a key, and `env` over them."""
    base = {
        "STATE_TABLE_NAME": "state-TEST",
        "GRID_DOMAIN_ROOT": "media.example.org",
        "GRID_API_KEY": "key",
    }
    return load(BatchCheckSettings, base | env)
