"""What every command shares: AWS options, opening the table, errors and confirmation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from grid_reingest import names
from grid_reingest.adapters.aws import make_client
from grid_reingest.adapters.dynamodb.bulk import StateTable
from grid_reingest.adapters.dynamodb.schema import StateTableError
from grid_reingest.domain.states import ProgressState
from grid_reingest_cli.errors import FAILED, INTERRUPTED, OK, USAGE, CliError
from grid_reingest_cli.stack import resolve

__all__ = ["FAILED", "INTERRUPTED", "OK", "USAGE", "CliError"]


def add_aws_options(
    parser: argparse.ArgumentParser,
    workers: int = 16,
    workers_help: str = "parallel requests to DynamoDB",
) -> None:
    """--table or --stage, --region, --profile and --workers."""
    group = parser.add_argument_group("AWS (AWS_ENDPOINT_URL, if set, points every call elsewhere)")
    which = group.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", help="the state table's name")
    which.add_argument(
        "--stage",
        help="TEST, PROD...: find the table (and schedules) from stack grid-reingest-STAGE",
    )
    add_account_options(group)
    group.add_argument(
        "--workers",
        type=positive_int,
        default=workers,
        help=f"{workers_help} (default {workers})",
    )


def add_account_options(group: argparse._ActionsContainer) -> None:
    """--region and --profile."""
    group.add_argument("--region", help="AWS region (default: from the environment or profile)")
    group.add_argument("--profile", help="AWS named profile (default: the environment's)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def open_table(args: argparse.Namespace) -> StateTable:
    """The state table the arguments name, checked to exist (a clear CliError if not)."""
    try:
        if not args.table:
            args.table = resolve(args, names.STATE_TABLE_OUTPUT)
        client = make_client(
            "dynamodb", region=args.region, profile=args.profile, max_pool_connections=args.workers
        )
        table = StateTable(args.table, client, max_workers=args.workers)
        table.check()
    except StateTableError as error:
        raise CliError(str(error)) from None
    except ProfileNotFound as error:
        raise CliError(f"{error}: check --profile or AWS_PROFILE", USAGE) from None
    except NoRegionError:
        raise CliError("no AWS region: pass --region or set AWS_REGION", USAGE) from None
    except NoCredentialsError:
        raise CliError("no AWS credentials found: log in, or pass --profile") from None
    return table


def explain_aws_error(error: Exception) -> str:
    """One line for a failure: ours as it is, AWS's with its error code."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"AWS refused: {info.get('Code')}: {info.get('Message')}"
    if isinstance(error, BotoCoreError):
        return f"AWS call failed: {error}"
    return str(error)


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on a terminal; without one (and without --yes) refuse rather than guess."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question} — refusing without a terminal to ask on; pass --yes", USAGE)
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("nothing changed", USAGE)


def count_lines(
    counts: Mapping[int, int], table: str, previous: Mapping[int, int] | None = None
) -> list[str]:
    """'N item(s) in TABLE', then a line per state, with the change since `previous`."""
    total = sum(counts.values())
    lines = [f"{total:,} item(s) in {table}"]
    for state, count in sorted(counts.items()):
        change = "" if previous is None else f" {count - previous.get(state, 0):+,}"
        lines.append(state_line(state, count, total) + change)
    return lines


def state_line(state: int, count: int, total: int) -> str:
    """e.g. '   4  blacklisted because of known failure      12 ( 0.1%)'."""
    try:
        label = ProgressState(state).label
    except ValueError:
        label = "(not a known state)"
    share = f"{count / total:6.1%}" if total else "     -"
    return f"{int(state):>5}  {label:<52} {count:>12,} {share}"
