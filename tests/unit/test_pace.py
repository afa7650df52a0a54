"""The pace a worker gets: the controller stepped at most every refresh, its state shared;
and how the loop keeps to it."""

import json
import threading
import time
from collections import Counter

import pytest

from devtools import testing
from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from grid_reingest.domain.control import Knobs, PaceState
from grid_reingest.domain.controller import Controller, Tuning
from grid_reingest.domain.outcome import Failed
from grid_reingest.flows.batch_index import run_batch_index
from grid_reingest.flows.pace import ControlledPace
from grid_reingest.ports import Observation, PaceDecision
from grid_reingest.settings import BatchIndexSettings, load


def index_settings():
    return load(
        BatchIndexSettings,
        {
            "STATE_TABLE_NAME": "state-TEST",
            "THRALL_STREAM_NAME": "thrall-TEST",
            "PROJECTION_FUNCTION_NAME": "image-projection-TEST",
            "MAX_IN_FLIGHT": "8",
        },
    )


def pace(control, clock, age=(1_000.0, 1_000.0)):
    controller = Controller(Tuning(max_limit=16, max_iterator_age_ms=60_000))
    return ControlledPace(controller, control, lambda: age, clock, refresh_seconds=15)


def test_pace_steps_the_controller_only_once_per_refresh():
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    worker = pace(control, clock)
    first = worker.decide(Observation(finished=200, latencies_ms=[300.0]))
    again = worker.decide(Observation(finished=200, latencies_ms=[300.0]))
    assert again == first
    assert control.read().version == 1
    clock.sleep(15)
    later = worker.decide(Observation())
    assert later.in_flight > first.in_flight
    assert control.read().version == 2


def test_pace_two_workers_share_one_controller_state_and_split_its_limit():
    # Given two workers running at once over one control item
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    a, b = pace(control, clock), pace(control, clock)
    a.decide(Observation(finished=200, latencies_ms=[300.0]))
    clock.sleep(10)
    # When the second steps the controller
    joining = b.decide(Observation(finished=200, latencies_ms=[300.0]))
    # Then it stepped from the first's saved state (4, raised again), and takes nothing until
    # the first has seen it (until then, the first may use the whole limit)
    state = control.read().pace
    assert state.limit > 4
    assert joining.in_flight == 0 and joining.resume_in_seconds is not None
    assert "waiting for their share" in joining.reason
    # Once both have stepped, each takes half of the limit
    clock.sleep(15)
    first = a.decide(Observation())
    clock.sleep(1)
    second = b.decide(Observation())
    limit = control.read().pace.limit
    assert first.in_flight + second.in_flight == int(limit)
    assert "1 of 2 workers" in second.reason


@pytest.mark.parametrize("ceiling", [1, 2, 3, 7])
def test_pace_overlapping_workers_together_never_exceed_the_operators_ceiling(ceiling):
    # Given the operator's ceiling, and two workers that both stepped since the other joined
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    control.set_knobs(Knobs(max_in_flight=ceiling))
    a, b = pace(control, clock), pace(control, clock)
    a.decide(Observation(finished=200, latencies_ms=[300.0]))
    b.decide(Observation(finished=200, latencies_ms=[300.0]))
    busy = Observation(finished=200, latencies_ms=[300.0])
    for _ in range(4):
        clock.sleep(15)
        shares = a.decide(busy).in_flight + b.decide(busy).in_flight
        # Then their shares add up to the ceiling at most (rounded up, 1 would give 2)
        assert shares <= ceiling
    assert shares == ceiling


def test_pace_a_worker_gone_quiet_no_longer_takes_a_share():
    # Given a worker that stepped once and then ended (its invocation over)
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    pace(control, clock).decide(Observation(finished=200, latencies_ms=[300.0]))
    # When another worker steps after more than one and a half refreshes
    clock.sleep(30)
    decision = pace(control, clock).decide(Observation(finished=200, latencies_ms=[300.0]))
    # Then it has the whole limit, and the quiet worker's mark is gone
    assert decision.in_flight == control.read().pace.limit
    assert len(control.read().pace.workers) == 1


def test_pace_a_pause_reaches_a_running_worker_within_one_refresh():
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    worker = pace(control, clock)
    assert not worker.decide(Observation()).paused
    control.set_knobs(Knobs(paused=True))
    clock.sleep(15)
    decision = worker.decide(Observation())
    assert decision.paused
    assert decision.in_flight == 0
    assert decision.reason == "paused by the operator"


