"""Operators' side of the state table: bulk upload, resets and the full scan.

Bulk work runs in parallel batches with bounded queues, so that tens of
millions of ids pass through in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from grid_reingest.adapters.dynamodb.claims import ClaimTable
from grid_reingest.adapters.dynamodb.plain_items import PLAIN_ITEMS_HOOK, read_plain_items
from grid_reingest.adapters.dynamodb.schema import (
    BATCH_GET_MAX,
    BATCH_WRITE_MAX,
    ID,
    MAX_ROUNDS_WITHOUT_PROGRESS,
    SCAN_PAGE_ITEMS,
    SHARD_COUNT,
    STATE,
    StateTableError,
    fresh_item,
)
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.read_ahead import read_ahead
from grid_reingest.domain.states import ProgressState


@dataclass(frozen=True)
class WriteReport:
    """What a bulk upload did."""

    written: int
    already_present: int


class StateTable(ClaimTable):
    """The whole state table, as the operator commands use it: the workers' calls and bulk work."""

    def put_new(
        self,
        ids: Iterable[str],
        *,
        only_new: bool = False,
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> WriteReport:
        """Store each id at state 0, in parallel batches; every id is stored or this raises.

        By default an id already in the table is reset to state 0 (as the Grid's
        upload script did); with `only_new`, ids already present keep their item.
        `ids` must not repeat an id. `on_progress` gets the number of ids done
        after each batch.
        """
        chunk = BATCH_GET_MAX if only_new else BATCH_WRITE_MAX
        written = present = 0
        for done in self._map_bounded(
            lambda batch: self._store_chunk(batch, only_new), _chunks(ids, chunk)
        ):
            written += done[0]
            present += done[1]
            on_progress(done[0] + done[1])
        return WriteReport(written=written, already_present=present)

    def _store_chunk(self, ids: list[str], only_new: bool) -> tuple[int, int]:
        """Write one chunk; returns (written, already present)."""
        missing = ids
        if only_new:
            existing = self._existing(ids)
            missing = [i for i in ids if i not in existing]
        now = self._now()
        for batch in _chunks(missing, BATCH_WRITE_MAX):
            self._batch_write(
                [
                    {"PutRequest": {"Item": fresh_item(i, ProgressState.NOT_STARTED, now)}}
                    for i in batch
                ]
            )
        return len(missing), len(ids) - len(missing)

    def _existing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        request = {self.name: {"Keys": [{ID: {"S": i}} for i in ids], "ProjectionExpression": ID}}
        rounds_without_progress = 0
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            got = response.get("Responses", {}).get(self.name, [])
            found.update(item[ID]["S"] for item in got)
            request = response.get("UnprocessedKeys") or {}
            rounds_without_progress = 0 if got else rounds_without_progress + 1
            if request:
                self._give_up_if_stuck(rounds_without_progress, "BatchGetItem")
                sleep_before_retry(rounds_without_progress)
        return found

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending = requests
        rounds_without_progress = 0
        while pending:
            response = self.client.batch_write_item(RequestItems={self.name: pending})
            left = response.get("UnprocessedItems", {}).get(self.name, [])
            rounds_without_progress = 0 if len(left) < len(pending) else rounds_without_progress + 1
            pending = left
            if pending:
                self._give_up_if_stuck(rounds_without_progress, "BatchWriteItem")
                sleep_before_retry(rounds_without_progress)

    def _give_up_if_stuck(self, rounds: int, operation: str) -> None:
        if rounds >= MAX_ROUNDS_WITHOUT_PROGRESS:
            raise StateTableError(
                f"{operation} on {self.name!r} made no progress in {rounds} rounds: the table is "
                "throttling every write; nothing was lost, run the command again later"
            )

    def scan(self, segments: int = 8, page_queue: int = 8) -> Iterator[list[tuple[str, int]]]:
        """Every item's (id, state), a page at a time, from `segments` parallel scan segments.

        Pages hold at most SCAN_PAGE_ITEMS items and at most `page_queue` wait in
        memory, so memory does not grow with the table.
        """

        def rows(segment: int) -> Iterator[list[tuple[str, int]]]:
            for page in self._scan_pages(segment, segments):
                # The control item has no state: it is not an image.
                yield [(i[ID]["S"], int(i[STATE]["N"])) for i in page["Items"] if STATE in i]

        yield from read_ahead([rows(s) for s in range(segments)], page_queue, name="scan")

    def _scan_pages(self, segment: int, segments: int) -> Iterator[dict[str, Any]]:
        self.client.meta.events.register(
            "before-parse.dynamodb.Scan", read_plain_items, unique_id=PLAIN_ITEMS_HOOK
        )
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Segment": segment,
            "Limit": SCAN_PAGE_ITEMS,
            "TotalSegments": segments,
            "ProjectionExpression": "#id, #state",
            "ExpressionAttributeNames": {"#id": ID, "#state": STATE},
        }
        while True:
            page = self.client.scan(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def reset(
        self,
        from_states: Iterable[ProgressState],
        to_state: ProgressState = ProgressState.NOT_STARTED,
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Move every item in `from_states` to `to_state`, attempts back to 0; returns the count.

        Each move is conditional on the item still being where it was found.
        """
        moved = 0
        for state in from_states:
            if state == to_state:
                continue
            for shard in range(SHARD_COUNT):
                source = Source(state)
                for page in self._candidate_pages(source, shard):
                    done = self.apply(
                        Transition(id=i, expected=state, new=to_state, attempts=0) for i, _ in page
                    )
                    moved += sum(done)
                    on_progress(len(page))
        return moved


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
