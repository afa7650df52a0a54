"""A whole pass on the deployed stack against a wide Grid whose images take varied times.

The stack as PROD's cdk.json deploys it, on the emulator (devtools/local_stage.py,
moto's server): batch-index and batch-check in as many containers as their
reserved concurrency (two each, started a minute apart), PROD's settings and in-flight
ceiling, 15-minute invocations; the real handlers run in this process, over
HTTP, against a simulated Grid (devtools/grid_server.py, in a process of its
own, as a remote Grid has its own cores) whose image-loader has 40 slots and a
queue of 40, projections of 4 s on average, log-normal per image
(devtools/loader_capacity.py): 600 images a minute at most, whatever the
policy. The pass is `reingest run` from upload to the last image verified,
batch-check included. thrall keeps up (its iterator age under a second), and
media-api has every image (the check's own pace is not what is measured here).

Scored against that capacity (the ideal, not a weaker design): images
verified a minute over the whole pass, and over its middle (from 20% to 80%
verified: the ramp and the tail left out), ÷ 600.

    python -m benchmarks wide_grid [--images N] [--sigma S ...] [--json] [--write]

About 7 minutes a spread at the default 3,000 images.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.processes import server_in_child
from benchmarks.report import machine, table, write_section
from devtools.grid_server import GridSim
from devtools.loader_capacity import LoaderCapacity
from devtools.local_lambda import environment
from devtools.local_stage import local_stage
from devtools.servers import aws_environment, moto_server
from devtools.testing import grid_id
from grid_reingest import settings
from grid_reingest.domain.states import ProgressState as S
from infra.config import load_stage_config

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"
STAGE = "WIDE"
TABLE = f"grid-reingest-{STAGE}"
STREAM = f"media-service-thrall-low-priority-{STAGE}"
SLOTS = 40
QUEUE = 40
MEAN_SECONDS = 4.0
SIGMAS = (0.5, 1.0)
IMAGES = 3000
# The Grid's data services answer in this long (image-loader's time is the slots' own).
DATA_LATENCY = 0.02
# Lambda's longest invocation; a tick a minute starts the second container a minute in.
INVOCATION_SECONDS = 900.0
TICK_SECONDS = 60.0
# The middle of the pass: its rate without the ramp and the tail.
MIDDLE = (0.2, 0.8)
SAMPLE_SECONDS = 2.0
QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"}


def prod_environment() -> tuple[dict[str, str], dict[str, int]]:
    """What PROD's cdk.json gives batch-index and batch-check (as variables), and their
    reserved concurrency (by worker)."""
    config = load_stage_config(json.loads(CDK_JSON.read_text())["context"], "PROD")
    env = {
        **{name: str(value) for name, value in config.worker_settings.items()},
        "MAX_IN_FLIGHT": str(config.pass_in_flight),
        "GRID_CONCURRENCY": str(config.grid_concurrency),
        "CHECK_MAX_IN_FLIGHT": str(config.batch_check.max_in_flight or 1),
        "MAX_ITERATOR_AGE_MS": str(config.max_iterator_age_ms),
        "PROJECTION_TIMEOUT_SECONDS": str(config.projection_timeout_seconds),
        # The variables' own defaults, which worker_environments shortens for tests.
        **{
            var.name: str(var.default)
            for var in (settings.RECORD_BUDGET_SECONDS, settings.CHECK_STOP_MARGIN_SECONDS)
        },
        **QUIET,
    }
    containers = {
        "index": config.batch_index.reserved_concurrency,
        "check": config.batch_check.reserved_concurrency,
    }
    return env, containers


def one_pass(sigma: float, images: int, seed: int = 1) -> dict[str, Any]:
    """One pass of `images` at this spread; its measures."""
    # Imported here: the CLI and the handlers read Powertools' variables at import.
    import boto3

    from grid_reingest.adapters.dynamodb.schema import create_table
    from grid_reingest.adapters.dynamodb.tables import OperatorTable
    from grid_reingest.adapters.dynamodb.tally import TallyTable
    from grid_reingest_cli.main import main as reingest

    loader = LoaderCapacity(SLOTS, QUEUE, MEAN_SECONDS, sigma, seed)
    env, containers = prod_environment()
    with (
        moto_server() as endpoint,
        server_in_child(lambda: GridSim(default_latency=DATA_LATENCY, loader=loader), _stats) as (
            url,
            pipe,
        ),
        environment({**aws_environment(endpoint), **QUIET}),
        tempfile.TemporaryDirectory() as folder,
    ):
        grid = GridSim()  # never started: the child's settings and key
        grid.url = url
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        create_table(dynamodb, TABLE)
        table = OperatorTable(TABLE, dynamodb)
        _, schedule = local_stage(endpoint, table, grid, STAGE, stream=STREAM, **env)
        for worker, count in containers.items():
            schedule.scale(worker, count)
        schedule.timeout_seconds = INVOCATION_SECONDS
        ids = [grid_id(seed * 10**7 + n) for n in range(images)]
        ids_file = Path(folder) / "ids.txt"
        ids_file.write_text("".join(f"{i}\n" for i in ids))

        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        tally = TallyTable(TABLE, dynamodb)

        def sample(started: float) -> None:
            # The tally state-counts keeps: one read, not a count on the index.
            while not stop.wait(SAMPLE_SECONDS):
                seen = tally.read()
                done = seen.counts.get(int(S.VERIFIED), 0) if seen is not None else 0
                samples.append((time.monotonic() - started, done))

        started = time.monotonic()
        sampler = threading.Thread(target=sample, args=(started,), daemon=True)
        sampler.start()
        with schedule.running(stagger=TICK_SECONDS), contextlib.redirect_stdout(io.StringIO()):
            code = reingest(["run", str(ids_file), "--stage", STAGE, "--interval", "5"])
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        counts = table.counts()
        pipe.send("stats")
        stats = pipe.recv()
    return measures(
        sigma,
        images,
        code=code,
        seconds=seconds,
        samples=samples,
        counts=counts,
        capacity=loader.per_minute,
        stats=stats,
        schedule=schedule,
    )


def _stats(grid: GridSim, command: str) -> dict[str, Any]:
    """What the Grid's child process saw (answered over its pipe)."""
    loader = grid.loader
    assert loader is not None
    return {
        "peak_busy": loader.peak_busy,
        "refused": loader.counts["refused"],
        "peak_requests": grid.peak["image-loader"],
    }


