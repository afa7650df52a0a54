"""The pass simulator in small: the virtual clock, and a short pass under each kind of policy.

Not a benchmark (that is `python -m benchmarks pass`): these check that the
simulated world keeps working, with outcomes that do not depend on timing.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from devtools import sim_clock
from devtools.sim_clock import VirtualClock, watching
from devtools.sim_policies import Deployment, ours, seed
from devtools.sim_scenario import parse_scenario
from devtools.sim_world import World
from grid_reingest.domain.states import ProgressState

START = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = parse_scenario(
    {
        "name": "small",
        "images": 300,
        "minutes_max": 60,
        "grid": {"slots": 4, "service_seconds": 1.0, "queue": 16},
        "thrall": {"per_minute": 600},
    }
)
DEPLOYMENT = Deployment(
    in_flight=16,
    index_reserved=2,
    projection_reserved=20,
    check_in_flight=8,
    check_reserved=1,
    threshold_ms=60_000,
)


def test_virtual_clock_wakes_sleepers_in_time_order_without_real_waiting():
    # Given two threads sleeping an hour and a minute of simulated time
    clock = VirtualClock(START)
    woke: list[tuple[str, float]] = []

    def sleeper(name: str, seconds: float) -> None:
        clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    threads = [
        threading.Thread(target=sleeper, args=("hour", 3600.0)),
        threading.Thread(target=sleeper, args=("minute", 60.0)),
    ]
    for thread in threads:
        thread.start()
    # When the scheduler runs to the end of the second hour
    clock.run_until(7200)
    for thread in threads:
        thread.join(timeout=5)
    # Then each woke at its own simulated time, the shorter first
    assert woke == [("minute", 60.0), ("hour", 3600.0)]
    assert clock.monotonic() == 7200


def test_virtual_clock_does_not_move_while_a_thread_is_still_working():
    # Given a thread that works (without sleeping on the clock) between two sleeps
    clock = VirtualClock(START)
    seen: list[float] = []

    def worker() -> None:
        clock.sleep(10)
        before = clock.monotonic()
        sum(range(200_000))  # real work: no simulated time may pass meanwhile
        seen.append(clock.monotonic() - before)
        clock.sleep(10)
        seen.append(clock.monotonic())

    thread = threading.Thread(target=worker)
    thread.start()
    clock.call_at(15, lambda: None)  # another event falls inside the work
    clock.run_until(100)
    thread.join(timeout=5)
    # Then the work took no simulated time, and the second sleep ended 10 s after the first
    assert seen == [0.0, 20.0]


def test_virtual_clock_sees_an_idle_pool_worker_and_a_join_as_blocked(monkeypatch):
    # Given an idle pool worker, a sleeper, and a thread joining the sleeper (the waits it
    # reads from CPython's own frames, which change between versions)
    monkeypatch.setattr(sim_clock, "STUCK_AFTER_SECONDS", 10.0)
    clock = VirtualClock(START)
    pool = ThreadPoolExecutor(1)
    pool.submit(lambda: None).result()
    sleeper = threading.Thread(target=clock.sleep, args=(60.0,))
    sleeper.start()
    joiner = threading.Thread(target=sleeper.join)
    joiner.start()

    # When the scheduler runs on: time moves only once all of them are seen blocked
    clock.run_until(120)
    joiner.join(timeout=5)
    pool.shutdown()

    # Then the sleeper woke and its joiner with it
    assert clock.monotonic() == 120
    assert not joiner.is_alive()


def test_pass_sim_ours_finishes_a_small_pass_exactly_once():
    # Given a small Grid, thrall with headroom, and both workers as deployed
    world = World(SMALL, 1, reserved=DEPLOYMENT.projection_reserved)
    # When the pass runs
    result = world.run(ours(world, DEPLOYMENT))
    # Then every image was published once and verified, batch-check included
    assert result.finished
    assert world.thrall.published == SMALL.images
    assert world.memory.counts()[ProgressState.VERIFIED] == SMALL.images
    assert result.charged == 0
    # and the controller decided as it went, its limit above its start
    assert result.timeline
    assert max(limit for _, limit, _, _ in result.timeline) > 2


def test_pass_sim_the_seed_s_one_batch_policy_finishes_the_same_pass():
    # Given the same small world and the seed's policy at its nominal sizing
    world = World(SMALL, 1, invoked=False)
    # When the pass runs
    result = world.run(seed(world, 1.0, DEPLOYMENT))
    # Then every image was published once and verified, a batch per tick
    assert result.finished
    assert world.thrall.published == SMALL.images
    assert world.memory.counts()[ProgressState.VERIFIED] == SMALL.images


def test_pass_sim_a_worker_told_to_take_nothing_takes_nothing_and_is_billed_as_idle():
    # Given a world whose thrall shows no iterator-age data, and no checkpoints read
    # (the controller takes nothing)
    world = World(SMALL, 1)
    world.thrall.visible_points = lambda: []
    functions = ours(world, replace(DEPLOYMENT, checkpoints=False))
    # When ten minutes pass
    for function in functions:
        function.start()
    with watching():
        world.clock.run_until(600)
        for function in functions:
            function.enabled = False
        world.clock.run_until(1500, lambda: not any(f.running for f in functions))
    # Then nothing was claimed, and every batch-index invocation counted as idle
    assert world.memory.counts()[ProgressState.NOT_STARTED] == SMALL.images
    index = functions[0]
    assert index.invocations >= 9
    assert index.idle_invocations == index.invocations
    assert index.idle_seconds == index.wall_seconds


def test_virtual_clock_a_tiny_sleep_still_moves_time_on():
    # Given a clock on a 50 ms grid and a thread sleeping a picosecond ten times
    clock = VirtualClock(START, quantum=0.05)
    woke: list[float] = []

    def sleeper() -> None:
        for _ in range(10):
            clock.sleep(1e-12)
            woke.append(clock.monotonic())

    thread = threading.Thread(target=sleeper)
    thread.start()
    # When the scheduler runs for a second
    clock.run_until(1.0, lambda: len(woke) == 10)
    thread.join(timeout=5)
    # Then each sleep ended one step of the grid later, never at the same instant
    assert [round(t, 6) for t in woke] == [round(0.05 * (i + 1), 6) for i in range(10)]
