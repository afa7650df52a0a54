"""reingest plan: what a pass will cost and how long it will take, before it starts."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest import names, settings
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.domain.control import Knobs
from grid_reingest_cli import clients, prices, upload_ids
from grid_reingest_cli.common import (
    OK,
    USAGE,
    CliError,
    add_aws_options,
    add_output_options,
    number_between,
    open_table,
    wants_json,
)
from grid_reingest_cli.plan_view import deployed_json, render
from grid_reingest_cli.stack import function_configuration

DESCRIPTION = """\
Before a pass: how many ids FILE holds (checked as `run` and `upload-ids` check
it: the same refusals, exit 2), the DynamoDB write and read units and their
on-demand price, Lambda GB-seconds (from the deployed functions' memory and
architecture), the Kinesis records and payload units, keeping the tally and
watching the pass every minute, the upload's time and what sets it, the
expected duration at the configured ceilings (`reingest tune`), and whether
the table's on-demand throughput needs warming for the upload's rate. Changes
nothing.

With --stage the deployed functions are read (memory, architecture, images in
flight, whether image-projection is a Lambda); with --table only the table is,
and the rest is assumed as the stack deploys it: the plan says which.

Prices are list prices with their source and date (printed with --sources);
times rest on the assumptions printed with them.
"""

# Memory sizes when the stack cannot be read (infra/constants.py deploys these).
FALLBACK_MEMORY_MB = {names.IMAGE_PROJECTION: 512, names.BATCH_INDEX: 1024, names.BATCH_CHECK: 256}
# The stack deploys every function on arm64 (infra/constructs/workers.py).
FALLBACK_ARCHITECTURE = "arm64"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="a pass's cost and time, before it starts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  reingest plan --stage PROD ids.txt",
    )
    parser.add_argument("file", metavar="FILE", help="file of ids, one per line; - for stdin")
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="plan for the valid ids even if some lines are not (as run and upload-ids take it)",
    )
    upload_ids.add_allow_any_id_option(parser)
    add_plan_options(parser)
    add_output_options(parser)
    add_aws_options(parser)
    parser.set_defaults(run=run)


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """--projection-seconds and --sources (plan and run --dry-run)."""
    parser.add_argument(
        "--projection-seconds",
        # image-projection's invocation lasts at most Lambda's 900 s.
        type=number_between(0, 900, " s"),
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
    upload_parallel: int
    architecture: str = FALLBACK_ARCHITECTURE
    # The stack the functions were read from; None when they were assumed (--table).
    read_from: str | None = None
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
    projection_usd: float
    kinesis_records: int
    kinesis_payload_units: int
    kinesis_usd: float
    tally_batches: int
    tally_usd: float
    watch_looks: int
    watch_usd: float
    total_usd: float
    rate_per_minute: float
    rate_set_by: str
    index_seconds: float
    check_seconds: float
    upload_seconds: float
    upload_set_by: str
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
    gb_second = (
        p.LAMBDA_GB_SECOND if deployed.architecture == "arm64" else p.LAMBDA_GB_SECOND_X86
    ).value
    # batch-index is billed while it waits for the images it holds: its GB for each image's
    # share of the invocation; the projector's own GB for the whole projection.
    gb_seconds = ids * gb[names.BATCH_INDEX] * projection_s / in_flight
    gb_seconds += ids * gb[names.BATCH_CHECK] * p.CHECK_SECONDS / deployed.grid_concurrency
    requests = 0
    projection_usd = 0.0
    if deployed.lambda_projector:
        projection_gb_s = ids * gb[names.IMAGE_PROJECTION] * projection_s
        gb_seconds += projection_gb_s
        requests = ids
        projection_usd = projection_gb_s * gb_second + ids * p.LAMBDA_REQUEST.value
    # The workers' own invocations: about one a minute each, both through the pass.
    requests += math.ceil(max(index_seconds, check_seconds) / 60) * 2
    lambda_usd = gb_seconds * gb_second + requests * p.LAMBDA_REQUEST.value

    units_per_record = math.ceil(p.RECORD_BYTES / p.KINESIS_PUT_PAYLOAD_BYTES.value)
    payload_units = ids * units_per_record
    kinesis = payload_units * p.KINESIS_PUT_PAYLOAD_UNIT.value

    capacity = deployed.warm_writes_per_s or p.ON_DEMAND_INITIAL_WRITES_PER_S.value
    round_trips = p.UPLOAD_CALLS_PER_BATCH * p.UPLOAD_ROUND_TRIP_S
    client = {
        f"{deployed.upload_parallel} batches of {p.UPLOAD_BATCH_IDS} in flight, "
        f"{p.UPLOAD_CALLS_PER_BATCH} calls of 25 each at {p.UPLOAD_ROUND_TRIP_S * 1000:.0f} ms": (
            deployed.upload_parallel * p.UPLOAD_BATCH_IDS / round_trips
        ),
        f"botocore's CPU in one process (~{p.UPLOAD_IDS_PER_S_CPU:,} ids/s measured)": float(
            p.UPLOAD_IDS_PER_S_CPU
        ),
    }
    client_by, client_rate = min(client.items(), key=lambda kv: kv[1])
    upload_by, upload_rate = client_by, client_rate
    # A second's worth of the table's throughput goes in at any rate; beyond it the
    # table's throughput is what the upload gets.
    if client_rate > capacity and ids > capacity:
        upload_by, upload_rate = "the table's write throughput (see warming)", capacity
    upload_seconds = ids / upload_rate

    # Keeping the tally: a batch per stream shard every window while items move, and at
    # least one per 1,000 records.
    active = upload_seconds + max(index_seconds, check_seconds)
    records = ids * p.TALLY_RECORDS_PER_IMAGE
    batches = math.ceil(
        min(
            records,
            max(records / p.TALLY_BATCH_RECORDS, p.TALLY_STREAM_SHARDS * active / p.TALLY_WINDOW_S),
        )
    )
    tally = batches * (
        p.TALLY_WRITE_UNITS_PER_BATCH * p.DYNAMODB_WRITE_UNIT.value
        + p.LAMBDA_REQUEST.value
        + p.TALLY_INVOCATION_S * p.TALLY_MEMORY_MB / 1024 * gb_second
    )
    # Watching the whole pass at the default interval.
    looks = math.ceil(active / p.WATCH_INTERVAL_S)
    watching = looks * (
        p.WATCH_LOOK_READ_UNITS * p.DYNAMODB_READ_UNIT.value
        + p.WATCH_LOOK_CLOUDWATCH_REQUESTS * p.CLOUDWATCH_REQUEST.value
    )
    return Plan(
        ids=ids,
        write_units=write_units,
        read_units=read_units,
        dynamodb_usd=dynamodb,
        gb_seconds=gb_seconds,
        lambda_requests=requests,
        lambda_usd=lambda_usd,
        projection_usd=projection_usd,
        kinesis_records=ids,
        kinesis_payload_units=payload_units,
        kinesis_usd=kinesis,
        tally_batches=batches,
        tally_usd=tally,
        watch_looks=looks,
        watch_usd=watching,
        total_usd=dynamodb + lambda_usd + kinesis + tally + watching,
        rate_per_minute=rate,
        rate_set_by=rate_set_by,
        index_seconds=index_seconds,
        check_seconds=check_seconds,
        upload_seconds=upload_seconds,
        upload_set_by=upload_by,
        upload_writes_per_s=client_rate,
        table_writes_per_s=capacity,
        needs_warming=client_rate > capacity and ids > capacity,
    )


def run(args: argparse.Namespace) -> int:
    # The file first, as upload-ids checks it: the same refusals before any AWS call.
    ids = upload_ids.check_file(args.file, args.allow_any_id, args.skip_invalid).ids
    deployed = read_deployed(args)
    result = estimate(ids, deployed, args.projection_seconds)
    if wants_json(args):
        shown = {**asdict(result), "pass_seconds": result.pass_seconds}
        print(json.dumps({**shown, "deployed": deployed_json(deployed)}, indent=2))
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


def read_deployed(args: argparse.Namespace) -> Deployed:
    """The stage's memory sizes and settings, the table's knobs and warm throughput."""
    memory = dict(FALLBACK_MEMORY_MB)
    env: dict[str, str] = {}
    architecture = FALLBACK_ARCHITECTURE
    for service in list(memory):
        found = function_configuration(args, service) if args.stage else None
        if found:
            memory[service] = int(found.get("MemorySize", memory[service]))
            if service == names.BATCH_INDEX:
                env = dict(found.get("Environment", {}).get("Variables", {}))
                architecture = (found.get("Architectures") or ["x86_64"])[0]
    knobs = Knobs()
    warm = None
    with open_table(args) as table:
        knobs = ControlTable(table.name, table.client).read().knobs
        warm = _warm_writes(args, table.name)
    concurrency = env.get(settings.GRID_CONCURRENCY.name) or settings.GRID_CONCURRENCY.default_value
    ceiling = env.get(settings.MAX_IN_FLIGHT.name)
    return Deployed(
        memory_mb=memory,
        grid_concurrency=int(concurrency),
        lambda_projector=bool(env.get(settings.PROJECTION_FUNCTION_NAME.name)) or not env,
        knobs=knobs,
        warm_writes_per_s=warm,
        upload_parallel=getattr(args, "parallel", 16),
        architecture=architecture,
        read_from=names.stack_name(args.stage) if env else None,
        pass_in_flight=int(ceiling) if ceiling else None,
    )


def _warm_writes(args: argparse.Namespace, table: str) -> float | None:
    try:
        described = clients.client(args, "dynamodb").describe_table(TableName=table)["Table"]
    except (ClientError, BotoCoreError):
        return None
    warm = described.get("WarmThroughput", {}).get("WriteUnitsPerSecond")
    return float(warm) if warm else None
