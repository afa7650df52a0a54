"""reingest watch: a pass's progress, refreshed until both workers are done."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from grid_reingest.adapters.aws import make_client
from grid_reingest.domain.states import ProgressState
from grid_reingest_cli.common import OK, add_aws_options, count_lines, open_table
from grid_reingest_cli.stack import WORKERS, rule_name

DESCRIPTION = """\
Print the items per state every --interval seconds, with what changed since
the last look and, with --stage, whether each schedule is on. Stops by itself
when both schedules are off and nothing is held by a worker (or on Ctrl-C).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow a pass until the workers are done",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  reingest watch --stage PROD --interval 300",
    )
    parser.add_argument("--interval", type=float, default=60, help="seconds between looks")
    parser.add_argument("--once", action="store_true", help="look once and stop")
    add_aws_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    events = make_client("events", region=args.region, profile=args.profile) if args.stage else None
    rules = {w: rule_name(args, w) for w in WORKERS} if args.stage else {}
    previous: dict[ProgressState, int] | None = None
    with open_table(args) as table:
        while True:
            counts = table.counts()
            header, *lines = count_lines(counts, args.table, previous)
            print(f"-- {datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z  {header}", *lines, sep="\n")
            running = []
            for worker, rule in rules.items():
                state = events.describe_rule(Name=rule)["State"]
                print(f"{WORKERS[worker]} schedule: {state}")
                if state == "ENABLED":
                    running.append(rule)
            held = counts[ProgressState.IN_PROGRESS] + counts[ProgressState.LOOKING_FOR_IMAGE]
            if args.once or (rules and not running and not held):
                return OK
            previous = counts
            time.sleep(args.interval)
