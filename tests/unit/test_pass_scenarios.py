"""The pass benchmark's scenario files, and what its numbers rest on: the same seed gives the
same pass however busy the machine is, and batch-check runs beside batch-index exactly once.

The passes here are small (a few hundred images, seconds each) and marked `simulation`.
"""

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import pass_sim
from benchmarks.pass_score import best_share, score
from devtools.sim_policies import ours
from devtools.sim_scenario import ScenarioError, load_scenario, parse_scenario
from devtools.sim_world import PassResult, World
from grid_reingest.domain.states import ProgressState as S

from .test_pass_sim import DEPLOYMENT, SMALL

# -- the schema ---------------------------------------------------------------------------


def write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"name": "x", "grid": {"slotz": 4}}, "grid.slotz"),
        ({"name": "x", "speed": 2}, "speed"),
        ({"name": "x", "grid": {"service_sigma": -0.5}}, "grid.service_sigma"),
        ({"name": "x", "thrall": {"shards": 0}}, "thrall.shards"),
        ({"name": "x", "grid": {"changes": [{"at_minute": 3, "slots": "many"}]}}, "slots"),
        ({"name": "x", "images": 2.5}, "images"),
    ],
)
def test_a_bad_scenario_file_exits_2_naming_the_key(tmp_path, capsys, data, named):
    # Given a scenario file with an unknown key or a value out of range
    path = write(tmp_path, data)
    # When the benchmark is asked to run it
    with pytest.raises(SystemExit) as exited:
        pass_sim.main(["--scenario", path, "--json"])
    # Then it exits 2 before running anything, naming the file and the key
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert path in err and named in err


def test_a_file_that_is_not_json_is_refused_with_its_name(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",')
    with pytest.raises(ScenarioError, match=r"broken\.json"):
        load_scenario(path)


def test_every_key_has_a_default_so_a_file_gives_only_what_it_changes():
    # Given a file that names only a scenario and the Grid's slots
    scenario = parse_scenario({"name": "few", "grid": {"slots": 12}})
    # Then the rest is the documented defaults
    assert scenario.grid.slots == 12
    assert scenario.images > 0 and scenario.grid.service_seconds > 0
    assert scenario.thrall.per_minute > 0 and scenario.kinesis.shard_records_per_second > 0


def test_every_built_in_scenario_loads_and_is_named_tuning_or_holdout():
    names = [load_scenario(path).name for path in pass_sim.builtins()]
    assert names and all(n.startswith(("tuning-", "holdout-")) for n in names)
    assert {p.stem for p in pass_sim.builtins()} == set(names)


# -- repeatability ------------------------------------------------------------------------


def small_pass() -> tuple[dict, list[float], list]:
    world = World(SMALL, 7, reserved=DEPLOYMENT.projection_reserved)
    result = world.run(ours(world, DEPLOYMENT))
    return score(result, DEPLOYMENT.threshold_ms), result.publish_times, result.timeline


@pytest.mark.simulation
def test_the_same_seed_gives_the_same_pass_on_a_quiet_and_a_loaded_machine():
    # Given one pass on the machine as it is
    quiet = small_pass()
    # When the same scenario and seed run again while a process keeps a core busy
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = small_pass()
    finally:
        busy.kill()
        busy.wait()
    # Then every figure, every publish time and every decision is the same
    assert loaded[0] == quiet[0]
    assert loaded[1] == quiet[1]
    assert loaded[2] == quiet[2]


# -- checking while indexing --------------------------------------------------------------


@pytest.mark.simulation
@pytest.mark.parametrize("check_reserved", [1, 2])
def test_batch_check_runs_beside_batch_index_and_verifies_each_image_exactly_once(check_reserved):
    # Given a pass long enough that batch-index is still enqueueing once the first images
    # are old enough to check, on the atomic in-memory store, every transition recorded
    scenario = replace(SMALL, name="beside", images=600)
    world = World(scenario, 3, reserved=DEPLOYMENT.projection_reserved)
    applied: list[tuple[float, str, S, str]] = []
    apply_one = world.memory._apply_one

    def recording(transition):
        done = apply_one(transition)
        if done:
            at = world.clock.monotonic()
            applied.append((at, transition.id, transition.new, transition.invocation or ""))
        return done

    world.memory._apply_one = recording
    # When both workers run as deployed, batch-check one or two invocations at once
    result = world.run(ours(world, replace(DEPLOYMENT, check_reserved=check_reserved)))
    # Then every image was verified once and published once
    assert result.finished and result.charged == 0
    verified = Counter(i for _, i, state, _ in applied if state is S.VERIFIED)
    assert len(verified) == scenario.images and set(verified.values()) == {1}
    assert world.thrall.published == scenario.images
    # and batch-check verified images before batch-index had enqueued its last
    last_enqueued = max(t for t, _, state, _ in applied if state is S.ENQUEUED)
    first_verified = min(t for t, _, state, _ in applied if state is S.VERIFIED)
    assert first_verified < last_enqueued
    # and, allowed two, two batch-check invocations verified images over the same minutes
    spans: dict[str, list[float]] = {}
    for t, _, state, invocation in applied:
        if state is S.VERIFIED:
            spans.setdefault(invocation, []).append(t)
    overlapping = [
        (a, b)
        for a in spans
        for b in spans
        if a < b and min(spans[a]) < max(spans[b]) and min(spans[b]) < max(spans[a])
    ]
    assert bool(overlapping) is (check_reserved == 2)


# -- the sweep, the recovery and quick runs --------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "stops"),
    [
        ([0.60, 0.70, 0.80], False),  # still rising from the top: the best may be lower
        ([0.60, 0.80, 0.75], False),  # fell once
        ([0.60, 0.80, 0.75, 0.70], True),  # fell twice running
        ([0.80, 0.75, 0.75, 0.70], False),  # a level step is no fall
    ],
)
def test_seed_best_s_sweep_stops_once_the_share_has_fallen_on_two_successive_sizings(shares, stops):
    assert pass_sim.swept_enough(shares) is stops


