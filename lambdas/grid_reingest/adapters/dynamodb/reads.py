"""Reads of the state table: an item by its id, and what the sharded `by-state` index holds
(pages of candidates, counts, whether a state is empty, a sample, failures' errors).

Nothing here writes. The workers may not Scan: every read is a Query of the
index or a read by key (the full scan is the operators', in scans.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.schema import (
    BATCH_GET_MAX,
    CHANGED_AT,
    ID,
    INDEX_NAME,
    LAST_ERROR,
    PASS,
    SHARD_COUNT,
    STATE,
    STATE_SHARD,
    pages,
    plain,
    state_shard,
)
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.claims import Source
from grid_reingest.domain.isotime import format_instant, parse_instant
from grid_reingest.domain.states import ProgressState

# One index page of one shard: [(id, state_changed_at)], and where the next page starts.
CandidatePage = tuple[list[tuple[str, str]], dict[str, Any] | None]


class StateReads:
    """The state table's reads, through one handle (the PassFacts port, and the reads of the
    ClaimStore port)."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def candidate_page(
        self, source: Source, shard: int, start: dict[str, Any] | None, limit: int
    ) -> CandidatePage:
        """One index page of (id, state_changed_at) in one shard, and where the next starts."""
        condition = f"{STATE_SHARD} = :pk"
        values: dict[str, Any] = {":pk": {"S": state_shard(source.state, shard)}}
        if source.changed_before is not None:
            condition += f" AND {CHANGED_AT} < :before"
            values[":before"] = {"S": format_instant(source.changed_before)}
        request: dict[str, Any] = {
            "TableName": self.handle.name,
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if start is not None:
            request["ExclusiveStartKey"] = start
        page = self.handle.client.query(**request)
        items = [(item[ID]["S"], item[CHANGED_AT]["S"]) for item in page["Items"]]
        return items, page.get("LastEvaluatedKey")

    def candidate_pages(self, source: Source, shard: int) -> Iterator[list[tuple[str, str]]]:
        """Every index page of (id, state_changed_at) in one shard of `source`."""
        start: dict[str, Any] | None = None
        while True:
            items, start = self.candidate_page(source, shard, start, BATCH_GET_MAX)
            yield items
            if start is None:
                return

    def get(self, image_id: str) -> dict[str, Any] | None:
        """One item as plain Python values (strongly consistent), or None."""
        item = self.handle.client.get_item(
            TableName=self.handle.name, Key={ID: {"S": image_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else plain(item)

    def items_by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The items of `ids` that exist (id, state, time of change and the pass that armed
        it), strongly consistent, read 100 a call."""
        handle = self.handle
        found: dict[str, dict[str, Any]] = {}
        request = {
            handle.name: {
                "Keys": [{ID: {"S": i}} for i in ids],
                "ProjectionExpression": "#id, #state, #changed, #pass",
                "ExpressionAttributeNames": {
                    "#id": ID,
                    "#state": STATE,
                    "#changed": CHANGED_AT,
                    "#pass": PASS,
                },
                "ConsistentRead": True,
            }
        }
        rounds_without_progress = 0
        while request:
            response = handle.client.batch_get_item(RequestItems=request)
            got = response.get("Responses", {}).get(handle.name, [])
            found.update((item[ID]["S"], item) for item in got)
            request = response.get("UnprocessedKeys") or {}
            rounds_without_progress = 0 if got else rounds_without_progress + 1
            if request:
                handle.give_up_if_stuck(rounds_without_progress, "BatchGetItem")
                sleep_before_retry(rounds_without_progress)
        return found

    def count(self, state: ProgressState) -> int:
        """How many items are in `state`, counted on the index (no item is read)."""
        return self.counts([state])[state]

    def counts(
        self, states: Iterable[ProgressState] = tuple(ProgressState)
    ) -> dict[ProgressState, int]:
        """Items per state, every state queried in parallel."""
        states = list(states)
        pairs = [(s, shard) for s in states for shard in range(SHARD_COUNT)]
        totals = dict.fromkeys(states, 0)
        counted = self.handle.pool.map(lambda p: self._count_shard(*p), pairs)
        for (state, _), n in zip(pairs, counted, strict=True):
            totals[state] += n
        return totals

    def _count_shard(self, state: ProgressState, shard: int) -> int:
        return sum(
            page["Count"]
            for page in pages(
                self.handle.client.query,
                TableName=self.handle.name,
                IndexName=INDEX_NAME,
                KeyConditionExpression=f"{STATE_SHARD} = :pk",
                ExpressionAttributeValues={":pk": {"S": state_shard(state, shard)}},
                Select="COUNT",
            )
        )

    def errors(self, states: Iterable[ProgressState], most: int) -> list[tuple[int, str | None]]:
        """(state, last_error) of up to `most` items in `states`: the index read a page per
        shard, each item then read by key (the workers may not Scan), all in parallel."""
        pool = self.handle.pool
        pairs = [(state, shard) for state in states for shard in range(SHARD_COUNT)]
        share = max(1, math.ceil(most / max(len(pairs), 1)))
        heads = pool.map(
            lambda pair: self.candidate_page(Source(pair[0]), pair[1], None, share), pairs
        )
        ids = [image_id for items, _ in heads for image_id, _ in items][:most]
        found = []
        for item in pool.map(self.get, ids):
            if item is not None and STATE in item:
                found.append((int(item[STATE]), item.get(LAST_ERROR)))
        return found

    def has_any(self, states: Iterable[ProgressState]) -> bool:
        """True when at least one item is in one of `states`: one item asked of every shard,
        all at once."""
        pairs = [(state, shard) for state in states for shard in range(SHARD_COUNT)]
        return any(self.handle.pool.map(lambda pair: self._shard_has_any(*pair), pairs))

    def sample(self, states: Iterable[ProgressState]) -> str | None:
        """The id of one item in one of `states` (the first shard that has one), or None."""
        pairs = [(state, shard) for state in states for shard in range(SHARD_COUNT)]
        for page in self.handle.pool.map(lambda pair: self._shard_head(*pair), pairs):
            if page["Items"]:
                return str(page["Items"][0][ID]["S"])
        return None

    def oldest_change(self, state: ProgressState) -> datetime | None:
        """When the item of `state` that changed longest ago changed (every shard's head, the
        index being sorted by that time, asked at once); None when the state is empty."""
        heads = self.handle.pool.map(
            lambda shard: self._shard_head(state, shard), range(SHARD_COUNT)
        )
        times = [page["Items"][0][CHANGED_AT]["S"] for page in heads if page["Items"]]
        return parse_instant(min(times)) if times else None

    def _shard_has_any(self, state: ProgressState, shard: int) -> bool:
        page = self._shard_head(state, shard)
        return bool(page["Items"] or page.get("LastEvaluatedKey"))

    def _shard_head(self, state: ProgressState, shard: int) -> dict[str, Any]:
        """The first page of one index shard, one item long."""
        page: dict[str, Any] = self.handle.client.query(
            TableName=self.handle.name,
            IndexName=INDEX_NAME,
            Limit=1,
            KeyConditionExpression=f"{STATE_SHARD} = :pk",
            ExpressionAttributeValues={":pk": {"S": state_shard(state, shard)}},
        )
        return page
