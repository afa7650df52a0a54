"""reingest reset: move items from some states back to another (0 by default)."""

from __future__ import annotations

import argparse

from grid_reingest.domain.states import ProgressState, parse_states
from grid_reingest_cli.common import OK, USAGE, CliError, add_aws_options, confirm, open_table
from grid_reingest_cli.progress import Progress

# Above this many items, a reset asks before it starts.
CONFIRM_ABOVE = 1000

DESCRIPTION = """\
Move every item in the --from states to the --to state (default 0, ready for
batch-index again), with attempts back to 0. Each move is conditional: an item
that a worker moves meanwhile is left alone.

Common uses:
  --from 4          re-run images that failed with a known error
  --from 8          re-run images whose retries ran out
  --from 7 --to 0   re-ingest images media-api did not have after their pass
  --from 6,7        start a whole new pass over images already done
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reset",
        help="move items from some states back to 0 (or --to)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  reingest reset --table grid-reingest-PROD --from 4,8 --dry-run",
    )
    parser.add_argument(
        "--from",
        dest="from_states",
        required=True,
        metavar="STATE[,STATE...]",
        help="states to take items from (numbers or names)",
    )
    parser.add_argument(
        "--to",
        dest="to_state",
        default="0",
        metavar="STATE",
        help="state to move them to (default 0)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the counts, change nothing")
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"do not ask for confirmation above {CONFIRM_ABOVE:,} items",
    )
    add_aws_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from_states = parse_states(args.from_states)
        to_state = ProgressState.parse(args.to_state)
    except ValueError as error:
        raise CliError(f"--from/--to: {error}", USAGE) from None
    if to_state.is_claim:
        raise CliError(
            f"--to {int(to_state)}: only a worker may put an item in a claim state", USAGE
        )
    sources = [s for s in from_states if s != to_state]
    if not sources:
        raise CliError("--from names only the --to state: nothing to do", USAGE)

    with open_table(args) as table:
        counts = table.counts(sources)
        total = sum(counts.values())
        for state, n in counts.items():
            print(f"{n:>12,} in {int(state)} ({state.label})")
        target = f"{int(to_state)} ({to_state.label})"
        if args.dry_run:
            print(f"would move {total:,} item(s) to {target} (dry run: nothing changed)")
            return OK
        if total == 0:
            print("nothing to move")
            return OK
        if total > CONFIRM_ABOVE:
            confirm(f"move {total:,} item(s) to {target} in {args.table}?", args.yes)
        progress = Progress(total, "resetting")
        try:
            moved = table.reset(sources, to_state, on_progress=progress.advance)
        finally:
            progress.close()
    print(f"moved {moved:,} item(s) to {target}")
    return OK
