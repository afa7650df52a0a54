"""reingest plan: what a pass will cost and how long it will take, before it starts."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest import names, settings
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.domain.control import Knobs
from grid_reingest_cli import clients, prices, status
from grid_reingest_cli.common import (
    OK,
    USAGE,
    CliError,
    add_aws_options,
    add_output_options,
    open_table,
    positive_float,
    wants_json,
)
from grid_reingest_cli.stack import function_configuration

DESCRIPTION = """\
Before a pass: how many ids FILE holds, the DynamoDB write and read units and
their on-demand price, Lambda GB-seconds (from the deployed memory sizes), the
Kinesis records and payload units, the expected duration at the configured
ceilings (`reingest tune`), and whether the table's on-demand throughput needs
warming for the upload's rate. Changes nothing.

Prices are list prices with their source and date (printed with --sources);
times rest on the assumptions printed with them.
"""

# Memory sizes when the stack cannot be read (infra/constants.py deploys these).
FALLBACK_MEMORY_MB = {names.IMAGE_PROJECTION: 512, names.BATCH_INDEX: 1024, names.BATCH_CHECK: 256}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="a pass's cost and time, before it starts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  reingest plan --stage PROD ids.txt",
    )
    parser.add_argument("file", metavar="FILE", help="file of ids, one per line; - for stdin")
    add_plan_options(parser)
    add_output_options(parser)
    add_aws_options(parser)
    parser.set_defaults(run=run)


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """--projection-seconds and --sources (plan and run --dry-run)."""
    parser.add_argument(
        "--projection-seconds",
        type=positive_float,
        default=prices.PROJECTION_SECONDS,
        help=f"seconds image-loader takes per image (default {prices.PROJECTION_SECONDS})",
    )
    parser.add_argument(
        "--sources", action="store_true", help="print where each price and figure comes from"
    )


@dataclass(frozen=True)
class Deployed:
    """What the plan takes from the stage: memory, concurrency, the projector, the knobs."""

    memory_mb: Mapping[str, int]
    grid_concurrency: int
    lambda_projector: bool
    knobs: Knobs
    warm_writes_per_s: float | None  # the table's warm throughput, if DescribeTable says
    upload_workers: int
    # batch-index's MAX_IN_FLIGHT: the pass's ceiling as deployed, the lower of the Grid
    # concurrency setting and image-projection's reserved concurrency (None: not deployed).
    pass_in_flight: int | None = None

    @property
    def in_flight(self) -> int:
        """Most images the pass has in flight: the deployment's ceiling, or the operator's
        `tune --max-in-flight` where lower."""
        ceiling = self.pass_in_flight or self.grid_concurrency
        return min(ceiling, self.knobs.max_in_flight or ceiling)


@dataclass(frozen=True)
class Plan:
    ids: int
    write_units: float
    read_units: float
    dynamodb_usd: float
    gb_seconds: float
    lambda_requests: int
    lambda_usd: float
    kinesis_records: int
    kinesis_payload_units: int
    kinesis_usd: float
    total_usd: float
    rate_per_minute: float
    rate_set_by: str
    index_seconds: float
    check_seconds: float
    upload_writes_per_s: float
    table_writes_per_s: float
    needs_warming: bool

    @property
    def pass_seconds(self) -> float:
        """batch-index and batch-check run together: the longer of the two."""
        return max(self.index_seconds, self.check_seconds)


def estimate(ids: int, deployed: Deployed, projection_s: float) -> Plan:
    """The plan of a pass over `ids` new images. Pure arithmetic over the figures in prices."""
    p = prices
    write_units = ids * (p.UPLOAD_WRITE_UNITS + p.TRANSITIONS_PER_IMAGE * p.TRANSITION_WRITE_UNITS)
    read_units = ids * p.READ_UNITS_PER_IMAGE
    dynamodb = write_units * p.DYNAMODB_WRITE_UNIT.value + read_units * p.DYNAMODB_READ_UNIT.value

    # Little's law: what is in flight over the time each image takes.
    in_flight = deployed.in_flight
    candidates = {
        f"{in_flight} in flight at {projection_s:g} s an image": in_flight * 60 / projection_s,
        f"a Grid of three image-loaders (~{p.GRID_REFERENCE_PER_MINUTE:,}/min)": float(
            p.GRID_REFERENCE_PER_MINUTE
        ),
    }
    if deployed.knobs.max_rate_per_minute:
        candidates["the --max-rate ceiling"] = float(deployed.knobs.max_rate_per_minute)
    rate_set_by, rate = min(candidates.items(), key=lambda kv: kv[1])
    index_seconds = ids / rate * 60
    check_rate = deployed.grid_concurrency * 60 / p.CHECK_SECONDS
    check_seconds = ids / check_rate * 60

    gb = {k: v / 1024 for k, v in deployed.memory_mb.items()}
    # batch-index is billed while it waits for the images it holds: its GB for each image's
    # share of the invocation; the projector's own GB for the whole projection.
    gb_seconds = ids * gb[names.BATCH_INDEX] * projection_s / in_flight
    gb_seconds += ids * gb[names.BATCH_CHECK] * p.CHECK_SECONDS / deployed.grid_concurrency
    requests = 0
    if deployed.lambda_projector:
        gb_seconds += ids * gb[names.IMAGE_PROJECTION] * projection_s
        requests = ids
    # The workers' own invocations: about one a minute each, both through the pass.
    requests += math.ceil(max(index_seconds, check_seconds) / 60) * 2
    lambda_usd = gb_seconds * p.LAMBDA_GB_SECOND.value + requests * p.LAMBDA_REQUEST.value

    units_per_record = math.ceil(p.RECORD_BYTES / p.KINESIS_PUT_PAYLOAD_BYTES.value)
    payload_units = ids * units_per_record
    kinesis = payload_units * p.KINESIS_PUT_PAYLOAD_UNIT.value

    upload_items_per_s = deployed.upload_workers * 25 / p.UPLOAD_ROUND_TRIP_S
    capacity = deployed.warm_writes_per_s or p.ON_DEMAND_INITIAL_WRITES_PER_S.value
    return Plan(
        ids=ids,
        write_units=write_units,
        read_units=read_units,
        dynamodb_usd=dynamodb,
        gb_seconds=gb_seconds,
        lambda_requests=requests,
        lambda_usd=lambda_usd,
        kinesis_records=ids,
        kinesis_payload_units=payload_units,
        kinesis_usd=kinesis,
        total_usd=dynamodb + lambda_usd + kinesis,
        rate_per_minute=rate,
        rate_set_by=rate_set_by,
        index_seconds=index_seconds,
        check_seconds=check_seconds,
        upload_writes_per_s=upload_items_per_s,
        table_writes_per_s=capacity,
        needs_warming=upload_items_per_s > capacity and ids > capacity,
    )


def run(args: argparse.Namespace) -> int:
    ids = count_ids(args.file)
    deployed = read_deployed(args)
    result = estimate(ids, deployed, args.projection_seconds)
    if wants_json(args):
        shown = {**asdict(result), "pass_seconds": result.pass_seconds}
        print(json.dumps({**shown, "deployed": _deployed_json(deployed)}, indent=2))
        return OK
    print(render(result, deployed, args))
    return OK


def check_readable(path: str) -> None:
    """A CliError now, before anything is written, if `path` cannot be read as a file."""
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory, not a file of ids", USAGE)
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file", USAGE)
    if not os.access(path, os.R_OK):
        raise CliError(f"{path}: permission denied", USAGE)


def count_ids(path: str) -> int:
    """Non-blank lines of `path` (- for stdin), streamed: an upper bound of the ids
    (a repeated id counts each time)."""
    if path != "-":
        check_readable(path)
    handle = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        return sum(1 for line in handle if line.strip())
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def read_deployed(args: argparse.Namespace) -> Deployed:
    """The stage's memory sizes and settings, the table's knobs and warm throughput."""
    memory = dict(FALLBACK_MEMORY_MB)
    env: dict[str, str] = {}
    for service in list(memory):
        found = function_configuration(args, service) if args.stage else None
        if found:
            memory[service] = int(found.get("MemorySize", memory[service]))
            if service == names.BATCH_INDEX:
                env = dict(found.get("Environment", {}).get("Variables", {}))
    knobs = Knobs()
    warm = None
    with open_table(args) as table:
        knobs = ControlTable(table.name, table.client).read().knobs
        warm = _warm_writes(args, table.name)
    concurrency = env.get(settings.GRID_CONCURRENCY.name) or settings.GRID_CONCURRENCY.default
    ceiling = env.get(settings.MAX_IN_FLIGHT.name)
    return Deployed(
        memory_mb=memory,
        grid_concurrency=int(concurrency),
        lambda_projector=bool(env.get(settings.PROJECTION_FUNCTION_NAME.name)) or not env,
        knobs=knobs,
        warm_writes_per_s=warm,
        upload_workers=getattr(args, "workers", 16),
        pass_in_flight=int(ceiling) if ceiling else None,
    )


def _warm_writes(args: argparse.Namespace, table: str) -> float | None:
    try:
        described = clients.client(args, "dynamodb").describe_table(TableName=table)["Table"]
    except (ClientError, BotoCoreError):
        return None
    warm = described.get("WarmThroughput", {}).get("WriteUnitsPerSecond")
    return float(warm) if warm else None


def render(plan: Plan, deployed: Deployed, args: argparse.Namespace) -> str:
    """The plan as the operator reads it."""
    p = prices
    mem = ", ".join(f"{k} {v} MB" for k, v in deployed.memory_mb.items())
    lines = [
        f"ids             {plan.ids:>14,}  (non-blank lines of {args.file}; repeats count)",
        f"DynamoDB writes {plan.write_units:>14,.0f}  WRU  {_usd(plan.dynamodb_usd)} "
        f"with {plan.read_units:,.0f} RRU (on demand)",
        f"Lambda          {plan.gb_seconds:>14,.0f}  GB-s {_usd(plan.lambda_usd)} "
        f"with {plan.lambda_requests:,} invocations ({mem})",
        f"Kinesis         {plan.kinesis_records:>14,}  records, {plan.kinesis_payload_units:,} "
        f"PUT payload units {_usd(plan.kinesis_usd)}",
        f"total           {'':>14}  {_usd(plan.total_usd)}",
        f"rate            {plan.rate_per_minute:>14,.0f}  images/min, set by {plan.rate_set_by}",
        f"duration        {status.duration(plan.pass_seconds):>14}  batch-index "
        f"{status.duration(plan.index_seconds)}, batch-check beside it "
        f"{status.duration(plan.check_seconds)} (plus thrall's lag)",
    ]
    warm = (
        f"the table's warm throughput {plan.table_writes_per_s:,.0f} writes/s"
        if deployed.warm_writes_per_s
        else f"a new on-demand table's {plan.table_writes_per_s:,.0f} writes/s"
    )
    if plan.needs_warming:
        lines.append(
            f"warming         needed: the upload writes ~{plan.upload_writes_per_s:,.0f} items/s "
            f"against {warm}; it is throttled and retried (slower, nothing lost) unless the "
            f"table is warmed (UpdateTable WarmThroughput) or --workers is lowered to "
            f"{max(1, int(plan.table_writes_per_s * p.UPLOAD_ROUND_TRIP_S / 25))}"
        )
    else:
        lines.append(
            f"warming         not needed: ~{plan.upload_writes_per_s:,.0f} items/s at most "
            f"against {warm}"
        )
    lines.append(
        f"assumed         {args.projection_seconds:g} s a projection, {p.CHECK_SECONDS:g} s a "
        f"check, {p.RECORD_BYTES // 1024} KB a record, {p.UPLOAD_ROUND_TRIP_S * 1000:.0f} ms an "
        "upload round trip; every id new and succeeding first time"
    )
    if args.sources:
        lines.append("sources:")
        for figure in (
            p.DYNAMODB_WRITE_UNIT,
            p.DYNAMODB_READ_UNIT,
            p.LAMBDA_GB_SECOND,
            p.LAMBDA_REQUEST,
            p.KINESIS_PUT_PAYLOAD_UNIT,
            p.ON_DEMAND_INITIAL_WRITES_PER_S,
        ):
            lines.append(f"  {figure.value:g} {figure.unit}: {figure.source}")
    return "\n".join(lines)


def _deployed_json(deployed: Deployed) -> dict:
    return {
        "memoryMb": dict(deployed.memory_mb),
        "gridConcurrency": deployed.grid_concurrency,
        "lambdaProjector": deployed.lambda_projector,
        "maxInFlight": deployed.knobs.max_in_flight,
        "passInFlight": deployed.pass_in_flight,
        "inFlight": deployed.in_flight,
        "maxRatePerMinute": deployed.knobs.max_rate_per_minute,
        "warmWritesPerSecond": deployed.warm_writes_per_s,
    }


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"
