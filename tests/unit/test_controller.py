"""The pace controller as pure code: speeds up with headroom, backs off, obeys the knobs."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from grid_reingest.domain.control import Knobs
from grid_reingest.domain.controller import Controller, Signals, Tuning
from grid_reingest.domain.grid_limit import GridLimit, GridSample
from grid_reingest.domain.grid_state import Block

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TUNING = Tuning(max_limit=32, max_iterator_age_ms=60_000)
STEP_SECONDS = 15
# Enough finished images that the worker is seen using its whole limit.
BUSY = 10_000
# Latencies a decision reports: enough for the baseline's first block at once.
SAMPLES = 200


def signals(age=1_000.0, previous=1_000.0, finished=BUSY, overloaded=0, latency=500.0, n=0):
    return Signals(
        T0 + timedelta(seconds=STEP_SECONDS * n),
        age,
        previous,
        finished,
        overloaded,
        (latency,) * SAMPLES,
    )


def run(controller, steps, state=None, knobs=None, start=0, **kw):
    knobs = knobs or Knobs()
    for n in range(start, start + steps):
        state = controller.step(state, signals(n=n, **kw), knobs)
    return state


def test_controller_raises_the_limit_while_everything_has_headroom():
    # Given a Grid answering at its baseline and thrall keeping up
    # When a fresh controller steps a few times
    state = run(Controller(TUNING), 3)
    # Then the limit doubled each time (a slow start: no queue seen at the Grid yet)
    assert state.limit == TUNING.start_limit * 2**3
    assert "headroom" in state.reason
    assert state.rate_per_minute is None


def test_controller_grows_gently_once_the_grid_has_queued():
    # Given a controller that has seen the Grid queue once (latency doubled)
    controller = Controller(TUNING)
    state = run(controller, 2)
    state = controller.step(state, signals(latency=1_000.0, n=2), Knobs())
    assert state.grid.grown
    # When the Grid answers at its baseline again, until the limit rises
    n = 3
    later = controller.step(state, signals(n=n), Knobs())
    while later.limit <= state.limit:
        n += 1
        state, later = later, controller.step(later, signals(n=n), Knobs())
    # Then the limit grows by a fifth (at least one), no longer doubling
    assert later.limit == state.limit + max(1.0, TUNING.grow * state.limit)


def test_controller_does_not_raise_a_limit_the_worker_does_not_use():
    # Given a worker finishing far fewer images than its limit allows
    controller = Controller(TUNING)
    state = run(controller, 5)
    # When the next decision sees only a trickle
    idle = controller.step(state, signals(finished=5, n=5), Knobs())
    # Then the limit holds: headroom nobody used proves nothing
    assert idle.limit == state.limit


def test_controller_never_exceeds_the_deployed_ceiling_or_the_operator_knob():
    controller = Controller(TUNING)
    assert run(controller, 100).limit == 32
    capped = run(controller, 100, knobs=Knobs(max_in_flight=5, max_rate_per_minute=90))
    assert capped.limit == 5
    assert capped.rate_per_minute == 90


def test_controller_cuts_the_limit_on_overload_answers():
    controller = Controller(TUNING)
    state = run(controller, 20)
    cut = controller.step(state, signals(overloaded=BUSY // 10, n=20), Knobs())
    assert cut.limit < state.limit
    assert "overload" in cut.reason


def test_controller_cuts_the_limit_to_the_grid_s_queue_when_latency_climbs():
    # Given a limit grown while latency sat at its 500 ms baseline
    controller = Controller(TUNING)
    state = run(controller, 20)
    # When latency doubles for a minute (half of what is in flight waits in the Grid's queue)
    cut = run(controller, 4, state=state, start=20, latency=1_000.0)
    # Then the limit drops to about what the Grid serves, plus a small queue
    assert cut.limit < state.limit * 0.65
    assert "latency" in cut.reason
    # and the congested latency does not drag the baseline up
    assert cut.grid.baseline_ms == state.grid.baseline_ms


def test_controller_follows_a_grid_that_stays_slower_after_the_baseline_window():
    # Given a baseline learnt at 500 ms
    controller = Controller(TUNING)
    state = run(controller, 10)
    # When the Grid answers at 800 ms for longer than the baseline's window
    window = TUNING.block_seconds * (TUNING.baseline_blocks + 1)
    steps = int(window + 120) // STEP_SECONDS
    slower = run(controller, steps, state=state, start=10, latency=800.0)
    # Then 800 ms is the new baseline, and the limit is no longer cut for it
    assert slower.grid.baseline_ms == pytest.approx(800.0)
    assert "latency" not in slower.reason


def test_controller_stops_taking_work_above_the_threshold_or_without_data():
    controller = Controller(TUNING)
    state = run(controller, 5)
    over = controller.step(state, signals(age=95_000, previous=80_000, n=5), Knobs())
    assert over.limit == 0
    assert over.reason == "back-pressure: iterator age 95 s > 60 s"
    blind = controller.step(state, signals(age=None, previous=None, n=5), Knobs())
    assert blind.limit == 0
    assert "no iterator-age data" in blind.reason


def test_controller_over_the_threshold_in_cloudwatch_with_silent_checkpoints_trickles():
    # Given a controller whose workers read thrall's checkpoints, which told its age a
    # while ago and have not moved since, and CloudWatch's late points over the threshold
    controller = Controller(TUNING)
    state = run(controller, 5)
    told = replace(signals(n=5), checkpoint_age_ms=1_000.0, checkpoint_mark=1.0)
    state = controller.step(state, told, Knobs())
    silent = replace(signals(age=95_000, previous=80_000, n=20), checkpoint_mark=1.0)
    over = controller.step(state, silent, Knobs())
    # Then a trickle starts, not nothing: a thrall through its backlog checkpoints only
    # on records it processes (a pause's end would otherwise go unseen until CloudWatch's
    # points catch up, and their cut on a paused minute's rate stands)
    assert over.limit > 0 and over.rate_per_minute == TUNING.stall_probe_per_minute
    assert over.reason.startswith("back-pressure: iterator age 95 s > 60 s; 2/min until")
    # ...but not where the checkpoints have never told this pass anything (a shard of
    # ours without one): CloudWatch's stop stands
    early = replace(signals(age=95_000, previous=80_000, n=5), checkpoint_mark=1.0)
    never = controller.step(run(controller, 5), early, Knobs())
    assert never.limit == 0 and never.reason == "back-pressure: iterator age 95 s > 60 s"


def test_controller_resumes_at_the_limit_it_had_after_a_stop():
    # Given a controller stopped by back-pressure
    controller = Controller(TUNING)
    state = run(controller, 5)
    stopped = controller.step(state, signals(age=95_000, previous=80_000, n=5), Knobs())
    # When the age is back under the threshold
    resumed = controller.step(stopped, signals(n=6), Knobs())
    # Then the in-flight limit is where it was (only the rate was cut)
    assert resumed.limit >= state.limit


def test_controller_cuts_the_rate_below_what_it_achieved_when_lag_rises():
    # Given a worker that achieved some rate with thrall keeping up
    controller = Controller(TUNING)
    state = run(controller, 10)
    achieved = state.thrall.rate_seen
    # When thrall's iterator age climbs past the low mark
    lagging = controller.step(state, signals(age=20_000, previous=15_000, n=10), Knobs())
    # Then a rate ceiling appears below the achieved rate
    assert lagging.rate_per_minute is not None
    assert lagging.rate_per_minute < achieved
    assert "thrall lagging" in lagging.reason


def test_controller_cuts_deeper_the_faster_the_age_climbs():
    controller = Controller(TUNING)
    state = run(controller, 10)
    slow = controller.step(state, signals(age=20_000, previous=15_000, n=10), Knobs())
    fast = controller.step(state, signals(age=40_000, previous=5_000, n=10), Knobs())
    assert fast.rate_per_minute < slow.rate_per_minute


def test_controller_holds_after_a_cut_while_late_points_still_show_the_old_lag():
    # Given a rate cut for a rising age
    controller = Controller(TUNING)
    state = run(controller, 10)
    cut = controller.step(state, signals(age=20_000, previous=15_000, n=10), Knobs())
    # When the next points (minutes late) still rise, within the data's delay
    later = run(controller, 4, state=cut, start=11, age=25_000, previous=20_000)
    # Then the ceiling is not cut again for the same episode
    assert later.rate_per_minute == cut.rate_per_minute
    assert "holding" in later.reason


def test_controller_feeds_a_draining_thrall_when_a_high_age_falls():
    # Given a stop above the threshold, with a rate ceiling estimated
    controller = Controller(TUNING)
    state = run(controller, 10)
    stopped = controller.step(state, signals(age=90_000, previous=70_000, n=10), Knobs())
    # When the late points show the age falling, still above the threshold
    draining = controller.step(stopped, signals(age=80_000, previous=90_000, n=11), Knobs())
    # Then the worker goes on, well under the ceiling
    assert draining.limit > 0
    assert draining.rate_per_minute < stopped.rate_per_minute
    assert "falling" in draining.reason


def test_controller_recovers_after_an_overload_passes():
    controller = Controller(TUNING)
    state = run(controller, 30)
    state = controller.step(state, signals(overloaded=BUSY // 2, n=30), Knobs())
    low = state.limit
    state = run(controller, 10, state=state, start=31)
    assert state.limit > low


def test_controller_raises_the_rate_again_once_the_lag_is_gone():
    controller = Controller(TUNING)
    state = run(controller, 10)
    cut = controller.step(state, signals(age=20_000, previous=15_000, n=10), Knobs())
    # after the hold, with thrall keeping up again
    later = run(controller, 40, state=cut, start=40)
    assert later.rate_per_minute > cut.rate_per_minute


def test_controller_keeps_a_short_history_of_its_decisions():
    state = run(Controller(TUNING), 25)
    assert len(state.history) == 10
    assert state.history[-1].endswith(state.reason)


def test_controller_state_from_a_paused_pass_is_kept_not_reset():
    controller = Controller(TUNING)
    state = run(controller, 10)
    paused = controller.step(state, signals(n=10), Knobs(paused=True))
    assert paused.limit == state.limit
    assert paused.reason == "paused by the operator"


def test_controller_estimates_thrall_s_rate_from_how_fast_the_age_climbs():
    # Given a worker that achieved a steady rate (BUSY images a decision: 40,000 a minute)
    controller = Controller(TUNING)
    state = run(controller, 10)
    achieved = BUSY * 60 / STEP_SECONDS
    # When the age climbs 12 s a minute (thrall reaches records 0.8 s newer each second)
    lagging = controller.step(state, signals(age=30_000, previous=18_000, n=10), Knobs())
    # Then thrall's rate is taken as 0.8 of the rate that made the lag, and the ceiling
    # goes a little under it, so that the backlog drains
    assert lagging.thrall.thrall_rate == pytest.approx(0.8 * achieved)
    assert lagging.rate_per_minute == pytest.approx(0.9 * 0.8 * achieved)


def test_controller_resumes_once_thrall_should_be_through_its_backlog():
    # Given a stop above the threshold, the age climbing 10 s a minute
    controller = Controller(TUNING)
    state = run(controller, 10)
    stopped = controller.step(state, signals(age=90_000, previous=80_000, n=10), Knobs())
    assert stopped.limit == 0
    # When the late points keep showing the old climb for minutes
    later = run(controller, 12, state=stopped, start=11, age=100_000, previous=90_000)
    # Then the worker went back to work at the estimated drain's end (about 2 minutes
    # here), under the new ceiling, rather than wait for points that say so
    assert later.limit > 0
    assert later.rate_per_minute == stopped.rate_per_minute
    assert "should be through its backlog" in later.reason


def test_controller_climbs_back_quickly_to_thrall_s_rate_then_probes_slowly():
    # Given a ceiling cut for a climbing age, and the hold after it over
    controller = Controller(TUNING)
    state = run(controller, 10)
    cut = controller.step(state, signals(age=30_000, previous=18_000, n=10), Knobs())
    held = run(controller, 20, state=cut, start=11)  # 5 minutes of low, steady age
    # When the age stays low
    up = controller.step(held, signals(n=31), Knobs())
    # Then the ceiling rises by the knee step while under the estimated rate
    assert up.rate_per_minute == pytest.approx(held.rate_per_minute * (1 + TUNING.knee_step))
    # and by the small step once past it
    past = run(controller, 20, state=up, start=32)
    above = controller.step(past, signals(n=52), Knobs())
    assert past.rate_per_minute > past.thrall.thrall_rate
    assert above.rate_per_minute == pytest.approx(past.rate_per_minute * (1 + TUNING.rate_step))


# -- thrall's checkpoints -------------------------------------------------------------


def fresh(n, age_s, previous_s, *, published=0, stalled=0.0, delay=5.0, mark=1.0):
    """A decision whose worker read thrall's checkpoints (ages in seconds)."""
    return Signals(
        T0 + timedelta(seconds=STEP_SECONDS * n),
        0.0,
        0.0,
        BUSY,
        0,
        (500.0,),
        checkpoint_age_ms=age_s * 1000,
        checkpoint_previous_ms=None if previous_s is None else previous_s * 1000,
        checkpoint_delay_seconds=delay,
        stalled_seconds=stalled,
        published_ago=tuple(k * STEP_SECONDS / published for k in range(published)),
        checkpoint_mark=mark,
    )


