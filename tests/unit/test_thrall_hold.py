"""The thrall loop on checkpoints after a cut: the hold keeps readings of the flood the cut
answered from cutting again, but does not hide an age climbing past what the cut foresaw
(thrall slowing again) beyond the high mark; the climb after it quickens while thrall
keeps up."""

import pytest

from grid_reingest.domain.control import Knobs
from grid_reingest.domain.controller import Controller
from grid_reingest.domain.thrall_fresh import View, step_fresh
from grid_reingest.domain.thrall_state import ThrallState

from .test_controller import TUNING, fresh, signals, steady


def cut_under_the_high_mark(controller):
    """A worker publishing 400 a minute, cut at the low mark (15 s behind, rising): held."""
    state, n = steady(controller, 5, 400)
    state = controller.step(state, fresh(n, 15.0, 5.0, published=100), Knobs())
    assert state.limit > 0 and "holding" in state.reason
    return state, n + 1


def test_an_age_past_what_the_cut_foresaw_within_its_hold_stops_and_cuts_again():
    # Given a cut at the low mark, and its hold (the age foreseen to peak near 19 s)
    controller = Controller(TUNING)
    state, n = cut_under_the_high_mark(controller)
    cut = state.rate_per_minute
    assert 15_000 <= state.thrall.hold_peak_ms < 25_000
    # When, within the hold, the checkpoints show thrall 40 s behind and climbing faster
    # (thrall slowed again)
    state = controller.step(state, fresh(n, 40.0, 15.0, published=85), Knobs())
    # Then nothing starts while thrall works through what waits, and the rate is cut again
    assert state.limit == 0
    assert "nothing new" in state.reason
    assert state.rate_per_minute < cut


def test_after_the_second_cut_the_age_it_foresees_is_held():
    # Given a hold that has stopped and cut again past what the first cut foresaw
    controller = Controller(TUNING)
    state, n = cut_under_the_high_mark(controller)
    state = controller.step(state, fresh(n, 40.0, 15.0, published=85), Knobs())
    stopped = state.rate_per_minute
    # When, after the stop, later readings within the hold show the backlog's age still
    # climbing (the records published before the stop), as the second cut foresaw
    for k in range(1, 5):
        state = controller.step(state, fresh(n + k, 50.0, 30.0), Knobs())
    state = controller.step(state, fresh(n + 5, 55.0, 40.0, published=70), Knobs())
    # Then the rate is not cut again, and the worker goes on at it
    assert state.rate_per_minute == pytest.approx(stopped)
    assert state.limit > 0


@pytest.mark.parametrize(
    ("age", "previous"),
    [(20.0, 12.0), (30.0, 10.0)],  # under the high mark; past it, as the cut foresaw
)
def test_a_rise_the_cut_foresaw_within_its_hold_is_held(age, previous):
    # Given a cut at the low mark, and its hold (the age foreseen to peak near 19 s)
    controller = Controller(TUNING)
    state, n = cut_under_the_high_mark(controller)
    cut = state.rate_per_minute
    # When a later reading within the hold shows the age still rising, within a low
    # mark's worth of that peak
    state = controller.step(state, fresh(n, age, previous, published=85), Knobs())
    # Then the cut stands and nothing stops: the checkpoints have not shown the cut yet
    assert state.rate_per_minute == pytest.approx(cut)
    assert state.limit > 0


def test_a_hold_set_on_cloudwatchs_points_foresees_its_own_peak_not_an_earlier_holds():
    # Given a stop past the high mark on checkpoints (a hold foreseeing a peak past 60 s),
    # long over, and the checkpoints then unread (CloudWatch's points only)
    controller = Controller(TUNING)
    state, n = cut_under_the_high_mark(controller)
    state = controller.step(state, fresh(n, 40.0, 15.0, published=85), Knobs())
    earlier_peak = state.thrall.hold_peak_ms
    assert earlier_peak > 60_000
    for k in range(n + 1, n + 41):
        state = controller.step(state, fresh(k, 0.0, 0.0, published=75), Knobs())
    for k in range(n + 41, n + 50):
        state = controller.step(state, signals(n=k), Knobs())
    n += 50
    # When CloudWatch's points show the age rising past the low mark: a cut, and its hold
    state = controller.step(state, signals(age=20_000, previous=15_000, n=n), Knobs())
    assert "thrall lagging" in state.reason
    assert 20_000 <= state.thrall.hold_peak_ms < earlier_peak
    # Then checkpoints read within that hold, past the high mark and well past what this
    # cut foresaw (though not past the earlier hold's peak), stop the worker
    state = controller.step(state, fresh(n + 1, 50.0, 20.0, published=75), Knobs())
    assert earlier_peak + TUNING.max_iterator_age_ms * TUNING.low_age_share > 50_000
    assert state.limit == 0
    assert "nothing new" in state.reason


def test_the_peak_a_hold_foresaw_is_saved_and_an_older_state_reads_without_it():
    state = ThrallState(hold_until=120.0, hold_peak_ms=15_000.0)
    assert ThrallState.from_json(state.to_json()).hold_peak_ms == 15_000.0
    older = {k: v for k, v in state.to_json().items() if k != "hold_peak_ms"}
    assert ThrallState.from_json(older).hold_peak_ms is None


