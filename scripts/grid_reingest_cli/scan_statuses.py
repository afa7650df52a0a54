"""reingest scan-statuses: every item's `id state`, then counts per state."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TextIO

from grid_reingest.domain.states import ProgressState
from grid_reingest_cli.common import (
    MAX_SEGMENTS,
    OK,
    add_aws_options,
    count_lines,
    int_between,
    open_table,
)
from grid_reingest_cli.output import check_output, open_output, pipe_guard
from grid_reingest_cli.progress import Progress

# How a verified item's last error is shown: it came before the attempt that succeeded.
BEFORE_SUCCESS = "(before success)"

DESCRIPTION = """\
Write one `id state` line per item of the state table to OUTPUT (- for
stdout), the format of the Grid's scan script, then print the number of items
in each state. With --with-errors, each line is tab-separated `id state
attempts last_error` instead, for triage. The table is read by parallel scan
segments and streamed: memory does not grow with the table. A verified item
(6) keeps the error of an attempt before the one that succeeded: its column
reads "(before success) <error>".

A regular OUTPUT file appears only once complete (written beside it, then
renamed); a device or FIFO is written in place, and a symlink keeps pointing
where it did.
"""

EPILOG = """\
examples:
  reingest scan-statuses --stage PROD statuses.txt
  reingest scan-statuses --stage PROD --with-errors - | grep -v '\t0\t' | head

exit codes: 0 done; 1 AWS failed (no partial file is left); 2 bad arguments or
an OUTPUT that cannot be written; 130 interrupted; 141 the output was closed (| head)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan-statuses",
        help="write every item's `id state` and count the states",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output", metavar="OUTPUT", help="file to write; - for stdout")
    parser.add_argument(
        "--segments",
        type=int_between(1, MAX_SEGMENTS),
        default=8,
        help=f"parallel scan segments (default 8, at most {MAX_SEGMENTS:,})",
    )
    parser.add_argument(
        "--with-errors",
        action="store_true",
        help="tab-separated `id state attempts last_error` lines (for triage)",
    )
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    add_aws_options(
        parser, parallel=8, parallel_help="connections to DynamoDB; keep at least --segments"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with pipe_guard():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    to_stdout = args.output == "-"
    if not to_stdout:
        check_output(args.output, args.force)
    table = open_table(args)
    counts: Counter[int] = Counter()
    progress = Progress(None, "scanning")
    write = _write_with_errors if args.with_errors else _write
    try:
        if to_stdout:
            write(table, args.segments, sys.stdout, counts, progress)
        else:
            with open_output(args.output) as out:
                write(table, args.segments, out, counts, progress)
    finally:
        progress.close()
        table.close()
    summary = sys.stderr if to_stdout else sys.stdout
    print(*count_lines(counts, args.table), sep="\n", file=summary)
    return OK


def _write(table, segments: int, out: TextIO, counts: Counter[int], progress: Progress) -> None:
    for page in table.scan(segments=segments):
        out.write("".join(f"{image_id} {state}\n" for image_id, state in page))
        counts.update(state for _, state in page)
        progress.advance(len(page))


def _write_with_errors(
    table, segments: int, out: TextIO, counts: Counter[int], progress: Progress
) -> None:
    for page in table.scan_rows(segments=segments):
        out.write(
            "".join(
                f"{r.id}\t{r.state}\t{r.attempts}\t{_error_column(r.state, r.last_error)}\n"
                for r in page
            )
        )
        counts.update(r.state for r in page)
        progress.advance(len(page))


def _error_column(state: int, error: str | None) -> str:
    """An item's last error as the column shows it: a verified item's is history."""
    if error and state == ProgressState.VERIFIED:
        return f"{BEFORE_SUCCESS} {_one_line(error)}"
    return _one_line(error)


def _one_line(text: str | None) -> str:
    """An error as one tab-free line ('' when there is none)."""
    return "" if not text else " ".join(text.split())
