"""What every command shares: AWS options, opening the table, errors and confirmation."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from grid_reingest.aws import make_client
from grid_reingest.state_table import StateTable, StateTableError

# Exit codes, the same for every command.
OK = 0
FAILED = 1  # AWS or the table refused; nothing was changed that the message does not say
USAGE = 2  # bad arguments or bad input; nothing was changed
INTERRUPTED = 130  # Ctrl-C, as shells report it


class CliError(Exception):
    """A failure to report to the operator as one clear line, with an exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def add_aws_options(parser: argparse.ArgumentParser, workers: int = 16) -> None:
    """--table, --region, --profile and --workers."""
    group = parser.add_argument_group("AWS (AWS_ENDPOINT_URL, if set, points every call elsewhere)")
    group.add_argument("--table", required=True, help="the state table's name")
    group.add_argument("--region", help="AWS region (default: from the environment or profile)")
    group.add_argument("--profile", help="AWS named profile (default: the environment's)")
    group.add_argument(
        "--workers",
        type=positive_int,
        default=workers,
        help=f"parallel requests to DynamoDB (default {workers})",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def open_table(args: argparse.Namespace, client: Any = None) -> StateTable:
    """The state table the arguments name, checked to exist (a clear CliError if not)."""
    try:
        if client is None:
            client = make_client(
                "dynamodb",
                region=args.region,
                profile=args.profile,
                max_pool_connections=args.workers,
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


def state_line(state: Any, count: int, total: int) -> str:
    """e.g. '   4  blacklisted because of known failure      12 ( 0.1%)'."""
    share = f"{count / total:6.1%}" if total else "     -"
    return f"{int(state):>5}  {state.label:<52} {count:>12,} {share}"