# -- the climb after a hold, on checkpoints ---------------------------------------------


def climb(state, steps, age_s=1.0):
    """The ceiling after each of `steps` decisions with thrall `age_s` behind, not rising."""
    caps = []
    for k in range(steps):
        view = View(age_s * 1000, age_s * 1000, 5.0, fresh=True)
        step_fresh(view, state, 1_000.0 + 15 * k, TUNING)
        caps.append(state.rate_cap)
    return caps


def ratios(caps, start):
    return [round(b / a - 1, 6) for a, b in zip([start, *caps], caps, strict=False)]


def climbing(cap=100.0):
    """Past thrall's rate as last counted, the pass achieving far more than the ceiling."""
    return ThrallState(rate_cap=cap, thrall_rate=cap, rate_seen=10 * cap)


def test_the_climb_past_thralls_rate_quickens_while_thrall_keeps_up():
    # Given a ceiling at thrall's rate as last counted
    state = climbing()
    # When thrall keeps up, decision after decision
    step, every = TUNING.fresh_rate_step, TUNING.climb_every
    steps = 3 * every + 2
    caps = climb(state, steps)
    # Then the step doubles each `climb_every` rises, up to the knee step
    expected = [min(TUNING.knee_step, step * 2 ** (k // every)) for k in range(steps)]
    assert ratios(caps, 100.0) == pytest.approx(expected)
    assert expected[-1] == TUNING.knee_step > expected[every]


def test_an_age_over_the_low_mark_starts_the_climb_over():
    # Given a climb that has quickened
    state = climbing()
    climb(state, 2 * TUNING.climb_every)
    assert state.rises == 2 * TUNING.climb_every
    # When a reading shows thrall over the low mark (falling: held, no cut)
    low = TUNING.max_iterator_age_ms * TUNING.low_age_share / 1000
    view = View((low + 1) * 1000, (low + 5) * 1000, 5.0, fresh=True)
    cap = state.rate_cap
    step_fresh(view, state, 2_000.0, TUNING)
    assert state.rate_cap == cap
    # Then the next rises start again at the first step
    caps = climb(state, 2)
    assert state.rises == 2
    assert ratios(caps, cap) == pytest.approx([TUNING.fresh_rate_step] * 2)


def test_a_ceiling_the_pass_does_not_reach_is_neither_raised_nor_counted():
    # Given a climb that has quickened past thrall's rate
    state = climbing()
    every = TUNING.climb_every
    climb(state, 2 * every + 3)
    cap, rises = state.rate_cap, state.rises
    # When the pass falls short of the ceiling (the Grid binds, or a new invocation's slow
    # start), decision after decision with thrall keeping up
    state.rate_seen = 0.9 * TUNING.climb_used_share * cap
    caps = climb(state, 2 * every)
    # Then the ceiling stays where it was and the rises in a row are kept
    assert caps == [cap] * (2 * every)
    assert state.rises == rises
    # And once the pass reaches it again, the climb goes on at the step it had reached
    state.rate_seen = 10 * cap
    step = min(TUNING.knee_step, TUNING.fresh_rate_step * 2 ** (rises // every))
    assert ratios(climb(state, 1), cap) == pytest.approx([step])
    assert step > TUNING.fresh_rate_step


def test_a_ceiling_under_thralls_rate_the_pass_does_not_reach_is_not_raised():
    state = ThrallState(rate_cap=50.0, thrall_rate=100.0, rate_seen=TUNING.climb_used_share * 40)
    assert climb(state, 3) == [50.0] * 3


def test_under_thralls_rate_the_ceiling_takes_the_knee_step_and_counts_no_rise():
    state = ThrallState(rate_cap=50.0, thrall_rate=100.0, rate_seen=1_000.0)
    caps = climb(state, 3)
    assert ratios(caps, 50.0) == pytest.approx([TUNING.knee_step] * 3)
    assert state.rises == 0


def test_the_rises_in_a_row_are_saved_and_an_older_state_reads_without_them():
    state = ThrallState(rises=5.0)
    assert ThrallState.from_json(state.to_json()).rises == 5.0
    older = {k: v for k, v in state.to_json().items() if k != "rises"}
    assert ThrallState.from_json(older).rises == 0.0


def test_within_a_hold_thrall_through_what_waited_brings_the_ceiling_back_to_its_rate():
    # Given a cut under thrall's counted rate, and its hold still running
    state = ThrallState(rate_cap=90.0, thrall_rate=100.0, rate_seen=90.0, hold_until=5_000.0)
    caught_up = View(3_000.0, 8_000.0, 5.0, fresh=True)
    # When the checkpoints show thrall through what waited (under the low mark)
    caps = []
    for n in range(4):
        step_fresh(caught_up, state, 2_000.0 + 15 * n, TUNING)
        caps.append(state.rate_cap)
    # Then the ceiling takes the knee step back to thrall's rate, and not beyond in the hold
    assert caps == pytest.approx([90.0 * (1 + TUNING.knee_step), 99.225, 100.0, 100.0])
    assert state.rises == 0