def test_pace_takes_nothing_without_iterator_age_data():
    decision = pace(MemoryControl(), testing.FakeClock(tick_ms=0), age=None).decide(Observation())
    assert decision.in_flight == 0
    assert "no iterator-age data" in decision.reason


# -- the loop under the pace's rate ceiling (flows/loop.py) -------------------------------


class LateClock(testing.FakeClock):
    """A clock whose every sleep overshoots, as a real thread's wake-up does."""

    def sleep(self, seconds):
        if seconds > 0:
            # A real sleep lets the work just started run first (it records its start
            # time before the sleeper's time moves on).
            time.sleep(0.002)
            with self.lock:
                self.t += seconds + 0.05


def test_pace_the_loop_reaches_the_rate_ceiling_though_every_sleep_overshoots():
    # Given 100 images, a pace of 120 starts a minute, and wake-ups always 50 ms late
    clock = LateClock()
    store = MemoryStore(clock=clock.now)
    store.put_new(testing.grid_id(i) for i in range(100))
    starts: list[float] = []
    projector = testing.Scripted(gate=lambda image_id: starts.append(clock.t))
    rated = testing.Steady(script=lambda n: PaceDecision(4, 120.0, "rate ceiling"))
    deps = testing.index_deps(store, projector, testing.Stream(), clock=clock, pace=rated)
    # When one invocation runs
    run_batch_index(index_settings(), deps)
    # Then the starts kept to 2 a second on average: late wake-ups were made up
    assert len(starts) == 100
    span = max(starts) - min(starts)
    assert 99 * 0.5 - 0.5 <= span <= 99 * 0.5 + 1.0  # 54.5 when each start waits anew
    # and a wait is made up by a slot or two, never by a burst
    assert max(Counter(round(t, 6) for t in starts).values()) <= 3


def test_pace_latencies_reported_to_the_pace_leave_out_overload_answers():
    # Given 30 images of which 10 meet a full queue (503 at once)
    clock = testing.FakeClock()
    store = MemoryStore(clock=clock.now)
    ids = [testing.grid_id(i) for i in range(30)]
    store.put_new(ids)
    script = {i: Failed(i, "image-loader", 503, "queue full") for i in ids[::3]}
    steady = testing.Steady(limit=4)
    deps = testing.index_deps(
        store, testing.Scripted(script), testing.Stream(), clock=clock, pace=steady
    )
    # When one invocation runs
    run_batch_index(index_settings(), deps)
    # Then every image was counted, the overloads apart, and only the others timed
    assert steady.seen.finished == 30
    assert steady.seen.overloaded == 10
    assert len(steady.seen.latencies_ms) == 20


def test_pace_the_flow_tells_the_pace_where_its_records_landed():
    # Given 10 images and a stream that says where each record landed
    clock = testing.FakeClock()
    store = MemoryStore(clock=clock.now)
    ids = [testing.grid_id(i) for i in range(10)]
    store.put_new(ids)
    steady = testing.Steady(limit=4)
    deps = testing.index_deps(
        store, testing.Scripted({}), testing.Stream(), clock=clock, pace=steady
    )
    # When one invocation runs
    run_batch_index(index_settings(), deps)
    # Then the pace heard of every record's shard and sequence number, once
    positions = sorted(q for _, q, _ in steady.seen.published)
    assert positions == list(range(1, 11))


def test_pace_a_stalled_checkpoint_slows_every_worker_until_it_moves():
    # Given two workers reading thrall's checkpoints, one of which published records
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    checkpoint = {"s": 0}

    def worker():
        return checkpoint_pace(control, clock, lambda: dict(checkpoint))

    first = worker()
    first.decide(Observation(finished=10, latencies_ms=[300.0]))
    for k in range(12):  # a record a second for two minutes; the checkpoint never moves
        clock.sleep(10)
        published = [("s", 10 * k + n + 1, clock.t - 10 + n) for n in range(10)]
        decision = first.decide(Observation(finished=10, latencies_ms=[300.0], published=published))
    # When a worker that has just started, with nothing published, decides
    second = worker()
    clock.sleep(15)
    late = second.decide(Observation())
    # Then both take only a trickle (between them): thrall stalled
    assert decision.rate_per_minute <= 2 and "stalled" in decision.reason
    assert late.rate_per_minute <= 2 and "stalled" in late.reason
    # When the checkpoint moves, the stall is over; a trickle until the next one says how
    # fast thrall goes (it checkpoints only on records it processes)
    checkpoint["s"] = 120
    clock.sleep(15)
    moving = second.decide(Observation())
    assert moving.rate_per_minute <= 2 and "moving again" in moving.reason


