"""reingest stats: items per state, from the tally (one read), or recounted exactly (--exact)."""

from __future__ import annotations

import argparse
import json
import time

from grid_reingest.adapters.eventbridge import rule_state
from grid_reingest.domain.states import ProgressState
from grid_reingest_cli import clients, counting
from grid_reingest_cli.common import (
    OK,
    USAGE,
    CliError,
    add_aws_options,
    count_lines,
    open_table,
)
from grid_reingest_cli.stack import WORKERS, rule_name

DESCRIPTION = """\
Print how many items are in each state, with names and percentages.

The counts are the table's tally (its `~counts` item, kept by the state-counts
function from the table's stream): one read, whatever the table's size, a few
seconds behind the writes; the total is the number of images in the table.
Where the tally cannot be trusted (none yet, or the table held images before
its stream began) the table is scanned instead, and the command says so.

--exact recounts by scanning the whole table (each item read once) and says
what that costs first; it compares the recount with the tally. --save (with
--exact) then stores the recount as the tally: only on a quiet table (no
schedule on, no upload running), refused if anything was counted meanwhile.
"""

# After a recount, the time to wait for writes made during it to reach the tally
# (Lambda's batching window and poll) before judging that nothing moved.
SETTLE_SECONDS = 15


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="count items per state",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  reingest stats --stage PROD\n  reingest stats --stage PROD --exact",
    )
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument(
        "--exact",
        action="store_true",
        help="recount by scanning the table (its price is printed first)",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="with --exact: store the recount as the tally (a quiet table only)",
    )
    add_aws_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.save and not args.exact:
        raise CliError("--save stores an exact recount: add --exact", USAGE)
    with open_table(args) as table:
        counter = counting.StateCounter(table)
        if not args.exact:
            counted = counter.count()
            print(render(counted, args.table, as_json=args.json))
            return OK
        price = counter.scan_price()
        print(f"recounting {args.table} by a scan: {price.describe()}", flush=True)
        if args.save:
            _refuse_unless_quiet(args)
        before = counter.tally.read()
        started = time.monotonic()
        counts = counting.exact_counts(table)
        counted = counting.Counted(counts, "scan", why_not_tally="an exact recount (--exact)")
        print(render(counted, args.table, as_json=args.json))
        print(f"recounted in {time.monotonic() - started:,.1f} s")
        print(compare(counts, before))
        if args.save:
            _save(counter, counts, before)
    return OK


def render(counted: counting.Counted, table: str, as_json: bool = False) -> str:
    """The counts as an operator reads them, or as JSON."""
    counts = counted.counts
    total = counted.total
    if as_json:
        return json.dumps(
            {
                "table": table,
                "total": total,
                "countedBy": counted.by,
                "tallyUpdatedAt": counted.at,
                "whyNotTally": counted.why_not_tally,
                "states": {
                    str(s): {"name": ProgressState(s).label, "count": n}
                    for s, n in sorted(counts.items())
                },
            },
            indent=2,
        )
    done = counts.get(ProgressState.VERIFIED, 0)
    lines = count_lines(counts, table)
    if total:
        lines.append(f"verified: {done / total:.1%}")
    lines.append(f"counted by {counted.describe()}")
    return "\n".join(lines)


def compare(recount: dict[int, int], tally) -> str:
    """How the tally stands against an exact recount."""
    if tally is None:
        return "the table has no tally yet to compare with"
    held = tally.held()
    differences = [
        f"{state}: tally {held.get(state, 0):,}, recount {recount.get(state, 0):,}"
        for state in sorted(set(held) | set(recount))
        if held.get(state, 0) != recount.get(state, 0)
    ]
    if not differences:
        return "the tally agrees with the recount"
    return (
        "the tally differs from the recount (items moved while it scanned, the tally is "
        "behind, or it began after images were there): " + "; ".join(differences)
    )


def _refuse_unless_quiet(args: argparse.Namespace) -> None:
    if not args.stage:
        return
    events = clients.client(args, "events")
    on = [
        WORKERS[w] for w in WORKERS if rule_state(events, rule_name(args, w))["State"] == "ENABLED"
    ]
    if on:
        raise CliError(
            f"--save needs a quiet table, and {', '.join(on)} is switched on: "
            f"`reingest stop --stage {args.stage}` first (or wait for the pass to end)",
            USAGE,
        )


def _save(counter: counting.StateCounter, counts: dict[int, int], before) -> None:
    time.sleep(SETTLE_SECONDS)
    now = counter.tally.read()
    moved = (now.batches if now else 0) != (before.batches if before else 0)
    if moved or not counter.tally.replace(counts, before):
        raise CliError(
            "writes were counted while the table was scanned: nothing saved; run it again "
            "when nothing writes to the table (no schedule on, no upload running)"
        )
    print(f"saved: the tally now holds this recount ({sum(counts.values()):,} items)")
