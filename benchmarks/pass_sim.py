"""Whole passes, simulated: ours as PROD deploys it, against the seed's best sizing and today's.

Each scenario (a file under benchmarks/scenarios/, schema in docs/throughput.md)
runs the real batch-index and batch-check flows, controller and in-memory state
table on simulated time against a simulated Grid, thrall, stream and Lambda
(devtools/sim_*.py), under three policies (devtools/sim_policies.py):

- ours: both workers as PROD's cdk.json deploys them, started together;
- seed_best: the seed's one-batch policy at the best of batch sizes from 50% to
  100% of the nominal capacity in steps of 5% (swept on the first seed; the
  winning sizing is reused on the others);
- today: the one-batch design with PROD's earlier values.

    python -m benchmarks pass                       every built-in scenario; a table
                                                    written into docs/benchmarks.md
    python -m benchmarks pass --json                the same as one JSON object
    python -m benchmarks pass --scenario FILE.json [--seeds N] --json
                                                    one scenario (exit 2 for a bad file)
"""

from __future__ import annotations

import argparse
import contextlib
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
from benchmarks.pass_score import cost, median_of, score, worst_of
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
POLICIES = ("ours", "seed_best", "today")
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
    }


def scaled(scenario: Scenario, scale: float) -> Scenario:
    """`scenario` with fewer images (a quick run); its timeline is kept."""
    if scale == 1.0:
        return scenario
    from dataclasses import replace

    return replace(scenario, images=max(200, int(scenario.images * scale)))


# -- many passes --------------------------------------------------------------------------


def run_jobs(jobs: list[tuple], workers: int | None) -> list[dict[str, Any]]:
    """Every job in a pool of processes; a pool whose process dies is started again."""
    done: dict[tuple, dict[str, Any]] = {}
    pending = list(jobs)
    for _ in range(POOL_TRIES):
        with ProcessPoolExecutor(workers or min(2, os.cpu_count() or 1)) as pool:
            futures = {pool.submit(run_one, job): job for job in pending}
            for future in as_completed(futures):
                with contextlib.suppress(BrokenProcessPool):
                    done[futures[future]] = future.result()
        pending = [job for job in jobs if job not in done]
        if not pending:
            return [done[job] for job in jobs]
        print(f"re-running {len(pending)} passes after a process died", file=sys.stderr)
    raise RuntimeError(f"simulation processes kept dying; passes not run: {pending}")


def run_scenarios(
    paths: list[Path], seeds: int, scale: float = 1.0, workers: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each scenario under each policy and seed: seed_best's sizing swept on the first seed."""
    loaded = {str(p): load_scenario(p) for p in paths}
    seed_values = {path: [s.seed + k for k in range(seeds)] for path, s in loaded.items()}
    sweep = [
        (path, values[0], "seed_best", share, scale)
        for path, values in seed_values.items()
        for share in SIZINGS
    ]
    jobs = sweep + [
        (path, value, policy, None, scale)
        for path, values in seed_values.items()
        for value in values
        for policy in ("ours", "today")
    ]
    # The longest passes first: the processes end together.
    jobs.sort(key=lambda job: -loaded[job[0]].images / loaded[job[0]].capacity_per_minute)
    runs = run_jobs(jobs, workers)
    best = {}
    for path in loaded:
        swept = [r for r in runs if r["path"] == path and r["policy"] == "seed_best"]
        best[path] = max(
            swept,
            key=lambda r: (r["m"]["throughput_share"], -r["m"]["over_threshold_share"]),
        )
    more = [
        (path, value, "seed_best", best[path]["share"], scale)
        for path, values in seed_values.items()
        for value in values[1:]
    ]
    runs += run_jobs(more, workers) if more else []
    out = {}
    for path, scenario in loaded.items():
        mine = [r for r in runs if r["path"] == path]
        by_policy = {
            "ours": [r for r in mine if r["policy"] == "ours"],
            "today": [r for r in mine if r["policy"] == "today"],
            "seed_best": [best[path]]
            + [r for r in mine if r["policy"] == "seed_best" and r["seed"] != seed_values[path][0]],
        }
        out[path] = {"scenario": scenario, "seeds": seed_values[path], "runs": by_policy}
    return out


def scenario_json(found: dict[str, Any]) -> dict[str, Any]:
    """One scenario's result in the shape `--scenario FILE --json` prints."""
    scenario: Scenario = found["scenario"]
    runs = found["runs"]
    median = {policy: median_of([r["m"] for r in runs[policy]]) for policy in POLICIES}
    median["seed_best"]["sizing"] = runs["seed_best"][0]["share"]
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
