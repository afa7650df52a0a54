"""`reingest`: the operators' entry point, one sub-command per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest.adapters.dynamodb.schema import StateTableError
from grid_reingest_cli import failures, reset, scan_statuses, schedules, stats, upload_ids, watch
from grid_reingest_cli.common import FAILED, INTERRUPTED, USAGE, CliError, explain_aws_error

COMMANDS = (upload_ids, scan_statuses, stats, reset, watch, failures)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="reingest",
        description="Run a Grid's images through its ingestion pipeline again: "
        "operator commands over the state table.",
        epilog="Run a command with no arguments, or with --help, to see its usage.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    schedules.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (0 done, 1 failed, 2 bad usage or input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return USAGE
    if len(argv) == 1 and not argv[0].startswith("-"):
        # A command run bare prints its whole usage, as the Grid's scripts did.
        sub = _subparser(parser, argv[0])
        if sub is not None:
            sub.print_help(sys.stderr)
            return USAGE
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CliError, StateTableError, ClientError, BotoCoreError) as error:
        print(f"reingest {argv[0]}: error: {explain_aws_error(error)}", file=sys.stderr)
        return error.code if isinstance(error, CliError) else FAILED
    except KeyboardInterrupt:
        print(f"reingest {argv[0]}: interrupted", file=sys.stderr)
        return INTERRUPTED


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._subparsers._group_actions:  # argparse offers no public lookup
        if name in getattr(action, "choices", {}):
            return action.choices[name]
    return None
