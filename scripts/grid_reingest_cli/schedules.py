"""reingest start / stop: switch a stage's worker schedules on and off."""

from __future__ import annotations

import argparse

from botocore.exceptions import ClientError

from grid_reingest.adapters.aws import make_client
from grid_reingest_cli.common import add_account_options
from grid_reingest_cli.errors import FAILED, OK, USAGE, CliError
from grid_reingest_cli.stack import WORKERS, rule_name

START = """\
Switch a worker's EventBridge schedule on. The stack deploys both schedules
off; batch-index (--worker index, the default) switches its own schedule off
once nothing is left in its start state, batch-check (--worker check) once
nothing is left to check. Start check after index has finished and thrall has
caught up.
"""
STOP = """\
Switch worker schedules off (both by default). Invocations already running
finish their batch; nothing is lost: claims left behind return after the lease.
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
        parser.add_argument("--stage", help="TEST, PROD...: find the rules in its stack")
        parser.add_argument("--rule", help="the rule's name, instead of --stage")
        add_account_options(parser)
        parser.set_defaults(run=run, enable=name == "start")


def run(args: argparse.Namespace) -> int:
    if not args.stage and not args.rule:
        raise CliError("name the stage (--stage TEST) or the rule (--rule NAME)", USAGE)
    if args.rule and args.worker == "both":
        raise CliError("--rule names one rule: pick --worker index or check", USAGE)
    events = make_client("events", region=args.region, profile=args.profile)
    workers = tuple(WORKERS) if args.worker == "both" else (args.worker,)
    for worker in workers:
        rule = rule_name(args, worker)
        try:
            if args.enable:
                events.enable_rule(Name=rule)
            else:
                events.disable_rule(Name=rule)
            state = events.describe_rule(Name=rule)
        except ClientError as error:
            info = error.response["Error"]
            raise CliError(
                f"rule {rule}: {info.get('Code')}: {info.get('Message')}", FAILED
            ) from None
        print(
            f"{WORKERS[worker]} schedule {rule}: {state['State']} "
            f"({state.get('ScheduleExpression', 'no schedule')})"
        )
    if args.enable and args.stage:
        print(f"watch it with: reingest watch --stage {args.stage}")
    return OK
