"""reingest start / stop: switch a stage's worker schedules on and off."""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest import names
from grid_reingest.adapters.dynamodb.control import ControlTable
from grid_reingest.adapters.eventbridge import switch_rule
from grid_reingest_cli import clients, counting, passes, preflight
from grid_reingest_cli.common import (
    add_account_options,
    explain_aws_error,
    not_blank,
    open_table,
)
from grid_reingest_cli.errors import FAILED, OK, USAGE, CliError
from grid_reingest_cli.stack import WORKERS, resolve, rule_name

START = """\
Switch a worker's EventBridge schedule on. The stack deploys both schedules
off; batch-index (--worker index, the default) switches its own schedule off
once nothing is left in its start state, batch-check (--worker check) once
nothing is left to check. Start check after index has finished and thrall has
caught up: start warns when the worker has nothing to do, or when batch-check
is started while batch-index still has work (with --stage, or --table).
"""
STOP = """\
Switch worker schedules off (both by default). Invocations already running
finish their batch; nothing is lost: claims left behind return after the lease.
To stop taking work for a while without touching the schedules, see
`reingest pause`.
"""


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    for name, text, summary, default, choices in (
        ("start", START, "switch a worker's schedule on", "index", tuple(WORKERS)),
        ("stop", STOP, "switch worker schedules off", "both", (*WORKERS, "both")),
    ):
        parser = subparsers.add_parser(
            name,
            help=summary,
            description=text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  reingest {name} --stage TEST --worker {default}",
        )
        parser.add_argument(
            "--worker", choices=choices, default=default, help=f"which schedule (default {default})"
        )
        parser.add_argument(
            "--stage", type=not_blank("--stage"), help="TEST, PROD...: find the rules in its stack"
        )
        parser.add_argument(
            "--rule", type=not_blank("--rule"), help="the rule's name, instead of --stage"
        )
        if name == "start":
            parser.add_argument(
                "--table",
                type=not_blank("--table"),
                help="with --rule: the state table, to warn when there is no work",
            )
        add_account_options(parser)
        parser.set_defaults(run=run, enable=name == "start")


def run(args: argparse.Namespace) -> int:
    if not args.stage and not args.rule:
        raise CliError("name the stage (--stage TEST) or the rule (--rule NAME)", USAGE)
    if args.rule and args.worker == "both":
        raise CliError("--rule names one rule: pick --worker index or check", USAGE)
    events = clients.client(args, "events")
    workers = tuple(WORKERS) if args.worker == "both" else (args.worker,)
    if args.enable:
        for warning in _warnings(args, args.worker):
            print(f"warning: {warning}", file=sys.stderr)
    for worker in workers:
        rule = rule_name(args, worker)
        state = switch(events, rule, args.enable)
        print(
            f"{WORKERS[worker]} schedule {rule}: {state['State']} "
            f"({state.get('ScheduleExpression', 'no schedule')})"
        )
    if args.enable and args.stage:
        print(f"watch it with: reingest watch --stage {args.stage}")
    return OK


def switch(events, rule: str, enabled: bool) -> dict:
    """Switch `rule` on or off; a CliError naming the rule if EventBridge refuses."""
    try:
        return switch_rule(events, rule, enabled)
    except LookupError as error:
        raise CliError(f"rule {rule}: ResourceNotFoundException: {error}", FAILED) from None
    except ClientError as error:
        info = error.response["Error"]
        raise CliError(f"rule {rule}: {info.get('Code')}: {info.get('Message')}", FAILED) from None


def _warnings(args: argparse.Namespace, worker: str) -> list[str]:
    # Only warnings: a table or lease table we cannot read must not stop a start.
    found = []
    if worker == "index":
        try:
            found += [w for w in [preflight.lease_table(args)] if w]
        except (CliError, ClientError, BotoCoreError) as error:
            found.append(f"could not look at thrall's lease table: {explain_aws_error(error)}")
    if not args.stage and not args.table:
        return found
    try:
        if not args.table:
            args.table = resolve(args, names.STATE_TABLE_OUTPUT)
        args.parallel = 16
        with open_table(args) as table:
            knobs = ControlTable(table.name, table.client).read().knobs
            works = passes.DEFAULT_WORK
            has_work = table.has_any(works[worker].states)
            index_left: int | None = 0
            if worker == "check" and table.has_any(works["index"].states):
                # The tally, else the index's count of batch-index's two states (once).
                counts = counting.StateCounter(table).trusted_counts() or {
                    int(s): n for s, n in table.counts(works["index"].states).items()
                }
                index_left = passes.remaining(counts, works["index"]) or None
    except (CliError, ClientError, BotoCoreError) as error:
        return [*found, f"could not count the table's items: {explain_aws_error(error)}"]
    found += [w for w in [preflight.paused(knobs, args.stage)] if w]
    return found + passes.start_warnings(worker, has_work=has_work, index_left=index_left)
