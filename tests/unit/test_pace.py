"""The pace a worker gets: the controller stepped at most every refresh, its state shared."""

from datetime import UTC, datetime

from devtools.memory_control import MemoryControl
from grid_reingest.domain.control import Knobs
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.ports import Observation


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self):
        return datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


def pace(control, clock, age=(1_000.0, 1_000.0)):
    controller = Controller(Tuning(max_limit=16, max_iterator_age_ms=60_000))
    return ControlledPace(controller, control, lambda: age, clock, refresh_seconds=15)


def test_pace_steps_the_controller_only_once_per_refresh():
    control, clock = MemoryControl(), FakeClock()
    worker = pace(control, clock)
    first = worker.decide(Observation(finished=200, latencies_ms=[300.0]))
    again = worker.decide(Observation(finished=200, latencies_ms=[300.0]))
    assert again == first
    assert control.read().version == 1
    clock.sleep(15)
    later = worker.decide(Observation())
    assert later.in_flight == first.in_flight + 1
    assert control.read().version == 2


def test_pace_two_workers_share_one_controller_state():
    control, clock = MemoryControl(), FakeClock()
    a, b = pace(control, clock), pace(control, clock)
    a.decide(Observation(finished=200, latencies_ms=[300.0]))
    clock.sleep(15)
    decision = b.decide(Observation(finished=200, latencies_ms=[300.0]))
    # b stepped from a's saved state (3), not from a fresh start (which gives 3 too)
    assert decision.in_flight == 4
    assert control.read().version == 2


def test_pace_a_pause_reaches_a_running_worker_within_one_refresh():
    control, clock = MemoryControl(), FakeClock()
    worker = pace(control, clock)
    assert not worker.decide(Observation()).paused
    control.set_knobs(Knobs(paused=True))
    clock.sleep(15)
    decision = worker.decide(Observation())
    assert decision.paused
    assert decision.in_flight == 0
    assert decision.reason == "paused by the operator"


def test_pace_takes_nothing_without_iterator_age_data():
    decision = pace(MemoryControl(), FakeClock(), age=None).decide(Observation())
    assert decision.in_flight == 0
    assert "no iterator-age data" in decision.reason
