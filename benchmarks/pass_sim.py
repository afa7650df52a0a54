"""A whole pass, simulated: the paced worker against the seed's and today's policies.

Each scenario runs the real batch-index (flows, ControlledPace, Controller,
the in-memory state table) on simulated time against a Grid of finite
capacity and a thrall consuming at a set rate (devtools/sim_world.py), under
three policies on the same world:

- ours: the paced worker, a keep-alive every minute;
- seed: the seed's policy as a careful operator would tune it — one batch per
  one-minute tick sized to the scenario's nominal capacity, taken only while
  the 5-minute maximum iterator age is under the threshold;
- today: today's design with PROD's cdk.json values (batch, schedule,
  GRID_CONCURRENCY, reserved concurrency) and domain/backpressure's batch cut.

    python -m benchmarks pass           (table, written into docs/benchmarks.md)
    python -m benchmarks pass --json    (one JSON object)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import machine, table, write_section
from devtools.sim_lambda import SimLambda
from devtools.sim_world import PassResult, World, WorldSpec, fixed_batch, paced
from grid_reingest.domain.controller import Tuning
from grid_reingest.names import BATCH_INDEX, IMAGE_PROJECTION
from infra.constants import MEMORY_MB

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
PROD = json.loads(CDK_JSON.read_text())["context"]["stages"]["PROD"]
THRESHOLD_MS = float(PROD["maxIteratorAgeMs"])
# The controller's deployed ceiling on images in flight (PROD's batchIndex.maxInFlight).
MAX_IN_FLIGHT = int(PROD["batchIndex"]["maxInFlight"])
# Today's design: the one-batch worker with PROD's cdk.json before continuous
# workers (500 ids every 5 minutes, GRID_CONCURRENCY, 2 invocations at most),
# and its batch cut: a full batch while the 5-minute maximum age is under half
# the threshold, less the closer it gets (a tenth at least), none above it.
TODAY_BATCH = 500
TODAY_EVERY_MINUTES = 5
TODAY_RESERVED = 2
TODAY_EASY_SHARE = 0.5
TODAY_SMALLEST_SHARE = 0.1
# Throughput counts as recovered once a minute's images reach this share of nominal.
RECOVERED_SHARE = 0.8
PASS_IMAGES = 40_000_000
# Pools started at most, should a simulation process die.
POOL_TRIES = 3
MINUTE = 60.0


@dataclass(frozen=True)
class Scenario:
    """A world, and when the Grid or thrall come back from a disturbance (None: no disturbance)."""

    spec: WorldSpec
    returns_at: float | None = None


def scenarios(scale: float = 1.0) -> dict[str, Scenario]:
    """The four scenarios; `scale` shrinks the passes (for a quick run)."""

    def n(images: int) -> int:
        return max(200, int(images * scale))

    drop, back = 8 * MINUTE, 18 * MINUTE
    pause, resume = 8 * MINUTE, 13 * MINUTE
    return {
        "grid_bound": Scenario(WorldSpec(n(12_000), loader_slots=4, thrall_per_minute=900)),
        "thrall_bound": Scenario(WorldSpec(n(12_000), loader_slots=3, thrall_per_minute=200)),
        "capacity_drop": Scenario(
            WorldSpec(
                n(15_000),
                loader_slots=4,
                thrall_per_minute=900,
                events=((drop, "loader_slots", 2), (back, "loader_slots", 4)),
            ),
            returns_at=back,
        ),
        "thrall_pause": Scenario(
            WorldSpec(
                n(12_000),
                loader_slots=4,
                thrall_per_minute=900,
                events=((pause, "thrall_paused", 1), (resume, "thrall_paused", 0)),
            ),
            returns_at=resume,
        ),
    }


def prod_like(scale: float = 1.0) -> Scenario:
    """A PROD-like Grid: 3 image-loader instances' worth, about 1,200 images a minute."""
    return Scenario(
        WorldSpec(max(400, int(24_000 * scale)), loader_slots=8, thrall_per_minute=2_400)
    )


# -- policies ---------------------------------------------------------------------


def tuning() -> Tuning:
    """The controller as deployed."""
    return Tuning(max_limit=MAX_IN_FLIGHT, max_iterator_age_ms=THRESHOLD_MS)


def ours(world: World) -> list[SimLambda]:
    """The paced worker as PROD deploys it: the continuous flow and the controller, a
    keep-alive a minute, up to batchIndex.reservedConcurrency invocations at once (they
    overlap, and share the controller's limit and rate)."""
    reserved = int(PROD["batchIndex"]["reservedConcurrency"])
    return paced(world, tuning(), memory_mb=MEMORY_MB[BATCH_INDEX], reserved=reserved)


