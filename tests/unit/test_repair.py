"""The scheduled repair: one pass at a time, loaded a part at a time, then the workers on."""

from __future__ import annotations

import pytest

from devtools.memory_passes import MemoryPasses
from devtools.testing import FakeClock, Rule, grid_id
from grid_reingest.domain.passes import Kind, Pass, Status
from grid_reingest.flows.repair import (
    STALLED_LOADING_SECONDS,
    RepairDeps,
    RepairRefused,
    load_repair,
    start_repair,
)

PARTS = {"0": [grid_id(1), grid_id(2)], "1": [grid_id(3)], "2": [grid_id(4), grid_id(5)]}


class Source:
    def describe(self):
        return "s3://media-service-images"

    def parts(self):
        return list(PARTS)

    def ids(self, part):
        yield PARTS[part]


class Loader:
    def __init__(self):
        self.loaded: list[tuple[str, object]] = []

    def load(self, ids, arming):
        self.loaded += [(i, arming) for i in ids]
        return len(ids)


class Notifier:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def publish(self, subject, text):
        self.sent.append((subject, text))


def deps(passes=None, clock=None, time_left=None, rules=None, resumed=None, notifier=None):
    clock = clock or FakeClock()
    return RepairDeps(
        passes=passes or MemoryPasses(),
        source=Source(),
        loader=Loader(),
        rules=rules if rules is not None else [Rule(), Rule()],
        clock=clock,
        remaining_ms=time_left or (lambda: 10**7),
        resume=(resumed.append if resumed is not None else lambda p: None),
        notifier=notifier,
    )


def test_repair_loads_every_part_then_switches_both_workers_on():
    # Given a schedule's run with time enough
    d = deps()
    summary = start_repair(d, topic="arn:aws:sns:eu-west-1:1:reports", margin_ms=1000)
    # Then a check-first pass ran its source, re-arming finished items, then the rules went on
    record = d.passes.current()
    assert summary.started and summary.running and summary.ids_loaded == 5
    assert (record.status, record.kind, record.started_by) == (
        Status.RUNNING,
        Kind.CHECK_FIRST,
        "schedule",
    )
    assert record.topic == "arn:aws:sns:eu-west-1:1:reports"
    arming = d.loader.loaded[0][1]
    assert (arming.pass_id, arming.kind, arming.rearm) == (record.id, Kind.CHECK_FIRST, True)
    assert [rule.switches for rule in d.rules] == [["on"], ["on"]]


def test_repair_running_out_of_time_carries_on_in_another_invocation():
    resumed: list[str] = []
    left = iter([10**7, 0])
    d = deps(time_left=lambda: next(left, 0), resumed=resumed)
    first = start_repair(d, topic=None, margin_ms=1000)
    # Then one part is loaded, the rest recorded, and another invocation asked for
    assert (first.parts_loaded, first.parts_left, first.running) == (1, 2, False)
    assert resumed == [first.pass_id]
    assert d.passes.current().remaining == ("1", "2")
    assert [rule.switches for rule in d.rules] == [[], []]
    # When that invocation runs, it loads the rest and switches the workers on
    d.remaining_ms = lambda: 10**7
    second = load_repair(first.pass_id, d, margin_ms=1000)
    assert (second.parts_loaded, second.running) == (2, True)
    assert len(d.loader.loaded) == 5
    # And a duplicate of the resume event does nothing
    assert load_repair(first.pass_id, d, margin_ms=1000).parts_loaded == 0


def test_repair_refuses_loudly_while_another_pass_runs():
    passes, notifier = MemoryPasses(), Notifier()
    clock = FakeClock()
    passes.start(Pass.start(Kind.FULL, "ids.txt", clock.now()))
    d = deps(passes=passes, clock=clock, notifier=notifier)
    with pytest.raises(RepairRefused, match="is still running"):
        start_repair(d, topic=None, margin_ms=1000)
    assert d.loader.loaded == []
    assert notifier.sent and "refused" in notifier.sent[0][0]


def test_repair_carries_on_a_loading_that_stalled():
    # Given a loading whose invocation died (its retries spent), long enough ago
    passes, clock = MemoryPasses(), FakeClock()
    d = deps(passes=passes, clock=clock, time_left=lambda: 0)
    start_repair(d, topic=None, margin_ms=1000)  # no time: nothing loaded, a resume asked
    clock.sleep(STALLED_LOADING_SECONDS + 1)
    # When the schedule runs again
    d.remaining_ms = lambda: 10**7
    summary = start_repair(d, topic=None, margin_ms=1000)
    # Then it carried on that pass rather than refuse
    assert summary.running and not summary.started
    assert passes.current().status is Status.RUNNING
