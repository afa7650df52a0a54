"""Finding a stage's table and schedules from its deployed stack's outputs."""

from __future__ import annotations

import argparse
import functools

from botocore.exceptions import ClientError

from grid_reingest import names
from grid_reingest_cli import clients
from grid_reingest_cli.errors import USAGE, CliError, offers

WORKERS = {"index": names.BATCH_INDEX, "check": names.BATCH_CHECK}
# What a command may name instead of the output it would read from the stack, and
# how; a command without that option gets no such hint.
INSTEAD = {
    names.STATE_TABLE_OUTPUT: ("--table", "name the table with --table"),
    **{output: ("--rule", "name the rule with --rule") for output in names.RULE_OUTPUTS.values()},
}


class _NoStack(Exception):
    """The stage's stack cannot be read; the message says which and why."""


def outputs(args: argparse.Namespace, key: str | None = None) -> dict[str, str]:
    """The outputs of `grid-reingest-<STAGE>`, or a CliError saying why there are none
    (and, when the command has one, the option that names `key` instead).

    Read once per stage, region and profile: a command that needs the table and
    both rules describes the stack once.
    """
    try:
        return _outputs(
            args.stage, clients.region(args), args.profile, getattr(args, "endpoint_url", None)
        )
    except _NoStack as error:
        option, hint = INSTEAD.get(key or "", ("", ""))
        instead = f", or {hint}" if offers(args, option) else ""
        raise CliError(f"{error}; deploy it, or check --stage and --region{instead}") from None


@functools.cache
def _outputs(
    stage: str, region: str | None, profile: str | None, endpoint_url: str | None
) -> dict[str, str]:
    name = names.stack_name(stage)
    client = clients.client(
        argparse.Namespace(region=region, profile=profile, endpoint_url=endpoint_url),
        "cloudformation",
    )
    try:
        stacks = client.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        raise _NoStack(
            f"stack {name} not found in region {client.meta.region_name} "
            f"({error.response['Error'].get('Message')})"
        ) from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def resolve(args: argparse.Namespace, key: str) -> str:
    """One output of the stage's stack, e.g. its table name."""
    found = outputs(args, key).get(key)
    if found is None:
        raise CliError(f"stack {names.stack_name(args.stage)} has no output {key}")
    return found


def rule_name(args: argparse.Namespace, worker: str) -> str:
    """The schedule rule of `worker` ("index" or "check"): --rule, else the stack's output."""
    if getattr(args, "rule", None):
        return args.rule
    if not args.stage:
        raise CliError("name the stage (--stage TEST) or the rule (--rule NAME)", USAGE)
    return resolve(args, names.RULE_OUTPUTS[WORKERS[worker]])


def function_configuration(args: argparse.Namespace, service: str) -> dict | None:
    """The deployed configuration (MemorySize, Environment...) of the stage's `service`
    function; None without --stage, without that output or without access to it."""
    if not getattr(args, "stage", None):
        return None
    function = outputs(args).get(names.FUNCTION_OUTPUTS[service])
    if function is None:
        return None
    try:
        return clients.client(args, "lambda").get_function_configuration(FunctionName=function)
    except ClientError:
        return None


def function_environment(args: argparse.Namespace, service: str) -> dict[str, str]:
    """The environment variables of the stage's deployed `service` function ({} if unknown)."""
    found = function_configuration(args, service) or {}
    return dict(found.get("Environment", {}).get("Variables", {}))


def clear_cache() -> None:
    """Forget the stacks read so far (each command reads them afresh)."""
    _outputs.cache_clear()
