"""The control item in DynamoDB: knobs and the controller's state, apart from the images."""

import json
from datetime import UTC, datetime

import pytest

from grid_reingest.adapters.dynamodb.control import CONTROL_ID, PACE, ControlTable
from grid_reingest.domain.control import Control, Knobs, PaceState
from grid_reingest.domain.controller import Controller, Signals, Tuning
from grid_reingest.domain.states import ProgressState


def stepped_state() -> PaceState:
    """A state with both loops' memory filled in, as a worker saves it."""
    controller = Controller(Tuning(max_limit=32, max_iterator_age_ms=60_000))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    signals = Signals(at, 5_000.0, 4_000.0, 40, 1, (900.0,) * 39, published_ago=(1.0, 2.0))
    return controller.step(None, signals, Knobs())


def test_control_table_reads_defaults_before_anything_is_written(table_name, dynamodb):
    # Given a new state table, When the control item is read
    control = ControlTable(table_name, dynamodb).read()
    # Then it holds the defaults: not paused, no ceilings, no controller state yet
    assert control == Control()


def test_control_table_saves_the_pace_only_at_the_version_it_read(table_name, dynamodb):
    # Given two workers that read the control item at the same version
    store = ControlTable(table_name, dynamodb)
    seen = store.read()
    first = stepped_state()
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


def test_control_table_reads_a_state_saved_before_the_loops_had_typed_states(table_name, dynamodb):
    # Given a controller state written by an earlier version (a loose `memory` map)
    old = {"limit": 12.0, "ratePerMinute": 300.0, "reason": "r", "memory": {"rate_cap": 300.0}}
    dynamodb.put_item(
        TableName=table_name,
        Item={"id": {"S": CONTROL_ID}, PACE: {"S": json.dumps(old)}, "pace_version": {"N": "3"}},
    )
    # When a worker reads it
    control = ControlTable(table_name, dynamodb).read()
    # Then the limit and rate are kept and the loops start afresh from them
    assert control.pace.limit == 12.0 and control.pace.rate_per_minute == 300.0
    assert control.pace.grid is None and control.pace.thrall is None


def test_control_table_refuses_a_malformed_state_naming_the_attribute(table_name, dynamodb):
    # Given a controller state whose thrall loop holds a field no version wrote
    bad = {"limit": 4.0, "ratePerMinute": None, "reason": "r", "thrall": {"rate_cap": "fast"}}
    dynamodb.put_item(
        TableName=table_name,
        Item={"id": {"S": CONTROL_ID}, PACE: {"S": json.dumps(bad)}},
    )
    # When it is read, Then the error names the item, the attribute and the field
    with pytest.raises(ValueError, match=r"'pace' attribute \(~control\).*rate_cap"):
        ControlTable(table_name, dynamodb).read()
