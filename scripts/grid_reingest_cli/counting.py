"""How the console counts items per state: the tally when it can be trusted, else a scan.

The tally (`~counts`, kept by state-counts from the table's stream) costs one
read whatever the table's size. It cannot be trusted when it does not exist
yet, when a state went below 0, or when the table's stream was switched on
after the table was made (images from before it are not in it) and no exact
recount was saved since. Then the items are counted by scanning the table:
exact (each item read once, so the total is the table's size) but priced by
the table's size, and said so.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.adapters.dynamodb.tally import TallyTable
from grid_reingest.domain.isotime import format_instant, parse_instant
from grid_reingest.domain.tally import Tally
from grid_reingest_cli import prices

# A stream made this long after its table was switched on later: the table may have held
# images the tally never saw.
STREAM_LATE = timedelta(minutes=5)
# DynamoDB reads 4 KB a read unit; a scan's reads are eventually consistent (half a unit).
READ_UNIT_BYTES = 4096
# An image's item as the workers write it (id, state, its name, shard, time, attempts): for
# a table DynamoDB has not measured yet (it does every six hours or so).
ITEM_BYTES = 150
# A scan a look dearer than this is worth a warning: $0.0001 a minute is $0.14 a day.
WARN_ABOVE_USD = 0.0001


@dataclass(frozen=True)
class Counted:
    """Items per state, and how they were counted."""

    counts: dict[int, int]
    by: str  # "tally" or "scan"
    at: str | None = None  # the tally's last update (ISO-8601 UTC)
    why_not_tally: str | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self, now: datetime | None = None) -> str:
        """e.g. 'the tally, its last write counted 4 s ago' or 'a scan of the table — no
        tally yet: …'."""
        if self.by == "scan":
            return f"a scan of the table — {self.why_not_tally}"
        if self.at is None:
            return "the tally"
        age = ((now or datetime.now(UTC)) - parse_instant(self.at)).total_seconds()
        return f"the tally, its last write counted {max(age, 0):,.0f} s ago"


@dataclass(frozen=True)
class ScanPrice:
    """What scanning the whole table costs, from DynamoDB's own (six-hourly) size figures,
    or from its items at ITEM_BYTES each where those are larger (a table not measured yet)."""

    items: int
    size_bytes: int

    @property
    def read_units(self) -> float:
        size = max(self.size_bytes, self.items * ITEM_BYTES)
        return math.ceil(size / READ_UNIT_BYTES) / 2

    @property
    def usd(self) -> float:
        return self.read_units * prices.DYNAMODB_READ_UNIT.value

    def describe(self) -> str:
        size = (
            f"{self.size_bytes / 1e6:,.1f} MB as DynamoDB last measured it, every six hours or so"
            if self.size_bytes >= self.items * ITEM_BYTES
            else f"~{ITEM_BYTES} bytes an item: DynamoDB's own measure, every six hours or so, "
            "is lower or not made yet"
        )
        return (
            f"~{self.read_units:,.0f} read units, ${self.usd:,.4f} on demand "
            f"({self.items:,} items, {size})"
        )


class StateCounter:
    """Counts the items per state of one table for the console."""

    def __init__(self, table: OperatorTable) -> None:
        self.table = table
        self.tally = TallyTable(table.name, table.client)
        self._described = table.client.describe_table(TableName=table.name)["Table"]

    def count(self) -> Counted:
        """The tally if it can be trusted, else an exact count by scanning."""
        tally = self.tally.read()
        why = self.why_not(tally)
        if why is None and tally is not None:
            return Counted(tally.held(), "tally", tally.updated_at)
        return Counted(exact_counts(self.table), "scan", why_not_tally=why)

    def trusted_counts(self) -> dict[int, int] | None:
        """The tally's counts when it can be trusted, else None (never a scan)."""
        tally = self.tally.read()
        return tally.held() if tally is not None and self.why_not(tally) is None else None

    def why_not(self, tally: Tally | None) -> str | None:
        """Why the tally cannot be trusted, or None when it can."""
        if "LatestStreamArn" not in self._described:
            return "the table has no stream: deploy the stack of this version"
        if tally is None:
            return "no tally yet: state-counts has counted no write"
        if not tally.complete:
            return "the tally is incomplete: it began after images were there"
        started = self.stream_started_late()
        if started and not (tally.recounted_at and tally.recounted_at >= started):
            return (
                f"the table's stream began at {started}, after the table: images from before "
                "are not in the tally"
            )
        return None

    def stream_started_late(self) -> str | None:
        """When the stream was switched on, if well after the table was made."""
        label = self._described.get("LatestStreamLabel")
        created = self._described.get("CreationDateTime")
        if not label or created is None:
            return None
        began = datetime.fromisoformat(label).replace(tzinfo=UTC)
        made = created if created.tzinfo else created.replace(tzinfo=UTC)
        if began - made <= STREAM_LATE:
            return None
        return format_instant(began)

    def scan_price(self, items: int = 0) -> ScanPrice:
        """What an exact count (a scan of the table) costs now; `items`: as many as a count
        just found, if DynamoDB's figure (six-hourly) is lower."""
        return ScanPrice(
            max(items, int(self._described.get("ItemCount", 0))),
            int(self._described.get("TableSizeBytes", 0)),
        )


def exact_counts(table: OperatorTable, segments: int = 8) -> dict[int, int]:
    """Items per state, each item read once by a parallel scan of the table: exact, and its
    total the table's size."""
    found: Counter[int] = Counter()
    for page in table.scan(segments=segments):
        found.update(state for _, state in page)
    return dict(sorted(found.items()))
