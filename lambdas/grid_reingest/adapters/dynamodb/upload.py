"""Uploading ids to the state table: every write conditional, so progress is never lost.

An id already in the table keeps its item (and its state) unless the operator
explicitly resets existing items, and even then never an item a worker holds.
Bulk work runs in parallel batches with bounded queues, so that tens of
millions of ids pass through in bounded memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.claims import ClaimTable
from grid_reingest.adapters.dynamodb.schema import (
    BATCH_GET_MAX,
    CHANGED_AT,
    ID,
    MAX_ROUNDS_WITHOUT_PROGRESS,
    STATE,
    condition_failed,
    fresh_item,
)
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.states import ProgressState

_CLAIM_STATES = tuple(s for s in ProgressState if s.is_claim)


@dataclass
class WriteReport:
    """What a bulk upload did so far; filled in as batches finish, so an interrupted upload
    still says what it wrote."""

    written: int = 0
    # Items already in the table and left as they were, by state.
    kept: Counter[int] = field(default_factory=Counter)
    # Items put back at state 0 (reset_existing), by the state they were in.
    reset: Counter[int] = field(default_factory=Counter)
    # Items a worker holds (claim state, lease running): never reset.
    held: int = 0
    # Ids this run had already written: repeats in the input beyond the dedup window.
    repeated: int = 0

    @property
    def already_present(self) -> int:
        """Ids that were in the table before this run."""
        return sum(self.kept.values()) + sum(self.reset.values()) + self.held

    @property
    def done(self) -> int:
        """Ids dealt with, whatever happened to them."""
        return self.written + self.already_present + self.repeated

    def add(self, other: WriteReport) -> None:
        self.written += other.written
        self.kept.update(other.kept)
        self.reset.update(other.reset)
        self.held += other.held
        self.repeated += other.repeated


class UploadTable(ClaimTable):
    """The state table as `upload-ids` uses it."""

    def put_new(
        self,
        ids: Iterable[str],
        *,
        reset_existing: bool = False,
        lease_seconds: int = 1200,
        on_progress: Callable[[int], None] = lambda n: None,
        report: WriteReport | None = None,
    ) -> WriteReport:
        """Store each id at state 0 unless it is already in the table; every id is dealt with
        or this raises.

        Each write is a conditional PutItem (`attribute_not_exists(id)`), many in
        flight: an item already there keeps its state, attempts and error, whoever
        wrote it and whenever. With `reset_existing`, existing items are put back
        at 0 too — except those a worker holds (a claim state younger than
        `lease_seconds`), and each only if it is still as it was read. `report`
        (a new one by default) is filled in as batches finish, also when this
        raises: pass one to know what was done before a failure.
        """
        report = report if report is not None else WriteReport()
        started = self._now()
        cutoff = format_instant(self._clock() - timedelta(seconds=lease_seconds))

        def store(batch: list[str]) -> tuple[WriteReport, Exception | None]:
            # A batch that fails half way still tells what it had done.
            part = WriteReport()
            try:
                self._store_batch(batch, reset_existing, started, cutoff, part)
            except Exception as error:
                return part, error
            return part, None

        def record(result: tuple[WriteReport, Exception | None]) -> None:
            part, error = result
            report.add(part)
            on_progress(part.done)
            if error is not None:
                raise error

        self._run_bounded(store, _chunks(ids, BATCH_GET_MAX), record)
        return report

    def _store_batch(
        self, ids: list[str], reset_existing: bool, started: str, cutoff: str, out: WriteReport
    ) -> None:
        """Deal with one batch of ids: one read of those already there, then a conditional
        put for each id to write; counts what happened to each in `out`."""
        unique = list(dict.fromkeys(ids))
        out.repeated += len(ids) - len(unique)
        found = self._read_items(unique)
        for image_id in unique:
            self._store_one(
                image_id,
                found.get(image_id),
                reset_existing=reset_existing,
                started=started,
                cutoff=cutoff,
                out=out,
            )

    def _store_one(
        self,
        image_id: str,
        item: dict[str, Any] | None,
        *,
        reset_existing: bool,
        started: str,
        cutoff: str,
        out: WriteReport,
    ) -> None:
        for _ in range(MAX_ROUNDS_WITHOUT_PROGRESS):
            action = self._upload_action(
                image_id, item, reset_existing=reset_existing, started=started, cutoff=cutoff
            )
            if isinstance(action, str):
                _count(out, action, item)
                return
            try:
                self.client.put_item(
                    TableName=self.name, ReturnValuesOnConditionCheckFailure="ALL_OLD", **action
                )
            except ClientError as error:
                if not condition_failed(error):
                    raise
                # The item is not as it was read: decide again from what it is now.
                item = error.response.get("Item")
                continue
            _count(out, "written" if item is None else "reset", item)
            return
        _count(out, "kept", item)  # it kept changing under us: leave it to whoever changes it

    def _upload_action(
        self,
        image_id: str,
        item: dict[str, Any] | None,
        *,
        reset_existing: bool,
        started: str,
        cutoff: str,
    ) -> dict[str, Any] | str:
        """The conditional put for one id, or why it is left as it is."""
        fresh = fresh_item(image_id, ProgressState.NOT_STARTED, self._now())
        if item is None:
            return {
                "Item": fresh,
                "ConditionExpression": "attribute_not_exists(#id)",
                "ExpressionAttributeNames": {"#id": ID},
            }
        state = int(item[STATE]["N"]) if STATE in item else None
        changed_at = item.get(CHANGED_AT, {}).get("S", "")
        if state == ProgressState.NOT_STARTED and changed_at >= started:
            return "repeated"  # written by this very run, earlier in the input
        if state is None or not reset_existing:
            return "kept"
        if state in _CLAIM_STATES and changed_at >= cutoff:
            return "held"
        return {
            "Item": fresh,
            "ConditionExpression": "#state = :state AND #changed = :changed",
            "ExpressionAttributeNames": {"#state": STATE, "#changed": CHANGED_AT},
            "ExpressionAttributeValues": {":state": item[STATE], ":changed": {"S": changed_at}},
        }

    def _read_items(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The items of `ids` that exist (state and time of change only), strongly consistent."""
        found: dict[str, dict[str, Any]] = {}
        request = {
            self.name: {
                "Keys": [{ID: {"S": i}} for i in ids],
                "ProjectionExpression": "#id, #state, #changed",
                "ExpressionAttributeNames": {"#id": ID, "#state": STATE, "#changed": CHANGED_AT},
                "ConsistentRead": True,
            }
        }
        rounds_without_progress = 0
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            got = response.get("Responses", {}).get(self.name, [])
            found.update((item[ID]["S"], item) for item in got)
            request = response.get("UnprocessedKeys") or {}
            rounds_without_progress = 0 if got else rounds_without_progress + 1
            if request:
                self._give_up_if_stuck(rounds_without_progress, "BatchGetItem")
                sleep_before_retry(rounds_without_progress)
        return found


def _count(out: WriteReport, outcome: str, item: dict[str, Any] | None) -> None:
    state = int(item[STATE]["N"]) if item is not None and STATE in item else -1
    if outcome == "written":
        out.written += 1
    elif outcome == "reset":
        out.reset[state] += 1
    elif outcome == "held":
        out.held += 1
    elif outcome == "repeated":
        out.repeated += 1
    else:
        out.kept[state] += 1


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
