"""Reading a file of image ids, one per line, the way operators produce them, as a stream.

Pure: no AWS. Tolerates what spreadsheets and editors add (a UTF-8 byte-order
mark, CRLF line ends, surrounding whitespace, blank lines, repeats) and
reports everything else with its line number. Memory does not grow with the
file: lines are checked one at a time, the first few problems are kept, and
repeats are found within a window of recent ids (the table's conditional
writes make any repeat beyond it harmless).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from grid_reingest.domain.ids import id_problem, is_grid_id
from grid_reingest_cli.errors import USAGE, CliError

BOM = b"\xef\xbb\xbf"
# Enough to see what is wrong without drowning the terminal.
MAX_SHOWN = 20
# Ids remembered to find repeats: between one and two windows' worth, ~15 MB.
DEDUP_WINDOW = 100_000

_SCAN_LINE = re.compile(r"[0-9a-f]{40}\s+\d+")
_HINTS = {
    "scan": "looks like scan-statuses output (`id state`): take the first column, "
    "e.g. cut -d' ' -f1 FILE",
    "csv": "looks like CSV: keep only the id column",
    "header": "looks like a header line: remove it",
    "quoted": "ids are quoted: remove the quotes, e.g. tr -d '\"' < FILE",
    "upper": "upper-case ids: Grid ids are lower case, e.g. tr A-F a-f < FILE",
}


# What a file of bytes is, from its first bytes, when it is not text: said by name.
_MAGIC = {
    b"\x1f\x8b": "a gzip file: decompress it first, e.g. zcat FILE.gz > ids.txt",
    b"PK\x03\x04": "a zip file: unzip it first",
    b"\xff\xfe": "UTF-16 text: convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8",
    b"\xfe\xff": "UTF-16 text: convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8",
}


class BinaryInput(ValueError):
    """The input is not a text file of ids (a NUL byte, or a known binary format)."""


def binary_problem(raw: bytes, number: int) -> str | None:
    """Why a raw line shows a binary file (its first line: a known format), or None."""
    if number == 1:
        for magic, what in _MAGIC.items():
            if raw.startswith(magic):
                return f"not a text file of ids: {what}"
    if b"\x00" in raw:
        return f"a binary file, not text of ids (a NUL byte on line {number:,})"
    return None


@dataclass(frozen=True)
class Problem:
    """One line that is not an id."""

    line: int
    reason: str
    text: str

    def describe(self, source: str) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"{source}:{self.line}: {self.reason}: {shown!r}"


@dataclass
class FileCheck:
    """What a file of ids holds, counted in one pass."""

    lines: int = 0
    blank: int = 0
    ids: int = 0  # valid ids, repeats within the window not counted
    duplicates: int = 0
    invalid: int = 0
    shown: list[Problem] = field(default_factory=list)  # the first MAX_SHOWN invalid lines
    hints: Counter[str] = field(default_factory=Counter)

    def add_problem(self, problem: Problem) -> None:
        """Count an invalid line, keeping the first MAX_SHOWN and a hint about its kind."""
        self.invalid += 1
        if len(self.shown) < MAX_SHOWN:
            self.shown.append(problem)
        kind = _hint(problem)
        if kind:
            self.hints[kind] += 1

    def problem_lines(self, source: str) -> list[str]:
        """The invalid lines shown, a count of the rest, and the hints, for stderr."""
        lines = [f"error: {problem.describe(source)}" for problem in self.shown]
        hidden = self.invalid - len(self.shown)
        if hidden > 0:
            lines.append(f"error: ... and {hidden:,} more invalid line(s)")
        return lines + [f"hint: {hint}" for hint in self.hint_lines()]

    def hint_lines(self) -> list[str]:
        """One line per pattern the invalid lines share, most frequent first."""
        return [f"{_HINTS[kind]} ({n:,} line(s))" for kind, n in self.hints.most_common()]


class RecentIds:
    """Remembers the last `window` to 2 * `window` ids, to find repeats in bounded memory."""

    def __init__(self, window: int = DEDUP_WINDOW) -> None:
        self.window = window
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def seen(self, image_id: str) -> bool:
        """True if the id was seen recently; remembers it either way."""
        if image_id in self._current or image_id in self._previous:
            return True
        self._current.add(image_id)
        if len(self._current) >= self.window:
            self._previous, self._current = self._current, set()
        return False


def parse_line(raw: bytes, number: int, allow_any: bool = False) -> str | Problem | None:
    """One raw line: its id, a Problem, or None when blank."""
    if number == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return Problem(number, "not UTF-8 text", raw.decode("utf-8", "replace").strip())
    if not text:
        return None
    reason = id_problem(text, allow_any=allow_any)
    return text if reason is None else Problem(number, reason, text)


def check_lines(
    raw_lines: Iterable[bytes], allow_any: bool = False, window: int = DEDUP_WINDOW
) -> FileCheck:
    """Read every line once: counts, the first invalid lines, and hints about the rest."""
    check = FileCheck()
    recent = RecentIds(window)
    for number, raw in enumerate(raw_lines, start=1):
        check.lines = number
        binary = binary_problem(raw, number)
        if binary:
            raise BinaryInput(binary)
        parsed = parse_line(raw, number, allow_any)
        if parsed is None:
            check.blank += 1
        elif isinstance(parsed, Problem):
            check.add_problem(parsed)
        elif recent.seen(parsed):
            check.duplicates += 1
        else:
            check.ids += 1
    return check


def valid_ids(
    raw_lines: Iterable[bytes],
    allow_any: bool = False,
    window: int = DEDUP_WINDOW,
) -> Iterator[str]:
    """The valid ids of the lines, in order, without repeats within the window."""
    recent = RecentIds(window)
    for number, raw in enumerate(raw_lines, start=1):
        parsed = parse_line(raw, number, allow_any)
        if isinstance(parsed, str) and not recent.seen(parsed):
            yield parsed


@contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    """The file at `path` (standard input for -) to read lines of bytes from; a CliError
    saying why when it cannot be read."""
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
    except OSError as error:
        raise CliError(f"{path}: cannot read: {error.strerror}", USAGE) from None
    with handle:
        yield handle


def _hint(problem: Problem) -> str | None:
    text = problem.text
    if _SCAN_LINE.fullmatch(text):
        return "scan"
    if "," in text or "\t" in text or ";" in text:
        return "header" if problem.line == 1 else "csv"
    if text.strip("\"'").lower() in ("id", "ids", "image_id", "imageid"):
        return "header"
    if text[:1] in "\"'" and is_grid_id(text.strip("\"'").lower()):
        return "quoted"
    if is_grid_id(text.lower()):
        return "upper"
    return None
