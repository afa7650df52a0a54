"""reingest scan-statuses: every item's `id state`, then counts per state."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from typing import TextIO

from grid_reingest_cli.common import OK, USAGE, CliError, add_aws_options, count_lines, open_table
from grid_reingest_cli.progress import Progress

DESCRIPTION = """\
Write one `id state` line per item of the state table to OUTPUT (- for
stdout), the format of the Grid's scan script, then print the number of items
in each state. The table is read by parallel scan segments and streamed: memory
does not grow with the table. A file OUTPUT appears only once complete.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan-statuses",
        help="write every item's `id state` and count the states",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  reingest scan-statuses --table grid-reingest-PROD statuses.txt",
    )
    parser.add_argument("output", metavar="OUTPUT", help="file to write; - for stdout")
    parser.add_argument(
        "--segments", type=int, default=8, help="parallel scan segments (default 8)"
    )
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    add_aws_options(
        parser, workers=8, workers_help="connections to DynamoDB; keep at least --segments"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.segments <= 1000:
        raise CliError(f"--segments {args.segments}: must be between 1 and 1000", USAGE)
    to_stdout = args.output == "-"
    if not to_stdout:
        _check_output(args.output, args.force)
    table = open_table(args)
    counts: Counter[int] = Counter()
    progress = Progress(None, "scanning")
    if to_stdout:
        _write(table, args.segments, sys.stdout, counts, progress)
    else:
        directory = os.path.dirname(os.path.abspath(args.output))
        with tempfile.NamedTemporaryFile(
            "w", dir=directory, prefix=".scan-", suffix=".partial", delete=False, encoding="utf-8"
        ) as tmp:
            try:
                _write(table, args.segments, tmp, counts, progress)
            except BaseException:
                tmp.close()
                os.unlink(tmp.name)
                raise
        os.replace(tmp.name, args.output)
    progress.close()
    summary = sys.stderr if to_stdout else sys.stdout
    print(*count_lines(counts, args.table), sep="\n", file=summary)
    return OK


def _write(table, segments: int, out: TextIO, counts: Counter[int], progress: Progress) -> None:
    for page in table.scan(segments=segments):
        out.write("".join(f"{image_id} {state}\n" for image_id, state in page))
        counts.update(state for _, state in page)
        progress.advance(len(page))


def _check_output(path: str, force: bool) -> None:
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory", USAGE)
    if os.path.exists(path) and not force:
        raise CliError(f"{path}: already exists; pass --force to replace it", USAGE)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{path}: folder {directory} does not exist", USAGE)