def ours_single(world: World) -> list[SimLambda]:
    """The paced worker, one invocation at a time (reserved concurrency 1, as TEST)."""
    return paced(world, tuning(), memory_mb=MEMORY_MB[BATCH_INDEX])


def seed_policy(world: World) -> list[SimLambda]:
    """One batch a minute sized to the nominal capacity, gated on/off by the 5-minute maximum."""
    spec = world.spec
    batch = int(spec.nominal_per_minute)
    # Enough in flight to keep every loader slot busy while others wait for the data services.
    per_image = spec.loader_base_seconds + spec.data_base_seconds
    concurrency = math.ceil(spec.loader_slots * per_image / spec.loader_base_seconds) + 1

    def gate(age_ms: float | None) -> int:
        return 0 if age_ms is None or age_ms >= THRESHOLD_MS else batch

    return fixed_batch(
        world,
        every_seconds=MINUTE,
        concurrency=concurrency,
        gate=gate,
        memory_mb=MEMORY_MB[BATCH_INDEX],
    )


def today_batch(age_ms: float | None, batch: int = TODAY_BATCH) -> int:
    """Today's batch for a 5-minute maximum iterator age (none without data)."""
    if age_ms is None or age_ms > THRESHOLD_MS:
        return 0
    easy = THRESHOLD_MS * TODAY_EASY_SHARE
    if age_ms <= easy:
        return batch
    share = max(TODAY_SMALLEST_SHARE, (THRESHOLD_MS - age_ms) / (THRESHOLD_MS - easy))
    return max(1, int(batch * share))


def today(world: World) -> list[SimLambda]:
    """Today's design: a batch per 5-minute tick, GRID_CONCURRENCY, the back-pressure cut."""
    return fixed_batch(
        world,
        every_seconds=TODAY_EVERY_MINUTES * MINUTE,
        concurrency=int(PROD["gridConcurrency"]),
        gate=today_batch,
        memory_mb=MEMORY_MB[BATCH_INDEX],
        reserved=TODAY_RESERVED,
    )


POLICIES: dict[str, Callable[[World], list[SimLambda]]] = {
    "ours": ours,
    "seed": seed_policy,
    "today": today,
    "ours_single": ours_single,
}
# The policies of the JSON; the others are rows of the table only, in these scenarios.
SCORED = ("ours", "seed", "today")
EXTRA_SCENARIOS = ("grid_bound", "thrall_bound", "prod_like")

# -- scoring -------------------------------------------------------------------------


def score(scenario: Scenario, result: PassResult) -> dict[str, Any]:
    """One pass as the issue's M: throughput share, time over the threshold, and the rest."""
    spec = scenario.spec
    minutes = result.duration_seconds / MINUTE
    per_minute = result.images / minutes if minutes else 0.0
    running = [(t, age) for t, age in result.ages if t <= result.duration_seconds]
    paused = _paused_spans(spec)
    counted = [age for t, age in running if not any(a <= t < b for a, b in paused)]
    over = sum(1 for age in counted if age * 1000 > spec.threshold_ms)
    return {
        "throughput_share": round(per_minute / spec.nominal_per_minute, 3),
        "over_threshold_share": round(over / len(counted), 3) if counted else 0.0,
        "peak_iterator_age_s": round(max((age for _, age in running), default=0.0), 1),
        "overload_failures": result.overload_failures,
        "recovery_minutes": _recovery(scenario, result),
        "images": result.images,
    }


def _paused_spans(spec: WorldSpec) -> list[tuple[float, float]]:
    spans, started = [], None
    for when, what, value in sorted(spec.events):
        if what == "thrall_paused" and value and started is None:
            started = when
        elif what == "thrall_paused" and not value and started is not None:
            spans.append((started, when))
            started = None
    return spans


def _recovery(scenario: Scenario, result: PassResult) -> float | None:
    """Minutes from the return of capacity until a minute's images reach 80% of nominal."""
    if scenario.returns_at is None:
        return None
    wanted = RECOVERED_SHARE * scenario.spec.nominal_per_minute
    times = sorted(result.publish_times)
    start = scenario.returns_at
    t = start
    while t + MINUTE <= result.duration_seconds:
        count = _count_between(times, t, t + MINUTE)
        if count >= wanted:
            return round((t - start) / MINUTE, 1)
        t += 5.0
    return round((result.duration_seconds - start) / MINUTE, 1)  # never: the rest of the pass


