"""reingest failures: failed items grouped by the cause in their last error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import TextIO

from grid_reingest.adapters.dynamodb.scans import Row
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest_cli.common import (
    MAX_SEGMENTS,
    OK,
    USAGE,
    CliError,
    add_aws_options,
    int_between,
    open_table,
)
from grid_reingest_cli.groups import (
    DEFAULT_STATES,
    FAILURE_STATES,
    Failures,
    Group,
    add_state_option,
    check_reference,
    find_group,
    given_states,
    group_failures,
    parse_reference,
    rows_of_group,
)
from grid_reingest_cli.output import check_output, open_output, pipe_guard

DESCRIPTION = """\
List the failed items of the state table grouped by cause: each item's last
error with what differs from image to image (ids, numbers, hex, UUIDs, URLs,
addresses, times) taken out, so that one cause in one state is one group. Each
group shows its id, its count, its share of the failures, its state and three
example ids; the largest group comes first and is number 1.

A group's id (e.g. 8-1f3a9c0d: its state, then a digest of state and reason)
is the same in every run. --reason ID --export FILE writes the ids of that
group, one per line, for a re-run (e.g. `reingest upload-ids --reset-existing
FILE`); `reingest reset --reason ID` moves just that group back to 0. A group
number (--reason N) is taken only with the exact --state list it was numbered
over: numbers change with the states listed and as items move. Groups are
computed by a full scan of the table (items without a last error form one
group per state).
"""

EPILOG = """\
examples:
  reingest failures --stage PROD
  reingest failures --stage PROD --state 8 --json
  reingest failures --stage PROD --reason 8-1f3a9c0d --export loader-timeouts.txt
  reingest reset --stage PROD --reason 8-1f3a9c0d

exit codes: 0 done; 1 AWS failed; 2 bad arguments, unknown group, or an
output that cannot be written; 130 interrupted; 141 the output was closed (| head)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "failures",
        help="failed items grouped by cause, with ids, counts and examples",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_state_option(parser, f"states that count as failures (default {DEFAULT_STATES})")
    parser.add_argument(
        "--reason",
        type=parse_reference,
        metavar="ID",
        help="only group ID (as listed, e.g. 8-1f3a9c0d); a group number N only with --state",
    )
    parser.add_argument("--export", metavar="FILE", help="write the ids of group --reason ID")
    parser.add_argument("--force", action="store_true", help="replace the --export FILE")
    parser.add_argument("--json", action="store_true", help="print the groups as JSON")
    parser.add_argument(
        "--segments",
        type=int_between(1, MAX_SEGMENTS),
        default=8,
        help=f"parallel scan segments (default 8, at most {MAX_SEGMENTS:,})",
    )
    add_aws_options(parser, parallel=8, parallel_help="connections to DynamoDB")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with pipe_guard():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    states = given_states(args)
    if args.export and args.reason is None:
        raise CliError("--export needs --reason ID: the group whose ids to write", USAGE)
    check_reference(args.reason, states)
    if args.export and args.export != "-":
        check_output(args.export, args.force)
    with open_table(args) as table:
        shown = None
        if args.reason is None:
            failures = group_failures(table, states or FAILURE_STATES, args.segments)
        else:
            failures, group = find_group(table, args.reason, states, args.segments)
            shown = [group]
        if args.export:
            written = _export(table, group, args.export, args.segments)
            print(
                f"wrote {written:,} id(s) of group {group.id} ({group.reason}, state "
                f"{group.state}) to {args.export}",
                file=sys.stderr if args.export == "-" else sys.stdout,
            )
            return OK
    if args.json:
        print(json.dumps(failures.as_json(shown), indent=2))
    else:
        print(render(failures, args.table, shown))
    return OK


def render(failures: Failures, table: str, shown: list[Group] | None = None) -> str:
    """The groups as an operator reads them (`shown`: only those, numbered as listed)."""
    if not failures.total:
        return f"no failed items (states {failures.listed}) in {table}"
    lines = [f"{failures.total:,} failed item(s) (states {failures.listed}) in {table}, by reason:"]
    for number, group in enumerate(failures.groups, start=1):
        if shown is not None and all(group is not s for s in shown):
            continue
        share = group.count / failures.total
        lines.append(
            f"{number:>4}. {group.id:<14} {group.count:>10,} {share:6.1%}  state "
            f"{group.state:<4}  {group.reason}"
        )
        lines.append(f"      e.g. {', '.join(group.examples)}")
    example = (shown or failures.groups)[0].id
    lines.append(
        f"next: reingest failures --reason ID --export FILE writes a group's ids; "
        f"reingest reset --reason ID moves it back to 0 (ID as listed, e.g. {example})"
    )
    return "\n".join(lines)


def _export(table: OperatorTable, group: Group, path: str, segments: int) -> int:
    rows = rows_of_group(table, group, segments)
    if path == "-":
        return _write_ids(rows, sys.stdout)
    with open_output(path) as out:
        return _write_ids(rows, out)


def _write_ids(rows: Iterable[Row], out: TextIO) -> int:
    written = 0
    for row in rows:
        out.write(f"{row.id}\n")
        written += 1
    return written
