"""reingest upload-ids: put image ids into the state table at state 0, keeping what is there."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from grid_reingest.adapters.dynamodb.write_report import WriteReport
from grid_reingest.domain.ids import MAX_ID_CHARS
from grid_reingest.domain.passes import Arming
from grid_reingest.domain.states import ProgressState
from grid_reingest_cli.common import (
    OK,
    USAGE,
    CliError,
    add_aws_options,
    add_lease_option,
    open_table,
)
from grid_reingest_cli.ids_file import (
    DEDUP_WINDOW,
    BinaryInput,
    FileCheck,
    check_lines,
    open_input,
    valid_ids,
)
from grid_reingest_cli.output import confirm_typed, pipe_guard
from grid_reingest_cli.progress import Progress
from grid_reingest_cli.reset import CONFIRM_ABOVE, DEFAULT_LEASE_SECONDS, state_name

DESCRIPTION = f"""\
Put the image ids of FILE (one per line; - for stdin) into the state table at
state 0, ready for batch-index.

Ids already in the table are left exactly as they are (state, attempts, last
error): new ids go in 25 a call as PartiQL INSERTs, and DynamoDB refuses an
INSERT whose id is there, whoever wrote it (your credentials need
dynamodb:PartiQLInsert on the table). So running the same file a second time
writes nothing new and changes nothing; it reports how many ids were already
there, in which states. To start those over, pass --reset-existing: they are
put back at 0 with attempts and errors cleared, except items a worker holds
(states 1 and 5 whose lease has not run out), which are kept and counted.
That asks you to type the stage (or table) name on PROD or above
{CONFIRM_ABOVE:,} ids, unless --yes.

Grid ids are 40 lower-case hex characters; any other line (a CSV header,
quotes, upper case, `.`, `..`) is refused unless --allow-any-id, which still
refuses whitespace, `.`, `..`, ids over {MAX_ID_CHARS} characters and ids starting
with `~` (the table's own keys, such as its control item's). Whitespace
around ids, CRLF line ends, a UTF-8 byte-order mark and blank lines are
ignored; ids repeated within {DEDUP_WINDOW:,} lines are written once (a repeat
further away is found in the table and reported). Invalid lines are listed
with their numbers (the first 20, then a count and a hint) and nothing is
written, unless --skip-invalid.

The file is read twice (checked, then written), never held in memory: any
number of ids uploads in bounded memory. On a terminal, a progress bar shows
the rate and the time left.
"""

EPILOG = """\
examples:
  reingest upload-ids --stage TEST ids.txt
  cut -d' ' -f1 statuses.txt | reingest upload-ids --stage TEST -
  reingest upload-ids --stage TEST --reset-existing ids.txt   # a new pass over the same ids

exit codes: 0 every id dealt with; 1 AWS failed (the ids written so far are
counted; they stay stored, run again to finish); 2 bad arguments or bad lines
(nothing written); 130 interrupted by Ctrl-C (what was written before is
counted; run again to finish); 141 the output was closed (| head)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload-ids",
        help="put image ids into the state table at state 0 (ids already there are kept)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="file of ids, one per line; - for stdin")
    parser.add_argument(
        "--reset-existing",
        action="store_true",
        help="also put ids already in the table back at 0 (never those a worker holds)",
    )
    parser.add_argument(
        "--only-new",
        action="store_true",
        help="accepted for old scripts: keeping existing ids is now the default",
    )
    add_allow_any_id_option(parser)
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
    add_lease_option(parser, "with --reset-existing", DEFAULT_LEASE_SECONDS)
    parser.add_argument(
        "--yes", action="store_true", help="do not ask before --reset-existing on PROD or many ids"
    )
    add_aws_options(parser)
    # `run` arms the ids for its pass (--missing-only, --new-pass); upload-ids alone, none.
    parser.set_defaults(run=run, arming=None)


def add_allow_any_id_option(parser: argparse.ArgumentParser) -> None:
    """--allow-any-id (upload-ids, and run, which uploads through upload-ids)."""
    parser.add_argument(
        "--allow-any-id",
        action="store_true",
        help=f"accept ids that are not Grid ids (still: no whitespace, not . or .., "
        f"at most {MAX_ID_CHARS} characters, not starting with ~)",
    )


