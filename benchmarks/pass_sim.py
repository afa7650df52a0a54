"""Whole passes, simulated: ours as PROD deploys it, against the seed's best sizing and today's.

Each scenario (a file under benchmarks/scenarios/, schema in docs/throughput.md)
runs the real batch-index and batch-check flows, controller and in-memory state
table on simulated time against a simulated Grid, thrall, stream and Lambda
(devtools/sim_*.py), under three policies (devtools/sim_policies.py):

- ours: both workers as PROD's cdk.json deploys them, started together;
- seed_best: the seed's one-batch policy at the best of batch sizes from 50% to
  100% of the nominal capacity in steps of 5% (swept on the first seed from the
  top down, until the share has fallen on two successive sizings; the winning
  sizing is reused on the others);
- today: the one-batch design with PROD's earlier values.

    python -m benchmarks pass                       every built-in scenario; a table
                                                    written into docs/benchmarks.md
    python -m benchmarks pass --json                the same as one JSON object
    python -m benchmarks pass --scenario FILE.json [--seeds N] --json
                                                    one scenario (exit 2 for a bad file)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from benchmarks.pass_report import PASS_IMAGES, report
from benchmarks.pass_score import best_share, cost, median_of, score, worst_of
from benchmarks.report import write_section
from devtools.sim_policies import Deployment, ours, seed, today
from devtools.sim_scenario import Scenario, ScenarioError, load_scenario
from devtools.sim_world import World
from grid_reingest.names import IMAGE_PROJECTION
from infra.config import load_stage_config
from infra.constants import MEMORY_MB

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
# seed_best's sizings: shares of the nominal capacity, 50% to 100% in steps of 5%.
SIZINGS = tuple(round(0.5 + 0.05 * k, 2) for k in range(11))
# The sweep stops once the share has fallen on this many successive sizings (Sweep).
SWEEP_FALLS = 2
POLICIES = ("ours", "seed_best", "today")
# A scaled pass lasts at least this long past its first disturbance (at nominal capacity).
SCALED_PAST_DISTURBANCE_MINUTES = 10.0
# Pools started at most, should a simulation process die.
POOL_TRIES = 3
USAGE_ERROR = 2


def deployment(stage: str = "PROD") -> Deployment:
    """What `stage` deploys (cdk.json, read and checked as the CDK app reads it)."""
    # cdk.json's context, as the CDK app reads it (without the CDK: no Node process).
    config = load_stage_config(json.loads(CDK_JSON.read_text())["context"], stage)
    return Deployment(
        in_flight=config.pass_in_flight,
        index_reserved=config.batch_index.reserved_concurrency,
        projection_reserved=config.projection_reserved_concurrency,
        check_in_flight=config.batch_check.max_in_flight or 1,
        check_reserved=config.batch_check.reserved_concurrency,
        threshold_ms=float(config.max_iterator_age_ms),
        checkpoints=config.thrall_checkpoint_table is not None,
    )


def builtins() -> list[Path]:
    """The built-in scenario files, by name."""
    return sorted(SCENARIOS.glob("*.json"))


# -- one pass (in a process of its own) ---------------------------------------------------


def run_one(job: tuple[str, int, str, float | None, float]) -> dict[str, Any]:
    """One scenario file, one seed, one policy (and the seed's sizing)."""
    path, seed_value, policy, share, scale = job
    scenario = scaled(load_scenario(path), scale)
    dep = deployment()
    started = time.monotonic()
    invoked = policy != "seed_best"
    world = World(scenario, seed_value, invoked=invoked, reserved=dep.projection_reserved)
    functions: Callable[[], list]
    if policy == "ours":
        functions = ours(world, dep)
    elif policy == "today":
        functions = today(world, dep)
    else:
        functions = seed(world, share or 1.0, dep)
    result = world.run(functions)
    m = score(result, dep.threshold_ms)
    if policy == "seed_best":
        m["sizing"] = share
    spent = cost(result, MEMORY_MB[IMAGE_PROJECTION] if invoked else 0)
    return {
        "path": path,
        "seed": seed_value,
        "policy": policy,
        "share": share,
        "m": m,
        "cost": spent,
        "per_minute": round(result.verified / max(result.pass_seconds / 60, 1e-9), 1),
        "seconds": round(time.monotonic() - started, 1),
        "finished": result.finished,
        "answers": result.answers,
        "failed_invocations": result.failed_invocations,
        "kinesis_rejected": result.kinesis_rejected,
        "own": result.own,
    }


def scaled(scenario: Scenario, scale: float) -> Scenario:
    """`scenario` with fewer images (a quick run); its timeline is kept. A scenario whose
    capacity changes keeps the images to last, at its nominal capacity, until
    `SCALED_PAST_DISTURBANCE_MINUTES` after its first disturbance (the whole file at
    most): a quick run still measures a recovery."""
    if scale == 1.0:
        return scenario
    from dataclasses import replace

    images = max(200, int(scenario.images * scale))
    if scenario.disturbances:
        lasting = scenario.disturbances[0] / 60 + SCALED_PAST_DISTURBANCE_MINUTES
        images = max(images, min(scenario.images, int(lasting * scenario.capacity_per_minute)))
    return replace(scenario, images=images)


# -- many passes --------------------------------------------------------------------------


def swept_enough(shares: list[float]) -> bool:
    """Whether a sweep from the top sizing down may stop: the share fell on the last two
    sizings (`shares` in the order run). Below the sizing where the seed's batches
    first fit their minute, a batch a tick carries fewer images the smaller it is, so
    the share only falls further (docs/throughput.md, "Policies")."""
    return len(shares) >= SWEEP_FALLS + 1 and all(
        later < earlier for earlier, later in itertools.pairwise(shares[-SWEEP_FALLS - 1 :])
    )


class Sweep:
    """seed_best's sizings for one scenario, from the top down, until `swept_enough`."""

    def __init__(self, path: str, seed_value: int, scale: float) -> None:
        self.path, self.seed, self.scale = path, seed_value, scale
        self.results: dict[float, dict[str, Any]] = {}
        self.submitted = 0  # sizings handed out, from the top

    def order(self) -> list[float]:
        """The sizings, from the top down."""
        return sorted(SIZINGS, reverse=True)

    def run(self) -> list[dict[str, Any]]:
        """The sizings that count, from the top: up to where the sweep may stop (one run
        ahead of that point does not count, so the winner does not depend on timing)."""
        counted: list[dict[str, Any]] = []
        for sizing in self.order():
            if sizing not in self.results:
                return counted
            counted.append(self.results[sizing])
            if swept_enough([r["m"]["throughput_share"] for r in counted]):
                return counted
        return counted

    @property
    def over(self) -> bool:
        """Every sizing that counts has run."""
        counted = self.run()
        return len(counted) == len(SIZINGS) or swept_enough(
            [r["m"]["throughput_share"] for r in counted]
        )

    def next_job(self) -> tuple | None:
        """The next sizing down, if the sweep may still need it."""
        if self.over or self.submitted >= len(SIZINGS):
            return None
        sizing = self.order()[self.submitted]
        self.submitted += 1
        return (self.path, self.seed, "seed_best", sizing, self.scale)

    def best(self) -> dict[str, Any]:
        """The winner: the highest share, then the least time over the threshold."""
        return max(
            self.run(),
            key=lambda r: (r["m"]["throughput_share"], -r["m"]["over_threshold_share"]),
        )


def run_scenarios(
    paths: list[Path], seeds: int, scale: float = 1.0, workers: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each scenario under each policy and seed: seed_best's sizing swept on the first seed,
    from the top down (`Sweep`), the winner then run on the other seeds.

    The passes share one pool: a sweep's next sizing goes first whenever a process is
    free, the policies' passes fill the rest (the longest first, so the processes end
    together)."""
    loaded = {str(p): load_scenario(p) for p in paths}
    seed_values = {path: [s.seed + k for k in range(seeds)] for path, s in loaded.items()}
    sweeps = {path: Sweep(path, values[0], scale) for path, values in seed_values.items()}
    others = [
        (path, value, policy, None, scale)
        for path, values in seed_values.items()
        for value in values
        for policy in ("ours", "today")
    ]
    others.sort(key=lambda job: -loaded[job[0]].images / loaded[job[0]].capacity_per_minute)
    runs = run_pool(sweeps, others, seed_values, workers or min(2, os.cpu_count() or 1))
    out = {}
    for path, scenario in loaded.items():
        mine = [r for r in runs if r["path"] == path]
        best = sweeps[path].best()
        by_policy = {
            "ours": [r for r in mine if r["policy"] == "ours"],
            "today": [r for r in mine if r["policy"] == "today"],
            "seed_best": [best]
            + [r for r in mine if r["policy"] == "seed_best" and r["seed"] != seed_values[path][0]],
        }
        out[path] = {
            "scenario": scenario,
            "best_share": best_share(scaled(scenario, scale)),
            "seeds": seed_values[path],
            "runs": by_policy,
            "sizings": [r["share"] for r in sweeps[path].run()],
        }
    return out


def run_pool(
    sweeps: dict[str, Sweep],
    others: list[tuple],
    seed_values: dict[str, list[int]],
    workers: int,
) -> list[dict[str, Any]]:
    """The sweeps, their winners on the other seeds and `others`, `workers` passes at a time;
    a pool whose process dies is started again with the passes that had not finished."""
    done: dict[tuple, dict[str, Any]] = {}
    queued = list(others)
    followed: set[str] = set()  # sweeps whose winner is queued for the other seeds
    for _ in range(POOL_TRIES):
        running: dict[Any, tuple] = {}
        with ProcessPoolExecutor(workers) as pool:
            while True:
                while len(running) < workers:
                    job = next_job(sweeps, queued, running)
                    if job is None:
                        break
                    running[pool.submit(run_one, job)] = job
                if not running:
                    return list(done.values())
                finished = next(as_completed(running))
                try:
                    result = finished.result()
                except BrokenProcessPool:
                    break
                job = running.pop(finished)
                done[job] = result
                path = job[0]
                sweep = sweeps[path]
                if is_sweep(job, sweeps):
                    sweep.results[job[3]] = result
                    if sweep.over and path not in followed:
                        followed.add(path)
                        winner = sweep.best()["share"]
                        queued[:0] = [
                            (path, v, "seed_best", winner, job[4]) for v in seed_values[path][1:]
                        ]
        queued[:0] = list(running.values())
        print(f"re-running {len(running)} passes after a process died", file=sys.stderr)
    raise RuntimeError(f"simulation processes kept dying; passes not run: {queued}")


def is_sweep(job: tuple, sweeps: dict[str, Sweep]) -> bool:
    """Whether `job` is one of a sweep's sizings (not the winner on another seed)."""
    return job[2] == "seed_best" and job[1] == sweeps[job[0]].seed


def next_job(
    sweeps: dict[str, Sweep], queued: list[tuple], running: dict[Any, tuple]
) -> tuple | None:
    """A sweep's next sizing first (a sweep one pass at a time while other passes wait; one
    ahead when nothing else would run), else the next queued pass."""
    busy = {job[0] for job in running.values() if is_sweep(job, sweeps)}
    for path, sweep in sweeps.items():
        if path not in busy:
            job = sweep.next_job()
            if job is not None:
                return job
    if queued:
        return queued.pop(0)
    for sweep in sweeps.values():
        job = sweep.next_job()
        if job is not None:
            return job
    return None


def scenario_json(found: dict[str, Any]) -> dict[str, Any]:
    """One scenario's result in the shape `--scenario FILE --json` prints."""
    scenario: Scenario = found["scenario"]
    runs = found["runs"]
    median = {policy: median_of([r["m"] for r in runs[policy]]) for policy in POLICIES}
    median["seed_best"]["sizing"] = runs["seed_best"][0]["share"]
    median["seed_best"]["sizings_run"] = found["sizings"]
    return {
        "scenario": scenario.name,
        "capacity_per_minute": round(scenario.capacity_per_minute, 1),
        "seeds": found["seeds"],
        "median": median,
        "worst": {"ours": worst_of([r["m"] for r in runs["ours"]])},
    }


def all_json(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every built-in scenario's medians, in the bare `--json` shape, and the PROD-like ETA."""
    scenarios = {f["scenario"].name: scenario_json(f)["median"] for f in found.values()}
    prod = next((f for f in found.values() if "prod-like-2s" in f["scenario"].name), None)
    out: dict[str, Any] = {"scenarios": scenarios}
    if prod is not None:
        per_minute = sorted(r["per_minute"] for r in prod["runs"]["ours"])[
            len(prod["runs"]["ours"]) // 2
        ]
        out["prod_like"] = {
            "images_per_minute": per_minute,
            "eta_40m_days": round(PASS_IMAGES / per_minute / 1440, 1),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    """Run scenarios; print JSON, or a table written into docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks pass", description=__doc__)
    parser.add_argument("--scenario", metavar="FILE", help="one scenario file (default: built-ins)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per scenario (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object, write nothing")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every pass (quick runs)")
    parser.add_argument("--workers", type=int, help="simulation processes (default 2)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be 1 or more")
    paths = [Path(args.scenario)] if args.scenario else builtins()
    try:
        for path in paths:
            load_scenario(path)
    except ScenarioError as error:
        print(f"python -m benchmarks pass: {error}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
    started = time.monotonic()
    found = run_scenarios(paths, args.seeds, args.scale, args.workers)
    took = time.monotonic() - started
    if args.json:
        if args.scenario:
            print(json.dumps(scenario_json(next(iter(found.values())))))
        else:
            print(json.dumps(all_json(found)))
        return
    text = report(found, took, args.seeds, deployment())
    print(text)
    if args.scale == 1.0 and not args.scenario:
        write_section("Pass simulation", text)
    else:
        print(
            "(a scaled or single-scenario run: docs/benchmarks.md left as it was)", file=sys.stderr
        )


if __name__ == "__main__":
    main()