def steady(controller, minutes, per_minute, state=None):
    """A worker publishing `per_minute` with thrall keeping up, a decision every 15 s."""
    steps = minutes * 60 // STEP_SECONDS
    for n in range(steps):
        state = controller.step(
            state, fresh(n, 0.0, 0.0, published=per_minute * STEP_SECONDS // 60), Knobs()
        )
    return state, steps


def test_controller_checkpoints_rising_past_the_high_mark_stop_then_cut_under_thrall():
    # Given a worker publishing 400 a minute for five minutes with thrall keeping up
    controller = Controller(TUNING)
    state, n = steady(controller, 5, 400)
    # When the checkpoints show thrall 40 s behind, 20 s more than a minute before
    state = controller.step(state, fresh(n, 40.0, 20.0, published=100), Knobs())
    # Then nothing starts while thrall works through what waits, and the rate is cut
    # under what thrall took: a third less than it was given (the age gained 1/3 s a second)
    assert state.limit == 0
    assert state.rate_per_minute == pytest.approx(
        400 * (1 - 20 / 60) * TUNING.drain_share, rel=0.05
    )
    assert "behind" in state.reason


def test_controller_checkpoints_rising_under_the_high_mark_cut_without_stopping():
    # Given a worker publishing 400 a minute with thrall keeping up
    controller = Controller(TUNING)
    state, n = steady(controller, 5, 400)
    # When the checkpoints show thrall 15 s behind (past the low mark, under the high) and rising
    state = controller.step(state, fresh(n, 15.0, 5.0, published=100), Knobs())
    # Then the worker goes on, under the rate thrall took
    assert state.limit > 0
    assert state.rate_per_minute == pytest.approx(
        400 * (1 - 10 / 60) * TUNING.drain_share, rel=0.05
    )


def test_controller_thrall_behind_throughout_the_minute_is_measured_by_what_it_took():
    # Given a worker publishing 400 a minute for five minutes with thrall keeping up
    controller = Controller(TUNING)
    state, n = steady(controller, 5, 400)
    # When the checkpoints show thrall 25 s behind, and 15 s a minute before: busy throughout
    state = controller.step(state, fresh(n, 25.0, 15.0, published=100), Knobs())
    # Then thrall's rate is what it took in that minute, not what it kept up with before
    taken = 400 * (60 + 15 - 25) / 60
    assert state.thrall.thrall_rate == pytest.approx(taken, rel=0.05)


def test_controller_a_stalled_checkpoint_slows_the_worker_to_a_trickle_at_once():
    # Given a worker running freely
    controller = Controller(TUNING)
    state, n = steady(controller, 2, 400)
    # When a checkpoint is overdue with records waiting (thrall stopped)
    state = controller.step(state, fresh(n, 90.0, 30.0, stalled=25.0), Knobs())
    # Then only a trickle starts (enough to see thrall move again), and the reason says why
    assert state.rate_per_minute == TUNING.stall_probe_per_minute
    assert "stalled" in state.reason


def test_controller_a_worker_without_checkpoints_uses_the_one_another_read():
    # Given a stall another worker read from the checkpoints a decision ago
    controller = Controller(TUNING)
    state, n = steady(controller, 2, 400)
    state = controller.step(state, fresh(n, 90.0, 30.0, stalled=25.0), Knobs())
    # When a worker that reads no checkpoint (its CloudWatch points still low) decides
    later = controller.step(state, signals(age=1_000.0, previous=1_000.0, n=n + 1), Knobs())
    # Then it goes by the fresher reading: still a trickle
    assert later.rate_per_minute == TUNING.stall_probe_per_minute
    assert "stalled" in later.reason


def test_controller_checkpoints_low_and_steady_raise_the_rate_after_a_cut():
    # Given a cut answered (thrall caught up again)
    controller = Controller(TUNING)
    state, n = steady(controller, 5, 400)
    state = controller.step(state, fresh(n, 15.0, 5.0, published=100), Knobs())
    cut = state.rate_per_minute
    # When the checkpoints show thrall caught up for the hold and some
    for k in range(1, 20):
        state = controller.step(state, fresh(n + k, 0.0, 0.0, published=70), Knobs())
    # Then the rate has risen again
    assert state.rate_per_minute > cut


def test_grid_loop_an_overload_that_ends_a_probe_puts_the_next_probe_a_period_off():
    # Given a Grid loop in the middle of a latency probe
    loop = GridLimit(TUNING)
    probing = replace(
        loop.fresh(),
        limit=16.0,
        grown=True,
        resume_limit=20.0,
        probe_until=1_030.0,
        probe_from=1_015.0,
        probed_at=700.0,
    )
    # When a decision brings overload answers
    cut, reason = loop.step(probing, GridSample(1_010.0, 20, 5, (2_000.0,) * 15, 15.0), 128.0)
    # Then the probe ends with a cut, and the next probe is a probe period from now
    assert "overload" in reason and cut.probe_until == 0.0
    assert cut.limit == pytest.approx(16.0 * TUNING.backoff)
    assert cut.probed_at == 1_010.0


def test_grid_loop_a_cut_goes_no_deeper_than_an_overload_s_when_few_are_seen_in_flight():
    # Given a Grid learnt at 2 s an image and a loop holding 100 in flight
    loop = GridLimit(TUNING)
    learnt = Block(0.0).add([2_000.0] * 300)
    state = replace(
        loop.fresh(), limit=100.0, grown=True, probed_at=990.0, blocks=(learnt, Block(960.0))
    )
    # When images take 4 s (a queue), as told by a worker joining the pass, its own
    # in-flight (times the workers) a fifth of the limit
    sample = GridSample(1_000.0, 40, 0, (4_000.0,) * 40, 15.0, in_flight=20.0, workers=2)
    cut, reason = loop.step(state, sample, 128.0)
    # Then the limit is cut, but by no more than an overload would cut it: Little's law on
    # that in-flight (20 x 2 s / 4 s + the target queue) would leave a ninth of it
    assert "limit cut" in reason
    assert cut.limit == pytest.approx(100.0 * TUNING.backoff)


def test_grid_loop_a_few_noisy_latencies_after_a_cut_are_no_queue_a_clear_rise_is():
    # Given a Grid whose images take 2 s on average with a wide spread (±1.5 s), learnt
    # over 300 images, and a loop just past a cut (its smoothed latency started afresh)
    loop = GridLimit(TUNING)
    learnt = Block(0.0).add([500.0, 3_500.0] * 150)
    state = replace(
        loop.fresh(),
        limit=11.0,
        grown=True,
        probed_at=990.0,
        blocks=(learnt, Block(960.0)),
    )

    def decide(latencies):
        sample = GridSample(1_000.0, len(latencies), 0, tuple(latencies), 15.0, in_flight=11.0)
        return loop.step(state, sample, 32.0)

    # When the next decision's 12 images average 2.8 s, within their own noise
    held, reason = decide([1_300.0, 4_300.0] * 6)
    # Then that is no queue: no cut (the mean alone would show ~2.5 images queued)
    assert held.limit >= 11.0 and "limit cut" not in reason
    # When they average 5 s, far beyond it
    cut, reason = decide([3_500.0, 6_500.0] * 6)
    # Then the limit is cut to what the Grid serves
    assert cut.limit < 11.0 and "limit cut" in reason
