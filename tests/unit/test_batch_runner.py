"""The breaker over finished images."""

from grid_reingest.domain.runner import Breaker


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
