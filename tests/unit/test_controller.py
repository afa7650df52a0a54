"""The pace controller as pure code: speeds up with headroom, backs off, obeys the knobs."""

from datetime import UTC, datetime, timedelta

from grid_reingest.domain.control import Knobs
from grid_reingest.domain.controller import Controller, Signals, Tuning

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TUNING = Tuning(max_limit=32, max_iterator_age_ms=60_000)


def signals(age=1_000.0, previous=1_000.0, finished=20, overloaded=0, latency=300.0, n=0):
    return Signals(T0 + timedelta(seconds=15 * n), age, previous, finished, overloaded, (latency,))


def run(controller, steps, state=None, knobs=None, **kw):
    knobs = knobs or Knobs()
    for n in range(steps):
        state = controller.step(state, signals(n=n, **kw), knobs)
    return state


def test_controller_raises_the_limit_while_everything_has_headroom():
    state = run(Controller(TUNING), 10)
    assert state.limit == TUNING.start_limit + 10
    assert "headroom" in state.reason


def test_controller_never_exceeds_the_deployed_ceiling_or_the_operator_knob():
    controller = Controller(TUNING)
    assert run(controller, 100).limit == 32
    capped = run(controller, 100, knobs=Knobs(max_in_flight=5, max_rate_per_minute=90))
    assert capped.limit == 5
    assert capped.rate_per_minute == 90


def test_controller_cuts_the_limit_on_overload_answers():
    controller = Controller(TUNING)
    state = run(controller, 20)
    cut = controller.step(state, signals(overloaded=5), Knobs())
    assert cut.limit < state.limit
    assert "overload" in cut.reason


def test_controller_cuts_the_limit_when_latency_doubles_its_baseline():
    controller = Controller(TUNING)
    state = run(controller, 20)
    cut = controller.step(state, signals(latency=900.0), Knobs())
    assert cut.limit < state.limit
    assert "latency" in cut.reason
    # and the congested latency does not drag the baseline up
    assert cut.memory["latency_baseline_ms"] == state.memory["latency_baseline_ms"]


def test_controller_stops_taking_work_above_the_threshold_or_without_data():
    controller = Controller(TUNING)
    state = run(controller, 5)
    over = controller.step(state, signals(age=95_000), Knobs())
    assert over.limit == 0
    assert over.reason == "back-pressure: iterator age 95 s > 60 s"
    blind = controller.step(state, signals(age=None, previous=None), Knobs())
    assert blind.limit == 0
    assert "no iterator-age data" in blind.reason


def test_controller_backs_off_when_lag_rises_and_holds_when_it_falls():
    controller = Controller(TUNING)
    state = run(controller, 10)
    rising = controller.step(state, signals(age=40_000, previous=30_000), Knobs())
    assert rising.limit < state.limit
    falling = controller.step(rising, signals(age=35_000, previous=40_000), Knobs())
    assert falling.limit == rising.limit


def test_controller_recovers_after_an_overload_passes():
    controller = Controller(TUNING)
    state = run(controller, 30)
    state = controller.step(state, signals(overloaded=20), Knobs())
    low = state.limit
    state = run(controller, 10, state=state)
    assert state.limit > low


def test_controller_keeps_a_short_history_of_its_decisions():
    state = run(Controller(TUNING), 25)
    assert len(state.history) == 10
    assert state.history[-1].endswith(state.reason)


def test_controller_state_from_a_paused_pass_is_kept_not_reset():
    controller = Controller(TUNING)
    state = run(controller, 10)
    paused = controller.step(state, signals(), Knobs(paused=True))
    assert paused.limit == state.limit
    assert paused.reason == "paused by the operator"
