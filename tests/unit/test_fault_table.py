"""The fault table, fast: every fault over a whole pass, on the in-memory store.

For each fault (devtools/fault_scenarios.py) the real flows run a pass to the
end: no image lost, none published twice — except where the stream accepted a
record and its invocation failed before recording it — every image where the
fault should leave it, and the operator told by an alarm, a metric or an exit
code. benchmarks/faults.py runs the same on more images and writes
docs/reliability.md.
"""

from __future__ import annotations

import pytest

from devtools.fault_scenarios import SCENARIOS, Scenario, problems, run
from devtools.fault_world import World
from devtools.testing import grid_id
from grid_reingest.domain.states import ProgressState as S

IMAGES = 100


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault_table_loses_nothing_and_publishes_once(scenario: Scenario):
    # Given a pass of a hundred images and one fault
    # When both workers run it to the end
    world, report = run(scenario, IMAGES)
    # Then every image is where the fault should leave it, none lost, none published twice
    # outside the documented case, and the operator was told
    assert problems(scenario, world, report) == []
    assert report.images == IMAGES + scenario.extra_ids


def test_fault_table_published_twice_only_what_was_accepted_and_not_recorded():
    # Given a worker that dies just after the stream accepted a call
    scenario = next(s for s in SCENARIOS if s.name == "worker-dies-after-accept")
    # When
    _, report = run(scenario, IMAGES)
    # Then what went out twice is exactly what that call carried and nobody recorded
    assert report.double_published
    assert set(report.double_published) == report.accepted_unrecorded
    assert set(report.double_published.values()) == {2}


def test_fault_table_an_image_failing_alone_still_ends_the_pass():
    scenario = next(s for s in SCENARIOS if s.name == "one-image-forever")
    world, report = run(scenario, IMAGES)
    lone = world.ids[IMAGES // 2]
    assert world.store.get(lone).state == S.UNKNOWN_ERROR
    assert report.finished


def test_fault_table_infrastructure_overload_charges_no_image_to_8():
    # Given overload answers across every image (the Grid, the Lambda service, the stream)
    for name in ("grid-overload", "grid-overload-long", "lambda-throttles", "kinesis-throughput"):
        scenario = next(s for s in SCENARIOS if s.name == name)
        # When
        _, report = run(scenario, IMAGES)
        # Then no image ends blacklisted for the system's overload
        assert report.states.get(int(S.UNKNOWN_ERROR), 0) == 0, name


def test_fault_table_systemic_overload_costs_no_attempt():
    # Given overload answers across many images, for a few minutes, at each worker
    for name in ("grid-overload", "lambda-throttles", "kinesis-throughput", "media-api-overload"):
        scenario = next(s for s in SCENARIOS if s.name == name)
        # When
        _, report = run(scenario, IMAGES)
        # Then no image was charged an attempt for it
        assert report.attempts_charged == 0, name


def test_fault_table_flags_an_image_published_twice():
    # Given a pass where a record goes out again with no failed invocation to explain it
    world = World(20)

    def again(world: World) -> None:
        if world.phase == "check" and not world.kinesis.accepted[grid_id(1)] > 1:
            world.kinesis.put_records(
                [
                    {
                        "PartitionKey": grid_id(1),
                        "Data": b'{"image": {"id": "%s"}}' % grid_id(1).encode(),
                    }
                ]
            )

    world.on_tick.append(again)
    report = world.run_pass()
    # Then the table says so
    assert problems(SCENARIOS[0], world, report) == [f"1 image(s) published twice: {[grid_id(1)]}"]


def test_fault_table_flags_an_image_left_behind():
    # Given an id that appears once both workers have switched themselves off
    world = World(20)

    def late(world: World) -> None:
        if world.phase == "check" and not world.check_rule.enabled:
            world.store.put_new([grid_id(999)])

    world.on_tick.append(late)
    report = world.run_pass()
    # Then it counts as lost
    assert report.lost == [grid_id(999)]
