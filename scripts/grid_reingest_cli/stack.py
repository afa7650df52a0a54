"""Finding a stage's table and schedules from its deployed stack's outputs."""

from __future__ import annotations

import argparse
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest import stack_outputs
from grid_reingest.aws import make_client
from grid_reingest_cli.errors import USAGE, CliError

WORKERS = {"index": stack_outputs.BATCH_INDEX, "check": stack_outputs.BATCH_CHECK}


def outputs(args: argparse.Namespace, client: Any = None) -> dict[str, str]:
    """The outputs of `grid-reingest-<STAGE>`, or a CliError saying why there are none."""
    name = stack_outputs.stack_name(args.stage)
    client = client or make_client("cloudformation", region=args.region, profile=args.profile)
    try:
        stacks = client.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        region = client.meta.region_name
        raise CliError(
            f"stack {name} not found in region {region} "
            f"({error.response['Error'].get('Message')}); deploy it, check --stage and "
            "--region, or name the table with --table"
        ) from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def resolve(args: argparse.Namespace, key: str) -> str:
    """One output of the stage's stack, e.g. its table name."""
    found = outputs(args).get(key)
    if found is None:
        raise CliError(f"stack {stack_outputs.stack_name(args.stage)} has no output {key}")
    return found


def rule_name(args: argparse.Namespace, worker: str) -> str:
    """The schedule rule of `worker` ("index" or "check"): --rule, else the stack's output."""
    if getattr(args, "rule", None):
        return args.rule
    if not args.stage:
        raise CliError("name the stage (--stage TEST) or the rule (--rule NAME)", USAGE)
    return resolve(args, stack_outputs.RULES[WORKERS[worker]])
