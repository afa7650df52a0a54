"""Overload answers, and when overload is the system's fault rather than one image's."""

from grid_reingest.domain.backpressure import WINDOW, OverloadWindow, is_overload
from grid_reingest.domain.outcome import Failed, NotFound


def test_overload_answers_are_429_and_gateway_errors():
    assert is_overload(Failed("a", "image-loader", 503, "Service Unavailable"))
    assert is_overload(Failed("a", "leases", 429, "Too Many Requests"))
    assert not is_overload(Failed("a", "cropper", 500, "crash"))
    assert not is_overload(Failed("a", "image-loader", 503, "x", known=True))
    assert not is_overload(NotFound("a"))


def test_overload_any_5xx_from_the_infrastructure_counts():
    failed = Failed("a", "image-projection", 500, "invoke failed: ServiceException")
    assert is_overload(failed, frozenset({"image-projection"}))
    assert not is_overload(failed)


def test_overload_window_a_lone_early_failure_is_not_systemic():
    window = OverloadWindow()
    window.record(True)
    assert not window.systemic()


def test_overload_window_many_at_once_is_systemic():
    window = OverloadWindow()
    for n in range(WINDOW):
        window.record(n % 2 == 0)
    assert window.systemic()


def test_overload_window_one_failing_among_many_successes_is_not_systemic():
    window = OverloadWindow()
    for n in range(100):
        window.record(n % 25 == 0)
    assert not window.systemic()
