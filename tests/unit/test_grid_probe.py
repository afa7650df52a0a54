"""The Grid loop's probes of the no-load latency: pooled while they agree, afresh when not."""

from dataclasses import replace

import pytest

from grid_reingest.domain.grid_limit import GridLimit, GridSample
from grid_reingest.domain.grid_state import Block, GridState
from grid_reingest.domain.tuning import Tuning

TUNING = Tuning(max_limit=32, max_iterator_age_ms=60_000)
# A Grid of 2 s an image with a wide spread (±1.5 s), learnt by an earlier probe of 300.
EARLIER = Block(0.0).add([500.0, 3_500.0] * 150)


def ending_probe(measured: list[float]) -> tuple[GridState, str]:
    """A probe at a low limit that measured `measured`, ended by a decision with ten more
    images like them."""
    loop = GridLimit(TUNING)
    probing = replace(
        loop.fresh(),
        limit=7.0,
        grown=True,
        resume_limit=13.0,
        probed=EARLIER,
        probe_until=1_030.0,
        probe_from=1_015.0,
        probing=Block(1_015.0).add(measured[:-10]),
    )
    sample = GridSample(1_031.0, 10, 0, tuple(measured[-10:]), 15.0, in_flight=7.0)
    return loop.step(probing, sample, 32.0)


def test_grid_probe_that_agrees_with_the_earlier_ones_is_pooled_with_them():
    # Given a probe at 7 in flight whose 60 images average 1.8 s: within its noise of 2 s
    done, reason = ending_probe([300.0, 3_300.0] * 30)
    # Then the baseline is the earlier probe's at half its weight with this one's, not the
    # new mean alone (which would read a queue of a tenth of the limit that is not there)
    assert done.baseline_ms == pytest.approx((150 * 2_000.0 + 60 * 1_800.0) / 210)
    assert "1800 ms with nothing queued (1943 ms with the probes before)" in reason
    assert done.limit == 13.0 and done.probing is None


def test_grid_probe_far_from_the_earlier_ones_starts_afresh():
    # Given a probe whose images now take 4 s: far beyond the earlier probe's noise
    done, reason = ending_probe([3_000.0, 5_000.0] * 30)
    # Then the Grid's no-load latency has moved: the baseline is this probe's alone
    assert done.baseline_ms == pytest.approx(4_000.0)
    assert "probes before" not in reason


def test_grid_probe_with_too_few_answers_keeps_what_the_earlier_ones_measured():
    # Given a probe that saw too few images to measure anything
    done, reason = ending_probe([2_000.0] * 12)
    # Then the earlier measure stands
    assert "inconclusive" in reason
    assert done.probed == EARLIER


def test_grid_probe_state_round_trips_mid_probe():
    # Given a loop mid-probe, with a pooled (weighed) earlier measure
    state = replace(
        GridLimit(TUNING).fresh(),
        probed=EARLIER.weighed(0.5),
        probing=Block(1_015.0).add([1_000.0, 3_000.0]),
        probe_until=1_030.0,
    )
    # When it is written down and read back
    # Then nothing is lost, the weighed count included
    assert GridState.from_json(state.to_json()) == state


def busy_at(limit: float, latency_ms: float, now: float):
    """A grown loop at `limit`, its first block of 90 images at `latency_ms` (so no queue
    shows), begun at 1,000 s and never probed, deciding at `now` with the limit in use."""
    loop = GridLimit(TUNING)
    state = replace(
        loop.fresh(),
        limit=limit,
        grown=True,
        probed_at=1_000.0,
        blocks=(Block(900.0).add([latency_ms] * 90), Block(990.0)),
    )
    sample = GridSample(now, 10, 0, (latency_ms,) * 10, 15.0, in_flight=limit)
    return loop.step(state, sample, 32.0)


def test_grid_probe_at_a_low_limit_lasts_for_a_blocks_worth_of_answers():
    # Given a loop held at 5 in flight on a Grid of 5 s an image
    state, reason = busy_at(5.0, 5_000.0, now=1_001.0 + TUNING.probe_every_seconds)
    assert "probing" in reason
    # Then the probe's measuring half expects a block's worth of answers at its limit (six
    # latencies would give it 12)
    half = state.probe_until - state.probe_from
    assert half * state.limit / 5.0 >= TUNING.block_min_images


@pytest.mark.parametrize("limit", [1.0, 2.0, 5.0, 12.0, 30.0])
@pytest.mark.parametrize("latency_ms", [500.0, 4_000.0, 20_000.0, 60_000.0])
def test_grid_probe_never_holds_the_limit_longer_than_its_longest(limit, latency_ms):
    # Given a loop due a probe, at any limit on any Grid
    state, reason = busy_at(limit, latency_ms, now=1_001.0 + TUNING.probe_every_seconds)
    if "probing" in reason:
        # Then a probe it begins ends within probe_longest_seconds
        assert state.probe_until - (1_001.0 + TUNING.probe_every_seconds) <= (
            TUNING.probe_longest_seconds
        )
    else:
        # ...and one it does not begin is put off a probe period, the limit free meanwhile
        assert state.probed_at == 1_001.0 + TUNING.probe_every_seconds
        assert state.probe_until == 0.0


def test_grid_probe_that_could_not_measure_in_time_is_not_begun():
    # Given a loop held at 2 in flight on a Grid of 20 s an image (a probe's measuring half
    # would need 375 s at its limit for a block's worth of answers)
    now = 1_001.0 + TUNING.probe_every_seconds
    state, reason = busy_at(2.0, 20_000.0, now=now)
    # Then no probe holds the limit: the decision is the usual one, the next probe a
    # period off
    assert "probing" not in reason and state.probe_until == 0.0
    assert state.probed_at == now
    again, _ = GridLimit(TUNING).step(
        state, GridSample(now + 15, 1, 0, (20_000.0,), 15.0, in_flight=2.0), 32.0
    )
    assert again.probe_until == 0.0
