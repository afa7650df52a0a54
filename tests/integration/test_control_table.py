"""The control item in DynamoDB: knobs and the controller's state, apart from the images."""

from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest.domain.states import ProgressState


def test_control_table_reads_defaults_before_anything_is_written(table_name, dynamodb):
    # Given a new state table, When the control item is read
    control = ControlTable(table_name, dynamodb).read()
    # Then it holds the defaults: not paused, no ceilings, no controller state yet
    assert control == Control()


def test_control_table_saves_the_pace_only_at_the_version_it_read(table_name, dynamodb):
    # Given two workers that read the control item at the same version
    store = ControlTable(table_name, dynamodb)
    seen = store.read()
    first = PaceState(8, 120.0, "headroom: +1", memory={"baseline_ms": 310.0})
    # When both save their decision
    assert store.save_pace(first, seen.version)
    assert not store.save_pace(PaceState(4, None, "other"), seen.version)
    # Then only the first is kept, and a save at the new version succeeds
    control = store.read()
    assert control.pace == first
    assert store.save_pace(PaceState(9, None, "headroom: +1"), control.version)
    assert store.read().pace.limit == 9


def test_control_table_knobs_leave_the_controller_state_alone(table_name, dynamodb):
    # Given a controller state
    store = ControlTable(table_name, dynamodb)
    store.save_pace(PaceState(5, None, "start"), 0)
    # When the operator pauses and sets ceilings, then lifts one
    store.set_knobs(Knobs(paused=True, max_in_flight=16, max_rate_per_minute=600))
    control = store.set_knobs(Knobs(paused=True, max_in_flight=None, max_rate_per_minute=600))
    # Then the knobs are as set and the state and its version are untouched
    assert control.knobs == Knobs(paused=True, max_in_flight=None, max_rate_per_minute=600)
    assert control.pace == PaceState(5, None, "start")
    assert control.version == 1


def test_control_item_is_never_counted_or_claimed(table, table_name, dynamodb):
    # Given a table with the control item and no image
    ControlTable(table_name, dynamodb).set_knobs(Knobs(paused=True))
    # When the workers look for work and the operator counts
    # Then the control item is invisible to both
    assert not table.has_any(list(ProgressState))
    assert sum(table.counts().values()) == 0


def test_control_table_two_operators_changing_different_knobs_both_keep_theirs(
    table_name, dynamodb
):
    # Given two operators who read the knobs at the same time
    store = ControlTable(table_name, dynamodb)
    seen = store.read().knobs
    # When one pauses and the other sets a ceiling, each from what they read
    store.set_knobs(Knobs(paused=True), seen)
    control = store.set_knobs(Knobs(max_in_flight=16), seen)
    # Then both changes are there
    assert control.knobs == Knobs(paused=True, max_in_flight=16)
