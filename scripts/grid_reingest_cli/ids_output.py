"""Where the `reingest ids` commands write: a file of ids (or stdout), and a summary on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TextIO

from grid_reingest_cli.output import check_output, open_output


def add_output_file_options(parser: argparse.ArgumentParser) -> None:
    """--output FILE (default -: stdout) and --force."""
    parser.add_argument(
        "--output",
        metavar="FILE",
        default="-",
        help="where the ids go, one per line (default -: stdout)",
    )
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")


def check_output_file(args: argparse.Namespace) -> None:
    """Refuse, before any work, an --output FILE that cannot or must not be written."""
    if args.output != "-":
        check_output(args.output, args.force)


def write_ids(pages: Iterable[list[str]], output: str) -> int:
    """Write pages of ids to `output` (- for stdout), one per line; how many were written.

    A file appears only once complete (see output.open_output). A reader of stdout
    that goes away (`| head`) raises BrokenPipeError, which `reingest` ends on quietly,
    as other Unix tools do."""
    if output == "-":
        return _write_pages(pages, sys.stdout)
    with open_output(output) as out:
        return _write_pages(pages, out)


def output_name(output: str) -> str:
    """How the summary names `output`."""
    return "stdout" if output == "-" else output


def say(line: str) -> None:
    """One line of the summary, on stderr (stdout may be carrying the ids)."""
    print(line, file=sys.stderr)


def _write_pages(pages: Iterable[list[str]], out: TextIO) -> int:
    written = 0
    for page in pages:
        if page:
            out.write("\n".join(page) + "\n")
            written += len(page)
    out.flush()
    return written
