"""What every command shares: AWS options, opening the table, errors and confirmation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from grid_reingest import names
from grid_reingest.adapters.dynamodb.schema import StateTableError, TableNotFound
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.domain.states import ProgressState
from grid_reingest_cli import clients
from grid_reingest_cli.clients import client
from grid_reingest_cli.errors import (
    BROKEN_PIPE,
    FAILED,
    INCOMPLETE,
    INTERRUPTED,
    OK,
    USAGE,
    CliError,
)
from grid_reingest_cli.stack import resolve

# Stages where a command that writes asks the operator to type the stage's name first.
PROTECTED_STAGES = ("PROD",)

__all__ = ["BROKEN_PIPE", "FAILED", "INCOMPLETE", "INTERRUPTED", "OK", "USAGE", "CliError"]


def add_aws_options(
    parser: argparse.ArgumentParser,
    parallel: int = 16,
    parallel_help: str = "requests to DynamoDB at once",
) -> None:
    """--table or --stage, --region, --profile and --parallel."""
    group = parser.add_argument_group("AWS (AWS_ENDPOINT_URL, if set, points every call elsewhere)")
    which = group.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", type=not_blank("--table"), help="the state table's name")
    which.add_argument(
        "--stage",
        type=not_blank("--stage"),
        help="TEST, PROD...: find the table (and schedules) from stack grid-reingest-STAGE",
    )
    add_account_options(group)
    add_parallel_option(
        group, parallel, f"{parallel_help} (default {parallel}, at most {MAX_PARALLEL})"
    )


def add_parallel_option(group: argparse._ActionsContainer, default: int, text: str) -> None:
    """--parallel N: requests at once (a worker is batch-index or batch-check, never a thread
    of this process); --workers, its former name, is still read."""
    group.add_argument(
        "--parallel",
        "--workers",
        dest="parallel",
        metavar="N",
        type=int_between(1, MAX_PARALLEL),
        default=default,
        help=f"{text}; --workers is its former name",
    )


def add_account_options(group: argparse._ActionsContainer) -> None:
    """--region, --profile and --endpoint-url, as aws-cli has them."""
    group.add_argument(
        "--region",
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then the profile's)",
    )
    group.add_argument("--profile", help="AWS named profile (default: the environment's)")
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        type=endpoint_url,
        help="send every AWS call to URL (an emulator; default: AWS_ENDPOINT_URL, else AWS)",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """--output text|json (aws-cli's) and --json, its short form."""
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts",
    )
    parser.add_argument("--json", action="store_true", help="the same as --output json")


def wants_json(args: argparse.Namespace) -> bool:
    """True when the command was asked for JSON (--json or --output json)."""
    return bool(getattr(args, "json", False)) or getattr(args, "output", None) == "json"


def number_between(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """argparse type: a number above `low` and at most `high` (a typo such as 1e12 refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low < value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} must be more than {low:g} and at most {high:,g}{unit}"
            )
        return value

    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    """argparse type: a whole number from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} must be between {low:,} and {high:,}")
        return value

    return parse


# Bounds of the options every command shares: beyond them a value is a typo, not a wish.
MAX_PARALLEL = 256  # threads and connections of one process to DynamoDB
MAX_SEGMENTS = 1000  # parallel scan segments
MAX_LEASE_SECONDS = 7 * 86400  # a claim lease: the workers' is 20 minutes


def add_lease_option(parser: argparse.ArgumentParser, use: str, default: int) -> None:
    """--lease-seconds: a claim older than this belongs to an invocation that died (`use`: what
    the option is for in this command)."""
    parser.add_argument(
        "--lease-seconds",
        type=int_between(1, MAX_LEASE_SECONDS),
        default=default,
        help=f"{use}: a claim older than this belongs to an invocation that died and may be "
        f"reset (default {default}, the workers' CLAIM_LEASE_SECONDS)",
    )


def not_blank(what: str) -> Callable[[str], str]:
    """argparse type: a name that is not empty or only spaces."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"{what} is empty")
        if text != text.strip():
            raise argparse.ArgumentTypeError(f"{what} {text!r} has spaces around it")
        return text

    return parse


def endpoint_url(text: str) -> str:
    """argparse type: an http(s) URL with a host, as AWS_ENDPOINT_URL takes it."""
    problem = clients.endpoint_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def open_table(args: argparse.Namespace) -> OperatorTable:
    """The state table the arguments name, checked to exist (a clear CliError if not)."""
    # Where the name came from: the stage's stack, or the operator's --table.
    named_by = "--stage" if getattr(args, "stage", None) else "--table"
    try:
        if not args.table:
            args.table = resolve(args, names.STATE_TABLE_OUTPUT)
        dynamodb = client(args, "dynamodb", max_pool_connections=getattr(args, "parallel", 16))
        table = OperatorTable(args.table, dynamodb, max_workers=getattr(args, "parallel", 16))
        table.check()
    except TableNotFound as error:
        raise CliError(f"{error}; check {named_by} and --region") from None
    except StateTableError as error:
        raise CliError(str(error)) from None
    except NoCredentialsError:
        raise CliError("no AWS credentials found: log in, or pass --profile") from None
    return table


def explain_aws_error(error: BaseException) -> str:
    """One line for a failure: ours as it is, AWS's with its error code."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        operation = getattr(error, "operation_name", None)
        where = f" ({operation})" if operation else ""
        return f"AWS refused{where}: {info.get('Code')}: {info.get('Message')}"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found: log in, or pass --profile"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach AWS: {error} (check --region, --endpoint-url and the network)"
    if isinstance(error, BotoCoreError):
        return f"AWS call failed: {error}"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
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


def confirm_stage(stage: str, action: str, assume_yes: bool) -> None:
    """Before the first write to a protected stage, have the operator type the stage's name."""
    if assume_yes or stage not in PROTECTED_STAGES:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"{action} on {stage} needs the stage name typed on a terminal; "
            "pass --yes to go ahead without asking",
            USAGE,
        )
    answer = input(f"{action} on {stage}. Type the stage name ({stage}) to go on: ").strip()
    if answer != stage:
        raise CliError(f"{answer!r} is not {stage}: nothing changed", USAGE)


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