def result_with(scenario, publish_times, index_seconds):
    """A pass that published at `publish_times` and whose index part ended at `index_seconds`."""
    zero = ("index_gb_seconds", "check_gb_seconds", "idle_gb_seconds", "projection_seconds")
    counts = ("charged", "own", "invocations", "failed_invocations", "throttled_ticks", "steps")
    return PassResult(
        scenario,
        1,
        True,
        index_seconds,
        index_seconds,
        len(publish_times),
        len(publish_times),
        ages=[],
        publish_times=publish_times,
        answers={},
        kinesis_rejected=0,
        **dict.fromkeys(zero, 0.0),
        **dict.fromkeys(counts, 0),
    )


def test_the_best_share_is_a_pass_at_the_capacity_in_force_all_along():
    # Given 9,000 images on a Grid of 600/min that drops to 300/min for minutes 10-20
    changing = {
        "images": 9000,
        "grid": {
            "slots": 10,
            "service_seconds": 1.0,
            "changes": [{"at_minute": 10, "slots": 5}, {"at_minute": 20, "slots": 10}],
        },
        "thrall": {"per_minute": 6000},
    }
    # Then the best any pass can do takes 20 minutes: 9,000 / 20 / 600
    assert best_share(parse_scenario(changing)) == 0.75
    # and where capacity is steady, the whole of it
    assert best_share(parse_scenario({"images": 9000, "thrall": {"per_minute": 6000}})) == 1.0


def test_recovery_is_the_slowest_return_to_the_capacity_in_force_after_each_change():
    # Given a Grid of 10 slots x 1 s (600/min) that drops to 5 slots at minute 10 and
    # comes back at minute 20, and a pass publishing 600/min, 300/min from minute 12
    # (two minutes to follow the drop) and 600/min again from minute 23 (three minutes)
    scenario = parse_scenario(
        {
            "grid": {
                "slots": 10,
                "service_seconds": 1.0,
                "changes": [{"at_minute": 10, "slots": 5}, {"at_minute": 20, "slots": 10}],
            },
            "thrall": {"per_minute": 6000},
        }
    )
    rates = [(0, 10, 600), (10, 12, 100), (12, 20, 300), (20, 23, 300), (23, 30, 600)]
    times = [a * 60 + k * 60 / rate for a, b, rate in rates for k in range(int((b - a) * rate))]
    # When it is scored
    m = score(result_with(scenario, times, 30 * 60), DEPLOYMENT.threshold_ms)
    # Then the recovery is the slower of the two: the first minute at 80% of 600/min
    # begins 2.7 minutes after the return (the drop's took 1.7)
    assert m["recovery_minutes"] == 2.7


def test_a_quick_run_of_a_file_whose_capacity_changes_still_reaches_the_change():
    # Given a file whose Grid drops at minute 8 (600/min nominal, 16,000 images)
    scenario = load_scenario(pass_sim.SCENARIOS / "tuning-capacity-drop.json")
    # When it is shrunk to a tenth
    quick = pass_sim.scaled(scenario, 0.1)
    # Then the pass has the images to last 10 minutes past the drop at nominal capacity
    assert quick.images == 18 * 600
    # and a file whose capacity never changes is shrunk as asked
    steady = load_scenario(pass_sim.SCENARIOS / "tuning-grid-2s.json")
    assert pass_sim.scaled(steady, 0.1).images == steady.images // 10
