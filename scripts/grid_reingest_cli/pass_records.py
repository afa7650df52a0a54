"""reingest passes: the passes the state table has seen, newest first, with their reports."""

from __future__ import annotations

import argparse
import json

from grid_reingest.adapters.dynamodb.passes import PassTable
from grid_reingest.domain.isotime import utc_now
from grid_reingest.domain.passes import Pass, Status
from grid_reingest_cli.common import OK, USAGE, CliError, add_aws_options, open_table
from grid_reingest_cli.prices import LAMBDA_GB_SECOND

DESCRIPTION = """\
List the passes run over the state table, newest first: each one's id, kind
(full, or check-first: media-api asked first, only what it lacks re-projected),
where its ids came from, who started it (an operator or the schedule), its
status and, once it ended, its report: items per state, present / repaired /
failed, the largest failure groups. One pass runs at a time.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "passes",
        help="list past and current passes with their reports",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  reingest passes --stage PROD\n"
        "  reingest passes --stage PROD --report 20261206T030000Z",
    )
    parser.add_argument("--report", metavar="ID", help="one pass's whole report")
    parser.add_argument(
        "--most", type=_most, default=20, metavar="N", help="how many passes (default 20)"
    )
    parser.add_argument("--json", action="store_true", help="print the passes as JSON")
    add_aws_options(parser)
    parser.set_defaults(run=run)


def _most(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 200:
        raise argparse.ArgumentTypeError("a whole number from 1 to 200")
    return value


def run(args: argparse.Namespace) -> int:
    with open_table(args) as table:
        history = PassTable(table.name, table.client).history(args.most)
    if args.report:
        found = [p for p in history if p.id == args.report]
        if not found:
            known = ", ".join(p.id for p in history[:10]) or "none yet"
            raise CliError(f"no pass {args.report!r}; passes: {known}", USAGE)
        history = found
    if args.json:
        print(json.dumps({"passes": [p.to_json() for p in history]}, indent=2))
    elif not history:
        print(f"{args.table}: no pass recorded yet (passes are recorded from `reingest run`)")
    else:
        print("\n".join(line for p in history for line in _lines(p, whole=bool(args.report))))
    return OK


def _lines(record: Pass, *, whole: bool) -> list[str]:
    """One pass as an operator reads it."""
    took = record.seconds(utc_now()) / 60
    lines = [
        f"{record.id}  {record.kind.value:<11} {record.status.value:<8} "
        f"{took:,.0f} min  from {record.source} ({record.started_by})"
    ]
    if record.status is Status.LOADING:
        lines.append(f"  loading: {record.loaded:,} ids so far, {len(record.remaining)} parts left")
    if record.report is not None:
        text = record.report.text(record.kind).splitlines()
        lines += [f"  {line}" for line in (text if whole else text[:2])]
    used = record.report.gb_seconds if record.report is not None else record.gb_seconds
    lines.append(
        f"  cost so far: ${used * LAMBDA_GB_SECOND.value:,.2f} of the workers' Lambda "
        f"({used:,.0f} GB-s at the arm64 price; image-projection and DynamoDB apart: "
        "`reingest plan` prices a whole pass)"
    )
    return lines