def _count_between(times: list[float], lo: float, hi: float) -> int:
    from bisect import bisect_left

    return bisect_left(times, hi) - bisect_left(times, lo)


def cost(result: PassResult) -> dict[str, float]:
    """Lambda GB-seconds per 1,000 images: batch-index's wall time and image-projection's;
    and of batch-index's, the invocations that took no image (waiting, told to take nothing)."""
    per = 1000 / max(1, result.images)
    index = result.index_gb_seconds * per
    projection = result.projection_seconds * MEMORY_MB[IMAGE_PROJECTION] / 1024 * per
    idle = result.idle_gb_seconds * per
    return {"index": round(index, 1), "projection": round(projection, 1), "idle": round(idle, 1)}


# -- running -------------------------------------------------------------------------


def run_one(job: tuple[str, str, float]) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """One scenario under one policy (in a process of its own)."""
    name, policy, scale = job
    scenario = prod_like(scale) if name == "prod_like" else scenarios(scale)[name]
    started = time.monotonic()
    world = World(scenario.spec)
    result = world.run(POLICIES[policy](world))
    extra = {
        "cost": cost(result),
        "seconds": round(time.monotonic() - started, 1),
        "finished": result.finished,
        "minutes": round(result.duration_seconds / MINUTE, 1),
        "per_minute": round(result.images / (result.duration_seconds / MINUTE), 1),
        "answers": result.answers,
        "invocations": result.invocations,
    }
    return name, policy, score(scenario, result), extra


def run_all(scale: float = 1.0, workers: int | None = None) -> tuple[dict[str, Any], dict]:
    """Every scenario under every policy, and ours at a PROD-like Grid."""
    jobs = [("prod_like", "ours", scale)]
    jobs += [(name, policy, scale) for name in scenarios(scale) for policy in SCORED]
    jobs += [
        (name, policy, scale)
        for name in EXTRA_SCENARIOS
        for policy in POLICIES
        if policy not in SCORED
    ]
    # The longest passes first: two processes end together.
    jobs.sort(key=lambda job: job[0] != "thrall_bound")
    found: dict[str, dict[str, dict[str, Any]]] = {}
    extras: dict[tuple[str, str], dict[str, Any]] = {}
    pending = list(jobs)
    for _ in range(POOL_TRIES):
        # A simulation process that dies takes the pool with it: the passes it
        # had not finished run again in a new pool (a pass does not depend on
        # which process runs it).
        with ProcessPoolExecutor(workers or min(2, os.cpu_count() or 1)) as pool:
            futures = {pool.submit(run_one, job): job for job in pending}
            for future in as_completed(futures):
                with contextlib.suppress(BrokenProcessPool):
                    name, policy, m, extra = future.result()
                    found.setdefault(name, {})[policy] = m
                    extras[(name, policy)] = {**extra, "m": m}
        pending = [job for job in jobs if (job[0], job[1]) not in extras]
        if not pending:
            break
        print(f"re-running {len(pending)} passes after a process died", file=sys.stderr)
    if pending:
        raise RuntimeError(f"simulation processes kept dying; passes not run: {pending}")
    prod = extras[("prod_like", "ours")]
    out = {
        "scenarios": {
            name: {policy: found[name][policy] for policy in SCORED} for name in scenarios(scale)
        },
        "prod_like": {
            "images_per_minute": prod["per_minute"],
            "eta_40m_days": round(PASS_IMAGES / prod["per_minute"] / 1440, 1),
        },
    }
    return out, extras


