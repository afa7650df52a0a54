"""Bounded concurrency, the breaker and the stop signal."""

import threading
import time

from grid_reingest.domain.claims import Claim
from grid_reingest.domain.runner import Breaker, Run, run_bounded
from grid_reingest.domain.states import ProgressState


def claims(n):
    return [Claim(f"{i:040x}", 0, ProgressState.NOT_STARTED) for i in range(n)]


def test_breaker_waits_for_enough_results_then_trips_on_one_reason():
    breaker = Breaker(share=0.5, min_results=4)
    assert not breaker.record("loader:502")
    assert not breaker.record("loader:502")
    assert not breaker.record(None)
    assert breaker.record("loader:502")
    assert breaker.tripped_by == "loader:502"


def test_breaker_does_not_add_up_different_reasons():
    breaker = Breaker(share=0.5, min_results=4)
    for reason in ("leases:500", "usage:500", "cropper:500", None, None):
        breaker.record(reason)
    assert breaker.tripped_by is None


def test_run_bounded_never_exceeds_its_concurrency():
    active, peak, lock = [0], [0], threading.Lock()

    def work(image_id):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return image_id

    run = Run()
    results = list(run_bounded(claims(30), work, 4, lambda: None, run))
    assert len(results) == 30
    assert peak[0] == 4
    assert all(claim.id == result for claim, result in results)


def test_run_bounded_stops_starting_work_when_told():
    started = []
    run = Run()
    signals = iter([None, None, None] + ["time is short"] * 100)
    results = list(run_bounded(claims(10), started.append, 1, lambda: next(signals), run))
    assert len(results) == 3
    assert run.stopped_because == "time is short"
    assert [c.id for c in run.not_started] == [c.id for c in claims(10)[3:]]
