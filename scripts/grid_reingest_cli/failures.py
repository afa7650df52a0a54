"""reingest failures: failed items grouped by the cause in their last error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from grid_reingest.adapters.dynamodb.bulk import Row, StateTable
from grid_reingest.domain.reasons import normalise
from grid_reingest.domain.states import ProgressState, parse_states
from grid_reingest_cli.common import OK, USAGE, CliError, add_aws_options, open_table, positive_int
from grid_reingest_cli.output import check_output, open_output, pipe_guard
from grid_reingest_cli.progress import Progress

FAILURE_STATES = (
    ProgressState.KNOWN_ERROR,
    ProgressState.NOT_FOUND_IN_MEDIA_API,
    ProgressState.UNKNOWN_ERROR,
    ProgressState.TOO_BIG,
)
EXAMPLES = 3

DESCRIPTION = """\
List the failed items of the state table grouped by cause: each item's last
error with what differs from image to image (ids, numbers, hex, UUIDs, URLs,
addresses, times) taken out, so that one cause is one group. Each group shows
its count, its share of the failures, the states it is in and three example
ids; the largest group comes first and is number 1.

--export FILE --reason N writes the ids of group N, one per line, for a
re-run (e.g. `reingest upload-ids --reset-existing FILE`); `reingest reset
--reason N` moves just that group back to 0. Groups are computed by a full
scan of the table (items without a last error form one group).
"""

EPILOG = """\
examples:
  reingest failures --stage PROD
  reingest failures --stage PROD --state 8 --json
  reingest failures --stage PROD --reason 2 --export loader-timeouts.txt
  reingest reset --stage PROD --reason 2

exit codes: 0 done; 1 AWS failed; 2 bad arguments, unknown group, or an
output that cannot be written; 130 interrupted; 141 the output was closed (| head)
"""


@dataclass
class Group:
    """Failures that share one normalised reason."""

    reason: str
    count: int = 0
    states: set[int] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)


@dataclass
class Failures:
    """Failures by reason, largest group first."""

    total: int
    groups: list[Group]

    def as_json(self) -> dict:
        return {
            "total": self.total,
            "groups": [
                {
                    "reason": g.reason,
                    "states": sorted(g.states),
                    "count": g.count,
                    "share": round(g.count / self.total, 4) if self.total else 0,
                    "examples": g.examples,
                }
                for g in self.groups
            ],
        }

    def pick(self, number: int) -> Group:
        """Group `number` (1-based, as listed); a clear error when there is none."""
        if not 1 <= number <= len(self.groups):
            raise CliError(
                f"--reason {number}: there are {len(self.groups)} group(s); "
                "run `reingest failures` to see them",
                USAGE,
            )
        return self.groups[number - 1]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "failures",
        help="failed items grouped by cause, with counts and examples",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_state_option(parser)
    parser.add_argument(
        "--reason", type=positive_int, metavar="N", help="with --export: the group to export"
    )
    parser.add_argument("--export", metavar="FILE", help="write the ids of group --reason N")
    parser.add_argument("--force", action="store_true", help="replace the --export FILE")
    parser.add_argument("--json", action="store_true", help="print the groups as JSON")
    parser.add_argument(
        "--segments", type=positive_int, default=8, help="parallel scan segments (default 8)"
    )
    add_aws_options(parser, workers=8, workers_help="connections to DynamoDB")
    parser.set_defaults(run=run)


def add_state_option(parser: argparse.ArgumentParser) -> None:
    """--state: the failure states to group."""
    parser.add_argument(
        "--state",
        dest="failure_states",
        default=",".join(str(int(s)) for s in FAILURE_STATES),
        metavar="STATE[,STATE...]",
        help="states that count as failures (default 4,7,8,9001)",
    )


def parse_failure_states(text: str) -> tuple[ProgressState, ...]:
    try:
        return parse_states(text)
    except ValueError as error:
        raise CliError(f"--state: {error}", USAGE) from None


def run(args: argparse.Namespace) -> int:
    with pipe_guard():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    states = parse_failure_states(args.failure_states)
    if args.export and args.reason is None:
        raise CliError("--export needs --reason N: the group whose ids to write", USAGE)
    if args.export and args.export != "-":
        check_output(args.export, args.force)
    with open_table(args) as table:
        failures = group_failures(table, states, args.segments)
        if args.export:
            group = failures.pick(args.reason)
            written = _export(table, states, group, args.export, args.segments)
            print(
                f"wrote {written:,} id(s) of group {args.reason} ({group.reason}) to {args.export}",
                file=sys.stderr if args.export == "-" else sys.stdout,
            )
            return OK
        if args.reason is not None:
            failures.pick(args.reason)
    if args.json:
        print(json.dumps(failures.as_json(), indent=2))
    else:
        print(render(failures, args.table, states))
    return OK


def group_failures(table: StateTable, states: Iterable[int], segments: int = 8) -> Failures:
    """Every item in `states`, grouped by normalised last error, largest first."""
    groups: dict[str, Group] = {}
    total = 0
    progress = Progress(None, "scanning")
    try:
        for page in table.scan_rows(states, segments=segments):
            for row in page:
                reason = normalise(row.last_error)
                group = groups.get(reason)
                if group is None:
                    group = groups[reason] = Group(reason)
                group.count += 1
                group.states.add(row.state)
                _keep_example(group.examples, row.id)
            total += len(page)
            progress.advance(len(page))
    finally:
        progress.close()
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.reason))
    for group in ordered:
        group.examples.sort()
    return Failures(total, ordered)


def _keep_example(examples: list[str], image_id: str) -> None:
    """Keep the EXAMPLES smallest ids: the same examples whatever order the scan reads."""
    if len(examples) < EXAMPLES:
        examples.append(image_id)
        return
    largest = max(examples)
    if image_id < largest:
        examples[examples.index(largest)] = image_id


def rows_of_group(
    table: StateTable, states: Iterable[int], reason: str, segments: int = 8
) -> Iterator[Row]:
    """The items in `states` whose last error normalises to `reason`, by a new scan."""
    for page in table.scan_rows(states, segments=segments):
        for row in page:
            if normalise(row.last_error) == reason:
                yield row


def render(failures: Failures, table: str, states: Iterable[int]) -> str:
    """The groups as an operator reads them."""
    listed = ",".join(str(int(s)) for s in states)
    if not failures.total:
        return f"no failed items (states {listed}) in {table}"
    lines = [f"{failures.total:,} failed item(s) (states {listed}) in {table}, by reason:"]
    for number, group in enumerate(failures.groups, start=1):
        share = group.count / failures.total
        in_states = ",".join(str(s) for s in sorted(group.states))
        lines.append(
            f"{number:>4}. {group.count:>10,} {share:6.1%}  state {in_states}  {group.reason}"
        )
        lines.append(f"      e.g. {', '.join(group.examples)}")
    lines.append(
        "next: reingest failures --reason N --export FILE, or reingest reset --reason N "
        "(add the same --state)"
    )
    return "\n".join(lines)


def _export(table: StateTable, states, group: Group, path: str, segments: int) -> int:
    written = 0
    if path == "-":
        for row in rows_of_group(table, states, group.reason, segments):
            sys.stdout.write(f"{row.id}\n")
            written += 1
        return written
    with open_output(path) as out:
        for row in rows_of_group(table, states, group.reason, segments):
            out.write(f"{row.id}\n")
            written += 1
    return written