def test_pace_a_worker_that_leaves_gives_its_share_to_the_others_at_once():
    # Given two workers sharing the controller's limit
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    one, two = pace(control, clock), pace(control, clock)
    one.decide(Observation(finished=200, latencies_ms=[300.0]))
    shared = two.decide(Observation(finished=200, latencies_ms=[300.0]))
    assert "1 of 2 workers" in shared.reason
    # When the first ends its invocation and the second steps at its next refresh
    one.leave()
    clock.sleep(15)
    alone = two.decide(Observation(finished=200, latencies_ms=[300.0]))
    # Then the second takes the whole limit, not half of it
    assert "workers" not in alone.reason
    assert alone.in_flight == int(control.read().pace.limit)


def test_pace_the_loop_leaves_the_pace_when_its_invocation_ends():
    # Given an invocation over a few images
    clock = testing.FakeClock()
    store = MemoryStore(clock=clock.now)
    store.put_new([testing.grid_id(i) for i in range(5)])
    steady = testing.Steady(limit=4)
    deps = testing.index_deps(
        store, testing.Scripted({}), testing.Stream(), clock=clock, pace=steady
    )
    # When it ends
    run_batch_index(index_settings(), deps)
    # Then it told the pace it takes no more work
    assert steady.left


def two_sharing():
    """Two workers that have both stepped the controller: they share its limit."""
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    one, two = pace(control, clock), pace(control, clock)
    one.decide(Observation(finished=200, latencies_ms=[300.0]))
    two.decide(Observation(finished=200, latencies_ms=[300.0]))
    return control, clock, one, two


def test_pace_a_worker_that_stops_starting_keeps_what_it_still_holds_from_the_others():
    # Given two workers sharing the controller's limit
    control, clock, one, two = two_sharing()
    # When the first stops starting images with 5 still in flight
    one.leave(5)
    clock.sleep(15)
    busy = Observation(finished=200, latencies_ms=[300.0])
    alone = two.decide(busy)
    # Then the second takes the limit less those 5 (together they never go over it)
    assert "workers" not in alone.reason
    assert alone.in_flight == int(control.read().pace.limit) - 5
    # And once the first holds nothing, the whole limit
    one.leave(0)
    clock.sleep(15)
    assert two.decide(busy).in_flight == int(control.read().pace.limit)
    assert not control.read().pace.held


def test_pace_images_held_by_a_worker_no_longer_heard_of_count_no_more():
    # Given a worker that stopped starting with 5 in flight and was never heard of again
    control, clock, one, two = two_sharing()
    one.leave(5)
    # When the other steps more than one and a half refreshes later
    clock.sleep(30)
    decision = two.decide(Observation(finished=200, latencies_ms=[300.0]))
    # Then it has the whole limit (a worker that died holds nothing for long)
    assert decision.in_flight == int(control.read().pace.limit)


def test_pace_state_keeps_what_workers_hold_through_the_control_item():
    # Given a state in which a worker that stopped starting holds 5 images
    control, _, one, _ = two_sharing()
    one.leave(5)
    state = control.read().pace
    # When it is written as the control item stores it and read back
    again = PaceState.from_json(json.loads(json.dumps(state.to_json())))
    # Then the count and when it was told are kept; a state written before has none
    assert again == state and next(iter(again.held.values()))[0] == 5
    older = {k: v for k, v in state.to_json().items() if k != "held"}
    assert PaceState.from_json(older).held == {}


def test_pace_the_loop_tells_the_pace_what_it_still_holds_once_it_stops_starting():
    # Given an invocation whose images after the first wait until it is paused
    clock = testing.FakeClock()
    store = MemoryStore(clock=clock.now)
    store.put_new([testing.grid_id(i) for i in range(8)])
    release, lock, started = threading.Event(), threading.Lock(), []

    def gate(_image_id):
        with lock:
            started.append(_image_id)
            first = len(started) == 1
        if not first:
            release.wait(10)

    def script(_calls):
        with lock:
            waiting = len(started) > 1
        if not waiting:
            return PaceDecision(4, None, "steady")
        release.set()
        return PaceDecision(0, None, "paused by the operator", paused=True)

    steady = testing.Steady(script=script)
    deps = testing.index_deps(
        store, testing.Scripted({}, gate=gate), testing.Stream(), clock=clock, pace=steady
    )
    # When the operator pauses it with images in flight
    run_batch_index(index_settings(), deps)
    # Then it told the pace what it still held when it stopped starting, less as they
    # finished, and nothing at the end
    assert steady.held[0] >= 1
    assert steady.held == sorted(steady.held, reverse=True)
    assert steady.held[-1] == 0


