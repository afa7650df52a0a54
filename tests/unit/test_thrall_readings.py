"""Which reading of thrall's checkpoints the thrall loop goes by: the highest of each
worker's latest, while recent; each worker's own later reading replaces its earlier one;
the readings survive the control item."""

from dataclasses import replace

import pytest

from grid_reingest.domain.thrall_fresh import view_of
from grid_reingest.domain.thrall_state import Reading, ThrallState

from .test_controller import TUNING, signals


def read(worker, age_s, *, delay=5.0, previous_s=None):
    """Signals of a worker that read thrall's checkpoints (CloudWatch at 1 s, steady)."""
    return replace(
        signals(),
        worker=worker,
        checkpoint_age_ms=age_s * 1000,
        checkpoint_previous_ms=None if previous_s is None else previous_s * 1000,
        checkpoint_delay_seconds=delay,
        checkpoint_mark=1.0,
    )


def test_a_worker_just_started_does_not_hide_another_workers_backlog():
    # Given a worker that read thrall 40 s behind its records
    state = ThrallState()
    view_of(read("worker.a", 40.0), state, 1_000.0, TUNING)
    # When a worker that has just started, its records all taken, reads 0 s
    view = view_of(read("worker.b", 0.0), state, 1_015.0, TUNING)
    # Then the loop goes by the first worker's reading
    assert view.fresh and view.age_ms == 40_000.0


def test_a_workers_later_reading_replaces_its_own_earlier_one():
    # Given a worker that read thrall 40 s behind, and another that reads 5 s
    state = ThrallState()
    view_of(read("worker.a", 40.0), state, 1_000.0, TUNING)
    view_of(read("worker.b", 5.0), state, 1_005.0, TUNING)
    # When the first reads again and thrall has caught up with its records (2 s)
    view = view_of(read("worker.a", 2.0), state, 1_015.0, TUNING)
    # Then its 40 s no longer stands: the highest latest reading is the other's 5 s
    assert view.age_ms == 5_000.0
    assert state.fresh_at == pytest.approx(1_000.0)


def test_a_reading_older_than_the_merge_window_drops_out():
    # Given a worker that read 40 s behind and then read no more (its invocation ended)
    state = ThrallState()
    view_of(read("worker.a", 40.0), state, 1_000.0, TUNING)
    # When another reads 3 s past the merge window
    later = 1_000.0 + TUNING.fresh_merge_seconds + 1
    view = view_of(read("worker.b", 3.0), state, later, TUNING)
    # Then its reading is the one, and the ended worker's is gone from the state
    assert view.age_ms == 3_000.0
    assert set(state.readings) == {"worker.b"}


def test_a_worker_that_does_not_read_leaves_the_readings_as_they_stand():
    # Given a worker's reading
    state = ThrallState()
    view_of(read("worker.a", 12.0), state, 1_000.0, TUNING)
    # When another worker decides without reading the checkpoints
    view = view_of(replace(signals(), worker="worker.b"), state, 1_010.0, TUNING)
    # Then the loop still goes by the first worker's reading
    assert view.fresh and view.age_ms == 12_000.0
    assert set(state.readings) == {"worker.a"}


def test_a_reading_of_the_same_age_from_an_older_moment_leaves_the_other_one():
    # Given a worker's reading of 0 s as of 1,000 s
    state = ThrallState()
    view_of(read("worker.a", 0.0, delay=10.0), state, 1_010.0, TUNING)
    # When another worker reads 0 s too, of a move it dates at 900 s (early in a long gap),
    # with CloudWatch over the threshold for a minute that ended at 930 s
    late = replace(read("worker.b", 0.0, delay=120.0), iterator_age_ms=300_000.0)
    view = view_of(replace(late, previous_age_ms=240_000.0), state, 1_020.0, TUNING)
    # Then the later moment stands, and CloudWatch's older point does not override it
    assert state.fresh_at == 1_000.0
    assert view.fresh and view.age_ms == 0.0


def test_the_readings_survive_the_control_item():
    # Given two workers' readings
    state = ThrallState()
    view_of(read("worker.a", 40.0, previous_s=30.0), state, 1_000.0, TUNING)
    view_of(read("worker.b", 5.0), state, 1_005.0, TUNING)
    # When the state is written and read back
    back = ThrallState.from_json(state.to_json())
    # Then each worker's reading is as it was
    assert back.readings == state.readings
    assert back.readings["worker.a"] == Reading(40_000.0, 995.0, 1_000.0, 30_000.0)


@pytest.mark.parametrize(
    "readings",
    [
        {"worker.a": {"age_ms": 1.0, "at": 2.0, "read_at": 3.0}},
        {"worker.a": {"age_ms": "high", "at": 2.0, "read_at": 3.0, "previous_ms": None}},
        {"worker.a": [1.0, 2.0, 3.0, None]},
        ["worker.a"],
    ],
)
def test_a_malformed_reading_is_refused_by_name(readings):
    # Given a control item whose readings are malformed
    data = {**ThrallState().to_json(), "readings": readings}
    # When it is read, Then the error names the field
    with pytest.raises(ValueError, match="readings is malformed"):
        ThrallState.from_json(data)


def test_a_state_written_with_the_retired_read_time_still_reads():
    # Given a control item written before the readings were kept by worker
    data = {**ThrallState(fresh_age_ms=5_000.0).to_json(), "fresh_read_at": 1_000.0}
    # When it is read, Then it reads, its reading as it was
    assert ThrallState.from_json(data).fresh_age_ms == 5_000.0
