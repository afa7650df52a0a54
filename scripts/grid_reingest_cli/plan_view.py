"""What `reingest plan` prints: the estimate in words and numbers, or as JSON."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from grid_reingest_cli import prices, status
from grid_reingest_cli.ids_file import DEDUP_WINDOW

if TYPE_CHECKING:
    from grid_reingest_cli.plan import Deployed, Plan


def render(plan: Plan, deployed: Deployed, args: argparse.Namespace) -> str:
    """The plan as the operator reads it."""
    p = prices
    mem = ", ".join(f"{k} {v} MB" for k, v in deployed.memory_mb.items())
    share = plan.projection_usd / plan.lambda_usd if plan.lambda_usd else 0
    projection = (
        f"; image-projection {_usd(plan.projection_usd)} of it ({share:.0%})"
        if plan.projection_usd
        else "; no image-projection function: batch-index projects in-process"
    )
    lines = [
        f"ids             {plan.ids:>14,}  (valid ids of {args.file}, repeats within "
        f"{DEDUP_WINDOW:,} lines once)",
        _deployment_line(deployed, plan),
        f"DynamoDB writes {plan.write_units:>14,.0f}  WRU  {_usd(plan.dynamodb_usd)} "
        f"with {plan.read_units:,.0f} RRU (on demand)",
        f"Lambda          {plan.gb_seconds:>14,.0f}  GB-s {_usd(plan.lambda_usd)} "
        f"with {plan.lambda_requests:,} invocations, {deployed.architecture} ({mem}){projection}",
        f"Kinesis         {plan.kinesis_records:>14,}  records, {plan.kinesis_payload_units:,} "
        f"PUT payload units {_usd(plan.kinesis_usd)}",
        f"tally           {plan.tally_batches:>14,}  batches of state-counts "
        f"{_usd(plan.tally_usd)} (a transaction and an invocation each)",
        f"watching        {plan.watch_looks:>14,}  looks at {p.WATCH_INTERVAL_S} s "
        f"{_usd(plan.watch_usd)} (the tally, ~{p.WATCH_LOOK_READ_UNITS} read units a look)",
        f"total           {'':>14}  {_usd(plan.total_usd)}",
        f"upload          {status.duration(plan.upload_seconds):>14}  at "
        f"{plan.ids / plan.upload_seconds if plan.upload_seconds else 0:,.0f} ids/s, set by "
        f"{plan.upload_set_by}",
        f"rate            {plan.rate_per_minute:>14,.0f}  images/min, set by {plan.rate_set_by}",
        f"duration        {status.duration(plan.pass_seconds):>14}  batch-index "
        f"{status.duration(plan.index_seconds)}, batch-check beside it "
        f"{status.duration(plan.check_seconds)} (plus thrall's lag), after the "
        "upload",
    ]
    warm = (
        f"the table's warm throughput {plan.table_writes_per_s:,.0f} writes/s"
        if deployed.warm_writes_per_s
        else f"a new on-demand table's {plan.table_writes_per_s:,.0f} writes/s"
    )
    if plan.needs_warming:
        workers = plan.table_writes_per_s * p.UPLOAD_CALLS_PER_BATCH * p.UPLOAD_ROUND_TRIP_S
        lines.append(
            f"warming         needed: the upload writes ~{plan.upload_writes_per_s:,.0f} items/s "
            f"against {warm}; it is throttled and retried (slower, nothing lost) unless the "
            f"table is warmed (UpdateTable WarmThroughput) or --parallel is lowered to "
            f"{max(1, int(workers / p.UPLOAD_BATCH_IDS))}"
        )
    elif plan.upload_writes_per_s <= plan.table_writes_per_s:
        lines.append(
            f"warming         not needed: the upload's ~{plan.upload_writes_per_s:,.0f} items/s "
            f"fit {warm}"
        )
    else:
        lines.append(
            f"warming         not needed: {plan.ids:,} ids are fewer than {warm} take in a second"
        )
    lines.append(
        f"assumed         {args.projection_seconds:g} s a projection, {p.CHECK_SECONDS:g} s a "
        f"check, {p.RECORD_BYTES // 1024} KB a record, {p.UPLOAD_ROUND_TRIP_S * 1000:.0f} ms an "
        f"upload round trip, {p.TALLY_STREAM_SHARDS} stream shards; every id new and "
        "succeeding first time"
    )
    if args.sources:
        lines.append("sources:")
        for figure in (
            p.DYNAMODB_WRITE_UNIT,
            p.DYNAMODB_READ_UNIT,
            p.LAMBDA_GB_SECOND,
            p.LAMBDA_GB_SECOND_X86,
            p.LAMBDA_REQUEST,
            p.KINESIS_PUT_PAYLOAD_UNIT,
            p.CLOUDWATCH_REQUEST,
            p.ON_DEMAND_INITIAL_WRITES_PER_S,
        ):
            lines.append(f"  {figure.value:g} {figure.unit}: {figure.source}")
        lines.append(
            "  the upload's rate: docs/benchmarks.md, 'State table: upload-ids'; a look's read "
            "units: 'watch: the cost of one look'"
        )
    return "\n".join(lines)


def _deployment_line(deployed: Deployed, plan: Plan) -> str:
    """Where the functions' figures come from: the stage's, or assumed for --table."""
    in_flight = deployed.in_flight
    if deployed.read_from:
        projector = (
            "image-projection a Lambda"
            if deployed.lambda_projector
            else "batch-index projects in-process"
        )
        return (
            f"deployment      {deployed.read_from}'s functions: {deployed.architecture}, "
            f"{in_flight} images in flight, {projector}"
        )
    return (
        "deployment      not read (--table names a table, not a stack): assumed as the stack "
        f"deploys it — {deployed.architecture}, {in_flight} images in flight, image-projection "
        "a Lambda (most of the Lambda cost); --stage reads the deployed functions, and a stage "
        "whose batch-index projects in-process (a local one) costs far less Lambda"
    )


def deployed_json(deployed: Deployed) -> dict:
    """The deployment read, as `--output json` gives it."""
    return {
        "memoryMb": dict(deployed.memory_mb),
        "gridConcurrency": deployed.grid_concurrency,
        "lambdaProjector": deployed.lambda_projector,
        "maxInFlight": deployed.knobs.max_in_flight,
        "passInFlight": deployed.pass_in_flight,
        "inFlight": deployed.in_flight,
        "maxRatePerMinute": deployed.knobs.max_rate_per_minute,
        "warmWritesPerSecond": deployed.warm_writes_per_s,
        "architecture": deployed.architecture,
        "readFrom": deployed.read_from,
    }


def _usd(amount: float) -> str:
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"