def measures(sigma, images, *, code, seconds, samples, counts, capacity, stats, schedule):
    """The pass's numbers, from what was sampled and counted."""
    verified = counts.get(S.VERIFIED, 0)
    low, high = (images * share for share in MIDDLE)
    middle = [(t, n) for t, n in samples if low <= n <= high]
    middle_rate = (
        (middle[-1][1] - middle[0][1]) / ((middle[-1][0] - middle[0][0]) / 60)
        if len(middle) >= 2 and middle[-1][0] > middle[0][0]
        else None
    )
    rate = verified / (seconds / 60)
    return {
        "sigma": sigma,
        "images": images,
        "capacity_per_minute": round(capacity),
        "exit_code": code,
        "pass_minutes": round(seconds / 60, 2),
        "verified": verified,
        "not_verified": {int(s): n for s, n in counts.items() if s != S.VERIFIED and n},
        "per_minute": round(rate, 1),
        "throughput_share": round(rate / capacity, 3),
        "middle_per_minute": None if middle_rate is None else round(middle_rate, 1),
        "middle_share": None if middle_rate is None else round(middle_rate / capacity, 3),
        "loader_peak_busy": stats["peak_busy"],
        "loader_peak_requests": stats["peak_requests"],
        "loader_503s": stats["refused"],
        "invocations": len(schedule.invocations),
        "errors": sorted({error.splitlines()[0] for error in schedule.errors}),
    }


def report(results: list[dict[str, Any]]) -> str:
    """The section of docs/benchmarks.md."""
    rows = [
        [
            f"σ {r['sigma']}",
            f"{r['images']:,}",
            f"{r['pass_minutes']:.1f}",
            f"{r['per_minute']:.0f}",
            f"**{r['throughput_share']:.3f}**",
            "-" if r["middle_share"] is None else f"{r['middle_share']:.3f}",
            f"{r['loader_peak_busy']} / {r['loader_peak_requests']}",
            r["loader_503s"],
            r["not_verified"] or 0,
        ]
        for r in results
    ]
    headers = [
        "spread",
        "images",
        "pass min",
        "verified /min",
        "share of 600/min",
        "share, 20–80%",
        "loader slots busy / requests at peak",
        "503s",
        "not verified",
    ]
    return (
        f"Measured {machine()}. `python -m benchmarks wide_grid --write`; the setup is in "
        "the module's text: PROD's deployment on the emulator against an image-loader of "
        f"{SLOTS} slots (queue {QUEUE}), {MEAN_SECONDS:g} s a projection on average, "
        "log-normal per image.\n\n" + table(headers, rows)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks wide_grid", description=__doc__)
    parser.add_argument("--images", type=int, default=IMAGES, help=f"default {IMAGES}")
    parser.add_argument(
        "--sigma", type=float, nargs="+", default=list(SIGMAS), help="spreads to run"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--write", action="store_true", help="into docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.images < 100:
        parser.error(f"--images {args.images}: at least 100 (the middle of the pass is measured)")
    if any(not 0 <= s <= 3 for s in args.sigma):
        parser.error(f"--sigma {args.sigma}: each between 0 and 3")
    results = []
    for sigma in args.sigma:
        result = one_pass(sigma, args.images)
        results.append(result)
        print(json.dumps(result), file=sys.stderr)
    if args.json:
        print(json.dumps({"wide_grid": results}))
    else:
        print(report(results))
    if args.write:
        write_section("Wide Grid, deployed", report(results))


if __name__ == "__main__":
    main()
