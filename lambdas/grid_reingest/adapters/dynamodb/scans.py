"""The operators' full scan of the state table: every item, a page at a time, from parallel
segments, in bounded memory.

Items without `progress_state` (the table's control item, the pass records)
are never read as images.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.plain_items import PLAIN_ITEMS_HOOK, read_plain_items
from grid_reingest.adapters.dynamodb.schema import (
    ATTEMPTS,
    CHANGED_AT,
    ID,
    LAST_ERROR,
    SCAN_PAGE_ITEMS,
    STATE,
    pages,
)
from grid_reingest.domain.read_ahead import read_ahead


class Row(NamedTuple):
    """One item as a full scan reads it."""

    id: str
    state: int
    changed_at: str
    attempts: int
    last_error: str | None


class Scans:
    """Scans the state table through one handle."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def scan(self, segments: int = 8, page_queue: int = 8) -> Iterator[list[tuple[str, int]]]:
        """Every item's (id, state), a page at a time, from `segments` parallel scan segments.

        Pages hold at most SCAN_PAGE_ITEMS items and at most `page_queue` wait in
        memory, so memory does not grow with the table.
        """

        def rows(segment: int) -> Iterator[list[tuple[str, int]]]:
            for page in self._scan_pages(segment, segments, (ID, STATE)):
                yield [(i[ID]["S"], int(i[STATE]["N"])) for i in page["Items"] if STATE in i]

        yield from read_ahead([rows(s) for s in range(segments)], page_queue, name="scan")

    def scan_rows(
        self,
        states: Iterable[int] | None = None,
        segments: int = 8,
        page_queue: int = 8,
    ) -> Iterator[list[Row]]:
        """Every item (only those in `states`, when given) with its attempts and last error."""
        wanted = None if states is None else sorted({int(s) for s in states})

        def rows(segment: int) -> Iterator[list[Row]]:
            attributes = (ID, STATE, CHANGED_AT, ATTEMPTS, LAST_ERROR)
            for page in self._scan_pages(segment, segments, attributes, wanted):
                yield [
                    Row(
                        i[ID]["S"],
                        int(i[STATE]["N"]),
                        i.get(CHANGED_AT, {}).get("S", ""),
                        int(i.get(ATTEMPTS, {}).get("N", 0)),
                        i.get(LAST_ERROR, {}).get("S"),
                    )
                    for i in page["Items"]
                    if STATE in i
                ]

        yield from read_ahead([rows(s) for s in range(segments)], page_queue, name="scan")

    def _scan_pages(
        self,
        segment: int,
        segments: int,
        attributes: tuple[str, ...],
        states: list[int] | None = None,
    ) -> Iterator[dict[str, Any]]:
        client = self.handle.client
        client.meta.events.register(
            "before-parse.dynamodb.Scan", read_plain_items, unique_id=PLAIN_ITEMS_HOOK
        )
        names = {f"#a{n}": name for n, name in enumerate(attributes)}
        request: dict[str, Any] = {
            "TableName": self.handle.name,
            "Segment": segment,
            "Limit": SCAN_PAGE_ITEMS,
            "TotalSegments": segments,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
        }
        if states is not None:
            names["#state"] = STATE
            values = {f":s{n}": {"N": str(s)} for n, s in enumerate(states)}
            request["FilterExpression"] = f"#state IN ({', '.join(values)})"
            request["ExpressionAttributeValues"] = values
        return pages(client.scan, **request)