def report(out: dict[str, Any], extras: dict, took: float) -> str:
    """The results as Markdown, for docs/benchmarks.md."""
    rows = []
    for name in [*out["scenarios"], "prod_like"]:
        for policy in POLICIES:
            if (name, policy) not in extras:
                continue
            extra = extras[(name, policy)]
            m = extra["m"]
            rows.append(
                [
                    name,
                    policy if policy != "ours" else "**ours**",
                    f"{m['throughput_share']:.2f}",
                    f"{extra['per_minute']:,.0f}",
                    f"{m['over_threshold_share']:.3f}",
                    f"{m['peak_iterator_age_s']:.0f}",
                    m["overload_failures"],
                    "-" if m["recovery_minutes"] is None else f"{m['recovery_minutes']:.1f}",
                    f"{m['images']:,}",
                    f"{extra['minutes']:.0f}",
                    f"{extra['cost']['index']:.0f} + {extra['cost']['projection']:.0f}",
                    f"{extra['cost']['idle']:.1f}",
                ]
            )
    headers = [
        "scenario",
        "policy",
        "throughput share",
        "images/min",
        "time over threshold",
        "peak age s",
        "overload failures",
        "recovery min",
        "images",
        "pass min",
        "GB-s / 1,000 images (batch-index + projection)",
        "of which idle",
    ]
    prod = out["prod_like"]
    prod_extra = extras[("prod_like", "ours")]
    passes = len(extras)
    reserved = PROD["batchIndex"]["reservedConcurrency"]
    concurrency = PROD["gridConcurrency"]
    return f"""Measured {machine()}; the whole run ({passes} simulated passes) took {took:.0f} s.

{table(headers, rows)}

- **PROD-like Grid** (8 image-loader slots at 400 ms, about 1,200 images a
  minute; thrall 2,400 a minute): ours **{prod["images_per_minute"]:,.0f} images a
  minute**; a 40M-image pass in **{prod["eta_40m_days"]:.1f} days** (today's
  design: 100 images a minute, about 280 days). Cost there:
  {prod_extra["cost"]["index"]:.0f} GB-s of batch-index and
  {prod_extra["cost"]["projection"]:.0f} GB-s of image-projection per 1,000 images.
- Policies: **ours** is the deployed continuous batch-index flow and
  controller as PROD deploys it (a keep-alive a minute, up to
  `batchIndex.reservedConcurrency` = {reserved} invocations at once sharing the
  controller's limit and rate, `maxInFlight` {MAX_IN_FLIGHT}, thrall's checkpoints read
  as `thrallCheckpointTable` sets them up); `ours_single` the same, one
  invocation at a time; `seed` a batch per one-minute tick sized to
  the scenario's nominal capacity, gated on the 5-minute maximum age; `today`
  the one-batch design with PROD's earlier values ({TODAY_BATCH} ids every
  {TODAY_EVERY_MINUTES} minutes, `gridConcurrency` {concurrency},
  {TODAY_RESERVED} invocations at most).
- Scenarios (simulated, `devtools/sim_world.py`): image-loader with K slots at a
  400 ms mean service time (log-normal) that grows 15% per queued request per
  slot, a queue of 8K, 503 beyond; data services 4K slots at 50 ms. grid_bound:
  K=4 (600/min), thrall 900/min. thrall_bound: K=3 (450/min), thrall 200/min.
  capacity_drop: grid_bound with K=2 from minute 8 to 18. thrall_pause:
  grid_bound with thrall stopped from minute 8 to 13. Iterator age threshold
  {THRESHOLD_MS / 1000:.0f} s (PROD's `maxIteratorAgeMs`); CloudWatch points are
  one-minute maxima visible 1–3 minutes after their minute.
- **Throughput share**: images a minute over the whole pass (until thrall
  has taken its last record) ÷ min(Grid, thrall) nominal capacity. **Time
  over threshold**: share of the pass, thrall's pause excluded, with the true
  iterator age above the threshold. **Recovery**: minutes after capacity (or
  thrall) returns until a minute's published images reach 80% of nominal.
- **GB-seconds**: invocation wall time × memory (batch-index
  {MEMORY_MB[BATCH_INDEX]} MB, image-projection {MEMORY_MB[IMAGE_PROJECTION]} MB, per image
  invoked), per 1,000 images; "of which idle": batch-index invocations that
  took no image (told to take nothing, they wait one refresh before ending).
- Targets: throughput share ≥ 0.9 in grid_bound and thrall_bound; in every
  scenario at least the seed's throughput with no more time over the
  threshold and no more overload failures; time over threshold ≤ 0.05;
  no overload failures; recovery ≤ 5 minutes; ≥ 1,100 images a minute at a
  PROD-like Grid. Why the controller is what it is: docs/throughput.md.

Re-run: `python -m benchmarks pass` (`--json` prints the numbers as one JSON object).
"""


def main(argv: list[str] | None = None) -> None:
    """Run every pass; print JSON, or a table written into docs/benchmarks.md."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks pass", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object, write nothing")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every pass (quick runs)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out, extras = run_all(args.scale)
    took = time.monotonic() - started
    if args.json:
        print(json.dumps(out))
        return
    text = report(out, extras, took)
    print(text)
    if args.scale == 1.0:
        write_section("Pass simulation", text)
    else:
        print("(a scaled run: docs/benchmarks.md left as it was)", file=sys.stderr)


if __name__ == "__main__":
    main()
