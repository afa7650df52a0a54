"""Reading a file of image ids, one per line, the way operators produce them.

Pure: no AWS. Tolerates what spreadsheets and editors add (a UTF-8 byte-order
mark, CRLF line ends, surrounding whitespace, blank lines, repeats) and
reports everything else with its line number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

BOM = b"\xef\xbb\xbf"
GRID_ID = re.compile(r"[0-9a-f]{40}")
# DynamoDB's limit on a partition key value.
MAX_ID_BYTES = 2048


@dataclass(frozen=True)
class Problem:
    """One line that is not an id (or, for warnings, an id that does not look like the Grid's)."""

    line: int
    reason: str
    text: str

    def describe(self, source: str) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"{source}:{self.line}: {self.reason}: {shown!r}"


@dataclass
class IdsFile:
    """What a file of ids holds: the unique ids in file order, and what was wrong with the rest."""

    ids: list[str] = field(default_factory=list)
    lines: int = 0
    blank: int = 0
    duplicates: int = 0
    invalid: list[Problem] = field(default_factory=list)
    unusual: list[Problem] = field(default_factory=list)


def read_ids(raw_lines: Iterable[bytes]) -> IdsFile:
    """Parse raw lines (bytes, line ends included or not) into an IdsFile."""
    result = IdsFile()
    seen: set[str] = set()
    for number, line in enumerate(raw_lines, start=1):
        result.lines = number
        raw = line[len(BOM) :] if number == 1 and line.startswith(BOM) else line
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            result.invalid.append(Problem(number, "not UTF-8 text", raw.decode("utf-8", "replace")))
            continue
        if not text:
            result.blank += 1
            continue
        reason = _invalid_reason(text)
        if reason:
            result.invalid.append(Problem(number, reason, text))
            continue
        if text in seen:
            result.duplicates += 1
            continue
        seen.add(text)
        result.ids.append(text)
        if not GRID_ID.fullmatch(text):
            result.unusual.append(
                Problem(number, "does not look like a Grid id (40 lower-case hex characters)", text)
            )
    return result


def _invalid_reason(text: str) -> str | None:
    if any(c.isspace() for c in text):
        return "contains whitespace (one id per line)"
    if any(not c.isprintable() for c in text):
        return "contains control characters"
    if len(text.encode()) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes"
    return None
