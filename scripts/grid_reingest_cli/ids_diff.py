"""reingest ids diff A B: the ids of A that are not in B, for files larger than memory."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator

from grid_reingest_cli.common import OK, USAGE, CliError, int_between
from grid_reingest_cli.external_sort import SortedIds, difference, ids_per_chunk, sort_unique
from grid_reingest_cli.ids_file import FileCheck, open_input, parse_line
from grid_reingest_cli.ids_output import (
    add_output_file_options,
    check_output_file,
    output_name,
    say,
    write_ids,
)
from grid_reingest_cli.progress import Progress

DEFAULT_MEMORY_MB = 64
# More than a machine has is a typo (and would be refused by its memory, late).
MAX_MEMORY_MB = 1 << 20
PROGRESS_EVERY = 65_536  # lines
DESCRIPTION = f"""\
Write the ids of file A that are not in file B, once each, in sorted order:
e.g. the originals in the image bucket (from-bucket) that are not in the
Grid's Elasticsearch, from an export of its ids.

Both files hold one id per line (either may be -, stdin). Blank lines,
surrounding whitespace, CRLF line ends and a UTF-8 byte-order mark are ignored,
repeats counted once. A line that is not a Grid id is refused, with its line
number, before anything is written, unless --skip-invalid.

Files larger than memory are sorted in runs of at most --memory-mb on disk (in
TMPDIR, about as much as the two files), then merged: memory stays near
--memory-mb (default {DEFAULT_MEMORY_MB}) plus the interpreter's own, at any size.
"""
EPILOG = """\
examples:
  reingest ids diff bucket-ids.txt indexed-ids.txt --output missing.txt
  reingest ids from-bucket media-service-images | reingest ids diff - indexed-ids.txt

exit codes: 0 done; 2 bad arguments, a line that is not an id (nothing written) or an
OUTPUT that cannot be written; 130 interrupted; 141 the output was closed (| head)
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`reingest ids diff`."""
    parser = commands.add_parser(
        "diff",
        help="the ids of one file that are not in another (files of any size)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", metavar="A", help="file of ids (- for stdin)")
    parser.add_argument("b", metavar="B", help="file of ids to take away from A (- for stdin)")
    add_output_file_options(parser)
    parser.add_argument(
        "--memory-mb",
        type=int_between(1, MAX_MEMORY_MB),
        default=DEFAULT_MEMORY_MB,
        metavar="MB",
        help=f"ids held in memory at once, in MB (default {DEFAULT_MEMORY_MB})",
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="count lines that are not ids, and go on"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.a == "-" and args.b == "-":
        raise CliError("A and B cannot both be - (stdin)", USAGE)
    if args.a == args.b:
        raise CliError(f"A and B are the same file ({args.a}): nothing can be in A only", USAGE)
    check_output_file(args)
    max_ids = ids_per_chunk(args.memory_mb * 2**20)
    check_a, check_b = FileCheck(), FileCheck()
    with tempfile.TemporaryDirectory(prefix="reingest-diff-") as workdir:
        a = _sorted(args.a, check_a, workdir, max_ids, args.skip_invalid)
        b = _sorted(args.b, check_b, workdir, max_ids, args.skip_invalid)
        written = write_ids(_pages(difference(a, b), "writing ids of A not in B"), args.output)
    _summary(_source(args.a), check_a, a.unique)
    _summary(_source(args.b), check_b, None)
    say(
        f"in {_source(args.a)}, not in {_source(args.b)}: {written:,} id(s) written to "
        f"{output_name(args.output)}"
    )
    return OK


def _sorted(
    path: str, check: FileCheck, workdir: str, max_ids: int, skip_invalid: bool
) -> SortedIds:
    source = _source(path)
    progress = Progress(None, f"sorting {source}")
    try:
        with open_input(path) as handle:
            try:
                result = sort_unique(_valid(handle, check, progress), workdir, max_ids)
            except OSError as error:
                raise CliError(f"{source}: cannot read: {error.strerror or error}", USAGE) from None
    finally:
        progress.close()
    if check.invalid:
        for line in check.problem_lines(source):
            say(line)
        if not skip_invalid:
            raise CliError(
                f"{source}: {check.invalid:,} line(s) are not Grid ids; nothing written "
                "(fix them, or pass --skip-invalid to leave them out)",
                USAGE,
            )
    return result


def _valid(lines: Iterator[bytes], check: FileCheck, progress: Progress) -> Iterator[str]:
    number = 0
    for number, raw in enumerate(lines, start=1):
        check.lines = number
        parsed = parse_line(raw, number)
        if parsed is None:
            check.blank += 1
        elif isinstance(parsed, str):
            check.ids += 1
            yield parsed
        else:
            check.add_problem(parsed)
        if number % PROGRESS_EVERY == 0:
            progress.advance(PROGRESS_EVERY)
    progress.advance(number % PROGRESS_EVERY)


def _pages(items: Iterator[str], label: str, size: int = 10_000) -> Iterator[list[str]]:
    progress = Progress(None, label)
    page: list[str] = []
    try:
        for item in items:
            page.append(item)
            if len(page) >= size:
                progress.advance(len(page))
                yield page
                page = []
        if page:
            progress.advance(len(page))
            yield page
    finally:
        progress.close()


def _summary(source: str, check: FileCheck, unique: int | None) -> None:
    extra = [f"{check.blank:,} blank"] if check.blank else []
    if unique is not None and unique < check.ids:
        extra.append(f"{check.ids - unique:,} repeated")
    if check.invalid:
        extra.append(f"{check.invalid:,} invalid, left out")
    tail = f" ({', '.join(extra)})" if extra else ""
    say(f"{source}: {check.lines:,} line(s), {check.ids:,} id(s){tail}")


def _source(path: str) -> str:
    return "<stdin>" if path == "-" else path