def run(args: argparse.Namespace) -> int:
    with pipe_guard():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.only_new:
        print("note: --only-new is the default now; it can be left out", file=sys.stderr)
    if args.reset_existing and args.only_new:
        raise CliError("--only-new and --reset-existing contradict each other", USAGE)
    source = "<stdin>" if args.file == "-" else args.file
    with _ids_source(args.file) as (first_pass, reopen):
        check = checked(first_pass, source, args.allow_any_id, args.skip_invalid)
        _print_file_summary(check, source)
        if args.dry_run:
            print(f"would write {check.ids:>12,} (dry run: nothing written)")
            return OK

        table = open_table(args)
        report = WriteReport()
        with table:
            if args.reset_existing and (check.ids > CONFIRM_ABOVE or _is_prod(args)):
                confirm_typed(
                    args.stage or args.table,
                    f"put every one of {check.ids:,} ids already in {args.table} back at state 0 "
                    "(attempts and errors cleared)?",
                    args.yes,
                )
            progress = Progress(check.ids, "uploading")
            try:
                table.put_new(
                    valid_ids(reopen(), allow_any=args.allow_any_id),
                    reset_existing=args.reset_existing,
                    lease_seconds=args.lease_seconds,
                    on_progress=progress.advance,
                    report=report,
                    arming=args.arming,
                )
            except BaseException as error:
                progress.close()
                what = (
                    "interrupted" if isinstance(error, KeyboardInterrupt) else "stopped by an error"
                )
                print(f"{what} after dealing with {report.done:,} of {check.ids:,} id(s):")
                _print_report(report, args.table, args.arming)
                print("run the same command again to finish: ids already written are kept")
                raise
            progress.close()
    _print_report(report, args.table, args.arming)
    return OK


def checked(lines: Iterable[bytes], source: str, allow_any: bool, skip_invalid: bool) -> FileCheck:
    """Every line of a file of ids checked, as `upload-ids` (and `run`, `plan`) take it: the
    invalid lines listed on stderr, and a CliError (exit 2) for a file that would write
    nothing or that has invalid lines (unless `skip_invalid`)."""
    try:
        check = check_lines(lines, allow_any=allow_any)
    except KeyboardInterrupt:
        print(f"interrupted while reading {source}: nothing written", file=sys.stderr)
        raise
    except BinaryInput as binary:
        raise CliError(f"{source}: {binary}; nothing written", USAGE) from None
    except OSError as error:
        raise CliError(f"{source}: cannot read: {error.strerror or error}", USAGE) from None
    for line in check.problem_lines(source):
        print(line, file=sys.stderr)
    if check.invalid and not skip_invalid:
        raise CliError(
            f"{source}: {check.invalid:,} invalid line(s); nothing written "
            "(fix them, or pass --skip-invalid to write the rest)",
            USAGE,
        )
    if not check.ids:
        raise CliError(
            f"{source}: no ids found ({check.lines:,} line(s), all blank or invalid)", USAGE
        )
    return check


def check_file(path: str, allow_any: bool, skip_invalid: bool) -> FileCheck:
    """`checked` over the file at `path` (- for stdin), read once."""
    source = "<stdin>" if path == "-" else path
    with open_input(path) as handle:
        return checked(handle, source, allow_any, skip_invalid)


def _is_prod(args: argparse.Namespace) -> bool:
    return (args.stage or "").upper() == "PROD"


@contextmanager
def _ids_source(path: str) -> Iterator[tuple[Iterable[bytes], Callable[[], BinaryIO]]]:
    """The lines for a first pass, and a function giving them again for the second.

    A file is simply read twice. Standard input is copied to a temporary file
    on disk as it is read (not to memory), and the second pass reads that.
    """
    if path == "-":
        if sys.stdin.isatty():
            print("reading ids from standard input… (end with Ctrl-D)", file=sys.stderr)
        with tempfile.TemporaryFile(prefix="reingest-ids-") as spool:

            def tee() -> Iterator[bytes]:
                for line in sys.stdin.buffer:
                    spool.write(line)
                    yield line
                spool.flush()

            def again() -> BinaryIO:
                spool.seek(0)
                return spool

            yield tee(), again
        return
    with open_input(path) as handle:

        def again() -> BinaryIO:
            handle.seek(0)
            return handle

        yield handle, again


def _print_file_summary(check: FileCheck, source: str) -> None:
    print(f"read        {check.lines:>12,} line(s) from {source}")
    print(f"blank       {check.blank:>12,}")
    print(f"invalid     {check.invalid:>12,}" + (" (skipped)" if check.invalid else ""))
    print(f"duplicate   {check.duplicates:>12,} (repeats within {DEDUP_WINDOW:,} lines)")


def _print_report(report: WriteReport, table: str, arming: Arming | None = None) -> None:
    start = arming.state if arming is not None else ProgressState.NOT_STARTED
    print(f"written     {report.written:>12,} to {table} at state {int(start)}")
    print(f"already in  {report.already_present:>12,}")
    for state, n in sorted(report.kept.items()):
        print(f"  kept      {n:>12,} in {state_name(state)}")
    for state, n in sorted(report.reset.items()):
        print(f"  reset     {n:>12,} to 0 from {state_name(state)}")
    for state, n in sorted(report.rearmed.items()):
        print(f"  re-armed  {n:>12,} to {int(start)} from {state_name(state)} (a new pass)")
    if report.held:
        print(f"  held      {report.held:>12,} kept: a worker holds them (state 1 or 5)")
    if report.repeated:
        print(f"repeated    {report.repeated:>12,} (ids this run had already written)")
