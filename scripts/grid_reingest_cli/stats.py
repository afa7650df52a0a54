"""reingest stats: items per state, counted on the state index."""

from __future__ import annotations

import argparse
import json

from grid_reingest.domain.states import ProgressState
from grid_reingest_cli.common import OK, add_aws_options, count_lines, open_table

DESCRIPTION = """\
Print how many items are in each state, with names and percentages. Counts are
taken on the state index (keys only), not by reading every item.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats",
        help="count items per state",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  reingest stats --table grid-reingest-PROD",
    )
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    add_aws_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_table(args) as table:
        counts = table.counts()
    print(render(counts, args.table, as_json=args.json))
    return OK


def render(counts: dict[ProgressState, int], table: str, as_json: bool = False) -> str:
    """The counts as an operator reads them, or as JSON."""
    total = sum(counts.values())
    if as_json:
        return json.dumps(
            {
                "table": table,
                "total": total,
                "states": {str(int(s)): {"name": s.label, "count": n} for s, n in counts.items()},
            },
            indent=2,
        )
    done = counts.get(ProgressState.VERIFIED, 0)
    lines = count_lines(counts, table)
    if total:
        lines.append(f"verified: {done / total:.1%}")
    return "\n".join(lines)
