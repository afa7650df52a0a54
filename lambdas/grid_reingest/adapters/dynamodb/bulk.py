"""Operators' side of the state table: the full scan, resets, and (from upload.py) uploads.

Bulk work runs in parallel batches with bounded queues, so that tens of
millions of ids pass through in bounded memory. Every write is conditional:
an upload never overwrites an item it did not mean to, and a reset moves an
item only if it is still exactly as it was found.

Items without `progress_state` (the table's control item) are never read as
images, counted or moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.plain_items import PLAIN_ITEMS_HOOK, read_plain_items
from grid_reingest.adapters.dynamodb.schema import (
    ATTEMPTS,
    CHANGED_AT,
    CLAIMED_BY,
    CLAIMED_FROM,
    ID,
    LAST_ERROR,
    OVERLOADS,
    SCAN_PAGE_ITEMS,
    SHARD_COUNT,
    STATE,
    STATE_NAME,
    STATE_SHARD,
    condition_failed,
    shard_of,
    state_shard,
)
from grid_reingest.adapters.dynamodb.upload import UploadTable
from grid_reingest.domain.claims import Source
from grid_reingest.domain.ids import RESERVED_PREFIX
from grid_reingest.domain.read_ahead import read_ahead
from grid_reingest.domain.states import ProgressState


class Row(NamedTuple):
    """One item as a full scan reads it."""

    id: str
    state: int
    changed_at: str
    attempts: int
    last_error: str | None


class StateTable(UploadTable):
    """The whole state table, as the operator commands use it: the workers' calls, uploads,
    scans and resets."""

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
        self.client.meta.events.register(
            "before-parse.dynamodb.Scan", read_plain_items, unique_id=PLAIN_ITEMS_HOOK
        )
        names = {f"#a{n}": name for n, name in enumerate(attributes)}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Segment": segment,
            "Limit": SCAN_PAGE_ITEMS,
            "TotalSegments": segments,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
        }
        if states is not None:
            names["#state"] = STATE
            values = {f":s{n}": {"N": str(s)} for n, s in enumerate(states)}
            kwargs["FilterExpression"] = f"#state IN ({', '.join(values)})"
            kwargs["ExpressionAttributeValues"] = values
        while True:
            page = self.client.scan(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- resets ---------------------------------------------------------------

    def reset(
        self,
        from_states: Iterable[ProgressState],
        to_state: ProgressState = ProgressState.NOT_STARTED,
        on_progress: Callable[[int], None] = lambda n: None,
        *,
        changed_before: datetime | None = None,
        on_moved: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Move every item in `from_states` to `to_state`, attempts (and overload answers) back to
        0; returns the count.

        Items are found on the index; with `changed_before`, only those whose
        state is older (claims whose lease ran out). Each move is conditional on
        the item being exactly as it was found (state and time of change), so an
        item a worker takes meanwhile is left alone. `on_progress` gets items
        looked at, `on_moved` items moved, as they happen (also before an error).
        """
        candidates = (
            (image_id, state, changed_at)
            for state in from_states
            if state != to_state
            for shard in range(SHARD_COUNT)
            for page in self._candidate_pages(Source(state, changed_before), shard)
            for image_id, changed_at in page
            # The table's own items (`~control`) are never an image to move.
            if not image_id.startswith(RESERVED_PREFIX)
        )
        return self.reset_items(candidates, to_state, on_progress, on_moved=on_moved)

    def reset_items(
        self,
        items: Iterable[tuple[str, int, str]],
        to_state: ProgressState = ProgressState.NOT_STARTED,
        on_progress: Callable[[int], None] = lambda n: None,
        *,
        on_moved: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Move each (id, state, state_changed_at) to `to_state` if it is still so; the count."""
        moved = 0

        def record(done: bool) -> None:
            nonlocal moved
            moved += done
            if done:
                on_moved(1)
            on_progress(1)

        self._run_bounded(
            lambda item: self._reset_one(item[0], item[1], item[2], to_state), items, record
        )
        return moved

    def _reset_one(self, image_id: str, state: int, changed_at: str, to: ProgressState) -> bool:
        try:
            self.client.update_item(
                TableName=self.name,
                Key={ID: {"S": image_id}},
                UpdateExpression=(
                    f"SET #state = :to, {STATE_NAME} = :name, {STATE_SHARD} = :shard, "
                    f"#changed = :now, {ATTEMPTS} = :zero "
                    f"REMOVE {CLAIMED_BY}, {CLAIMED_FROM}, {OVERLOADS}"
                ),
                ConditionExpression="#state = :from AND #changed = :seen",
                ExpressionAttributeNames={"#state": STATE, "#changed": CHANGED_AT},
                ExpressionAttributeValues={
                    ":from": {"N": str(int(state))},
                    ":seen": {"S": changed_at},
                    ":to": {"N": str(int(to))},
                    ":name": {"S": to.label},
                    ":shard": {"S": state_shard(to, shard_of(image_id))},
                    ":now": {"S": self._now()},
                    ":zero": {"N": "0"},
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return False  # moved on since it was found: not ours to move
            raise
        return True