def checkpoint_pace(control, clock, checkpoints, age=(1_000.0, 1_000.0)):
    controller = Controller(Tuning(max_limit=16, max_iterator_age_ms=60_000))
    return ControlledPace(
        controller,
        control,
        age if callable(age) else (lambda: age),
        clock,
        refresh_seconds=15,
        checkpoints=checkpoints,
    )


def test_pace_thrall_through_a_workers_records_lets_the_pass_go_on_at_once():
    # Given two workers reading thrall's checkpoints, the first with ten records waiting
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    checkpoint = {"s": 0}
    one = checkpoint_pace(control, clock, lambda: dict(checkpoint))
    two = checkpoint_pace(control, clock, lambda: dict(checkpoint))
    busy = {"finished": 10, "latencies_ms": [300.0]}
    one.decide(Observation(**busy))
    two.decide(Observation(**busy))
    for step in range(1, 5):
        clock.sleep(15)
        records = [("s", n, clock.t - 10 + n) for n in range(1, 11)] if step == 1 else []
        if step == 3:  # thrall has taken half of them, 26 s late (past the high mark)...
            checkpoint["s"] = 5
        if step == 4:  # ...and the rest, as the first worker reads at its next step
            checkpoint["s"] = 10
        first = one.decide(Observation(published=records, **busy))
        second = two.decide(Observation(**busy))
        if step == 3:
            assert first.in_flight == 0 and "26 s behind" in first.reason
    # Then neither goes on by the first's earlier reading: thrall is through what waited
    assert first.in_flight > 0 and "behind" not in first.reason
    assert second.in_flight > 0 and "behind" not in second.reason


@pytest.mark.parametrize(
    "failure",
    [
        LookupError("ResourceNotFoundException: Requested resource not found"),
        PermissionError("AccessDeniedException: not authorized to perform dynamodb:Scan"),
        TimeoutError("ProvisionedThroughputExceededException"),
        ValueError("lease 'x': checkpoint 'bogus' is neither a sequence number nor ..."),
    ],
)
def test_pace_an_unreadable_lease_table_falls_back_to_cloudwatch_counted(failure):
    # Given a lease table that cannot be read (missing, denied, throttled, malformed)
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)

    def broken():
        raise failure

    worker = checkpoint_pace(control, clock, broken)
    # When the worker decides, a refresh apart
    decisions = []
    for _ in range(3):
        decisions.append(worker.decide(Observation(finished=20, latencies_ms=[300.0])))
        clock.sleep(15)
    # Then the pass goes on (CloudWatch's low age lets work start), each step is counted, and
    # the reason says why, where `watch` shows it
    assert all(d.in_flight > 0 for d in decisions)
    assert worker.take_unread() == {"CheckpointsUnread": 3}
    assert worker.take_unread() == {}
    assert "checkpoints unreadable" in control.read().pace.reason


def test_pace_an_unreadable_cloudwatch_holds_then_takes_nothing():
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    readings = iter([(1_000.0, 1_000.0)])

    def cloudwatch():
        try:
            return next(readings)
        except StopIteration:
            raise ConnectionError("ThrottlingException: Rate exceeded") from None

    worker = ControlledPace(
        Controller(Tuning(max_limit=16, max_iterator_age_ms=60_000)),
        control,
        cloudwatch,
        clock,
        refresh_seconds=15,
    )
    worker.decide(Observation(finished=20, latencies_ms=[300.0]))
    clock.sleep(15)
    held = worker.decide(Observation(finished=20, latencies_ms=[300.0]))
    # Then it holds (work goes on) for a while...
    assert held.in_flight > 0 and "unreadable: holding" in held.reason
    for _ in range(25):
        clock.sleep(15)
        late = worker.decide(Observation())
    # ...and then takes nothing, as with no signal at all
    assert late.in_flight == 0 and "unreadable for" in late.reason
    assert worker.take_unread()["IteratorAgeUnread"] == 26


