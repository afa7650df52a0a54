"""Operators' side of the state table: bulk upload, resets and the full scan.

Bulk work runs in parallel batches with bounded queues, so that tens of
millions of ids pass through in bounded memory. Every write is conditional:
an upload never overwrites an item it did not mean to, and a reset moves an
item only if it is still exactly as it was found.

Items without `progress_state` (the table's control item) are never read as
images, counted or moved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.claims import ClaimTable
from grid_reingest.adapters.dynamodb.plain_items import PLAIN_ITEMS_HOOK, read_plain_items
from grid_reingest.adapters.dynamodb.schema import (
    ATTEMPTS,
    BATCH_GET_MAX,
    CHANGED_AT,
    CLAIMED_BY,
    CLAIMED_FROM,
    ID,
    LAST_ERROR,
    MAX_ROUNDS_WITHOUT_PROGRESS,
    SCAN_PAGE_ITEMS,
    SHARD_COUNT,
    STATE,
    STATE_NAME,
    STATE_SHARD,
    StateTableError,
    fresh_item,
    shard_of,
    state_shard,
)
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.claims import Source
from grid_reingest.domain.isotime import format_instant
from grid_reingest.domain.read_ahead import read_ahead
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


class Row(NamedTuple):
    """One item as a full scan reads it."""

    id: str
    state: int
    changed_at: str
    attempts: int
    last_error: str | None


class StateTable(ClaimTable):
    """The whole state table, as the operator commands use it: the workers' calls and bulk work."""

    # -- upload ---------------------------------------------------------------

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
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
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

    def _give_up_if_stuck(self, rounds: int, operation: str) -> None:
        if rounds >= MAX_ROUNDS_WITHOUT_PROGRESS:
            raise StateTableError(
                f"{operation} on {self.name!r} made no progress in {rounds} rounds: the table is "
                "throttling every write; nothing was lost, run the command again later"
            )

    def _run_bounded(
        self,
        fn: Callable[[Any], Any],
        items: Iterable[Any],
        on_result: Callable[[Any], None],
    ) -> None:
        """fn over items on the pool, a few in flight; on_result in this thread as each ends.

        On a failure or Ctrl-C, no new work starts and the work in flight is
        waited for and counted before the error is raised again, so that what
        the caller reports is what was done.
        """
        limit = self._max_workers * 2
        in_flight: set[Future[Any]] = set()
        error: BaseException | None = None

        def settle(done: Iterable[Future[Any]]) -> None:
            # Every finished batch is counted, even if one before it failed (or the
            # counting itself was interrupted); the first failure is raised after.
            nonlocal error
            for future in done:
                try:
                    on_result(future.result())
                except BaseException as failure:
                    error = error or failure

        try:
            for item in items:
                in_flight.add(self.pool.submit(fn, item))
                if len(in_flight) >= limit:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    settle(done)
                    if error is not None:
                        break
            while in_flight and error is None:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                settle(done)
        except BaseException as interrupted:  # Ctrl-C while waiting, or the input failed
            error = error or interrupted
        for future in in_flight:
            future.cancel()
        settle(f for f in in_flight if not f.cancelled())
        if error is not None:
            raise error

    # -- scans ----------------------------------------------------------------

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
        """Move every item in `from_states` to `to_state`, attempts back to 0; returns the count.

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

        self._run_bounded(lambda item: self._reset_one(*item, to_state), items, record)
        return moved

    def _reset_one(self, image_id: str, state: int, changed_at: str, to: ProgressState) -> bool:
        try:
            self.client.update_item(
                TableName=self.name,
                Key={ID: {"S": image_id}},
                UpdateExpression=(
                    f"SET #state = :to, {STATE_NAME} = :name, {STATE_SHARD} = :shard, "
                    f"#changed = :now, {ATTEMPTS} = :zero REMOVE {CLAIMED_BY}, {CLAIMED_FROM}"
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
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False  # moved on since it was found: not ours to move
            raise
        return True


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
