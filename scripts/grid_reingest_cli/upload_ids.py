"""reingest upload-ids: put image ids into the state table at state 0."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from grid_reingest_cli.common import OK, USAGE, CliError, add_aws_options, open_table
from grid_reingest_cli.ids_file import IdsFile, read_ids
from grid_reingest_cli.progress import Progress

# Enough to see what is wrong without drowning the terminal.
MAX_WARNINGS_SHOWN = 20

DESCRIPTION = """\
Put the image ids of FILE (one per line; - for stdin) into the state table at
state 0, ready for batch-index.

Whitespace, CRLF line ends and a UTF-8 byte-order mark are stripped; blank lines
and repeated ids are skipped. Lines that cannot be ids (whitespace inside,
control characters) are listed with their line numbers and nothing is written,
unless --skip-invalid. Ids that are not 40 lower-case hex characters are
written, with a warning.

Ids already in the table are reset to state 0 (as the Grid's upload script
did); with --only-new they keep their state. Running the same file again is
safe.
"""

EPILOG = """\
examples:
  reingest upload-ids --table grid-reingest-TEST ids.txt
  cut -d' ' -f1 scan.txt | reingest upload-ids --table T --only-new -

exit codes: 0 every id stored; 1 AWS failed (ids already stored stay stored;
run again to finish); 2 bad arguments or bad lines (nothing written)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload-ids",
        help="put image ids into the state table at state 0",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="file of ids, one per line; - for stdin")
    parser.add_argument(
        "--only-new", action="store_true", help="leave ids already in the table as they are"
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="write the valid ids even if some lines are invalid",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the file and report; write nothing, call nothing",
    )
    add_aws_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.file == "-" else args.file
    with _open(args.file) as handle:
        parsed = read_ids(handle)
    _report_problems(parsed, source)
    if parsed.invalid and not args.skip_invalid:
        raise CliError(
            f"{source}: {len(parsed.invalid)} invalid line(s); nothing written "
            "(fix them, or pass --skip-invalid to write the rest)",
            USAGE,
        )
    if not parsed.ids:
        raise CliError(
            f"{source}: no ids found ({parsed.lines} line(s), all blank or invalid)", USAGE
        )

    written = present = 0
    if not args.dry_run:
        table = open_table(args)
        progress = Progress(len(parsed.ids), "uploading")
        try:
            report = table.put_new(parsed.ids, only_new=args.only_new, on_progress=progress.advance)
        finally:
            progress.close()
            table.close()
        written, present = report.written, report.already_present

    print(f"read        {parsed.lines:>12,} line(s) from {source}")
    print(f"blank       {parsed.blank:>12,}")
    print(f"invalid     {len(parsed.invalid):>12,}" + (" (skipped)" if parsed.invalid else ""))
    print(f"duplicate   {parsed.duplicates:>12,}")
    print(f"unusual ids {len(parsed.unusual):>12,}" + (" (written)" if parsed.unusual else ""))
    if args.dry_run:
        print(f"would write {len(parsed.ids):>12,} (dry run: nothing written)")
    else:
        if args.only_new:
            print(f"kept        {present:>12,} (already in {args.table})")
        print(f"written     {written:>12,} to {args.table} at state 0")
    return OK


@contextmanager
def _open(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", USAGE) from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a file of ids", USAGE) from None
    except PermissionError:
        raise CliError(f"{path}: permission denied", USAGE) from None
    with handle:
        yield handle


def _report_problems(parsed: IdsFile, source: str) -> None:
    for problem in parsed.invalid:
        print(f"error: {problem.describe(source)}", file=sys.stderr)
    for problem in parsed.unusual[:MAX_WARNINGS_SHOWN]:
        print(f"warning: {problem.describe(source)}", file=sys.stderr)
    hidden = len(parsed.unusual) - MAX_WARNINGS_SHOWN
    if hidden > 0:
        print(f"warning: ... and {hidden:,} more unusual ids", file=sys.stderr)