def test_pace_checkpoints_of_other_shards_never_override_a_high_cloudwatch_age():
    # Given CloudWatch at 300 s against a 60 s threshold, and a lease table whose moves are
    # on shards holding none of our records (another consumer's table, a reshard's parents)
    table = {"other": 0}
    age = (300_000.0, 290_000.0)
    with_table, clock = (
        checkpoint_pace(MemoryControl(), testing.FakeClock(tick_ms=0), lambda: dict(table), age),
        None,
    )
    clock = with_table._clock
    alone_clock = testing.FakeClock(tick_ms=0)
    alone = checkpoint_pace(MemoryControl(), alone_clock, None, age)
    for k in range(40):
        table["other"] += 100
        published = [("ours", 10 * k + n + 1, clock.t + n) for n in range(10)]
        seen = Observation(finished=10, latencies_ms=[300.0], published=published)
        ours = with_table.decide(seen)
        cloudwatch = alone.decide(Observation(finished=10, latencies_ms=[300.0]))
        # Then every decision is CloudWatch's own: nothing starts on their word ("0 s behind")
        assert (ours.in_flight, ours.rate_per_minute, ours.reason) == (
            cloudwatch.in_flight,
            cloudwatch.rate_per_minute,
            cloudwatch.reason,
        ), k
        clock.sleep(15)
        alone_clock.sleep(15)


def test_pace_an_invocation_hands_its_waiting_records_to_the_next():
    # Given an invocation that published a record a second for two minutes, thrall
    # checkpointing only the first half of them, and that then ended
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    checkpoint = {"s": 0}

    def worker():
        # CloudWatch has nothing yet: the checkpoints alone tell
        return checkpoint_pace(control, clock, lambda: dict(checkpoint), lambda: None)

    ended = worker()
    ended.decide(Observation(finished=10, latencies_ms=[300.0]))
    for k in range(12):
        clock.sleep(10)
        published = [("s", 10 * k + n + 1, clock.t - 10 + n) for n in range(10)]
        ended.decide(Observation(finished=10, latencies_ms=[300.0], published=published))
    checkpoint["s"] = 60
    clock.sleep(15)
    ended.decide(Observation(draining=True))
    ended.leave()
    state = control.read().pace
    waiting = state.handover.shards["s"].waiting
    assert waiting[0][0] == "61" and len(waiting) == 60
    # (kept as the control item stores it; a state written before has none)
    assert PaceState.from_json(json.loads(json.dumps(state.to_json()))) == state
    older = {k: v for k, v in state.to_json().items() if k != "handover"}
    assert PaceState.from_json(older).handover is None
    # When the next invocation starts and sees thrall's checkpoint move a minute later
    successor = worker()
    clock.sleep(30)
    successor.decide(Observation())
    checkpoint["s"] = 70
    clock.sleep(60)
    late = successor.decide(Observation())
    # Then it reads thrall as behind by the oldest record still waiting (71, ~2 minutes
    # old), over the threshold: it starts nothing, rather than reading it caught up
    assert late.in_flight == 0, late.reason
    assert control.read().pace.thrall.lag(clock.now().timestamp(), 600).seconds > 60


def test_pace_a_span_a_worker_joined_or_left_in_does_not_teach_the_passs_rate():
    # Given a worker alone that has learnt the pass's rate (200 a minute) over a few refreshes
    control, clock = MemoryControl(), testing.FakeClock(tick_ms=0)
    one = pace(control, clock)
    for _ in range(4):
        one.decide(Observation(finished=50, latencies_ms=[300.0]))
        clock.sleep(15)
    seen = control.read().pace.thrall.rate_seen
    assert seen == pytest.approx(200.0)
    # When a second worker joins, and the first decides on a span it ran alone for most of
    two = pace(control, clock)
    two.decide(Observation())
    clock.sleep(1)
    one.decide(Observation(finished=50, latencies_ms=[300.0]))
    # Then its count is not doubled into the pass's rate
    assert control.read().pace.thrall.rate_seen == seen
    # When both go on at half the rate each, the pass's rate is learnt again
    clock.sleep(15)
    two.decide(Observation(finished=25, latencies_ms=[300.0]))
    one.decide(Observation(finished=25, latencies_ms=[300.0]))
    both = control.read().pace.thrall.rate_seen
    assert both == pytest.approx(seen, rel=0.02)
    # When the second leaves, the first's next span (two workers, then one) is not halved
    two.leave()
    clock.sleep(15)
    one.decide(Observation(finished=40, latencies_ms=[300.0]))
    assert control.read().pace.thrall.rate_seen == both
