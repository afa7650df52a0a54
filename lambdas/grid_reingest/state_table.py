"""The state table (DynamoDB): the only code that reads or writes it.

One item per image: `id`, `progress_state` and, so that an item says in words
where it is and why, `state_name`, `state_changed_at`, `attempts` and
`last_error`. Workers find work through the `by-state` index, whose partition
key spreads each state over SHARD_COUNT key values (see docs/state-table.md
for the throughput reasoning).
"""

from __future__ import annotations

import json
import math
import random
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.backoff import sleep_before_retry
from grid_reingest.isotime import format_instant, utc_now
from grid_reingest.read_ahead import read_ahead
from grid_reingest.states import RESET_LABEL, ProgressState

INDEX_NAME = "by-state"
# Each state is spread over this many index partition keys ("<state>#<shard>").
# DynamoDB gives one partition key value about 1,000 writes/s; 16 of them let a
# bulk upload or reset run at ~16,000 writes/s before the index throttles the
# table, while an idle state costs a claimer at most 16 tiny queries.
SHARD_COUNT = 16

ID = "id"
STATE = "progress_state"
STATE_NAME = "state_name"
STATE_SHARD = "state_shard"
CHANGED_AT = "state_changed_at"
ATTEMPTS = "attempts"
LAST_ERROR = "last_error"
CLAIMED_BY = "claimed_by"
CLAIMED_FROM = "claimed_from"

# Items per Scan page. DynamoDB's own 1 MB cap is ~7,000 of ours, ~10 MB each
# once decoded; 2,000 keeps a scan with 8 segments and 8 queued pages well under
# 150 MB while each round trip still carries enough rows to be worth it.
SCAN_PAGE_ITEMS = 2000
# Registers read_plain_items once on a client, however many tables share it.
PLAIN_ITEMS_HOOK = "grid-reingest-plain-scan-items"
# The smallest index page a claim reads from one shard.
CLAIM_PAGE_MIN = 5

# DynamoDB's own limits.
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
# A write batch whose items keep coming back unprocessed is given up after this
# many rounds without any progress (about a minute of backoff).
MAX_ROUNDS_WITHOUT_PROGRESS = 20
# Error text stored on an item is cut to this many characters: an item holds 400 KB.
MAX_ERROR_CHARS = 1000


class StateTableError(Exception):
    """The state table cannot be used as asked; the message says why."""


def shard_of(image_id: str) -> int:
    """The index shard an id always lives in."""
    return zlib.crc32(image_id.encode()) % SHARD_COUNT


def state_shard(state: ProgressState, shard: int) -> str:
    """The index partition key of one shard of one state, e.g. "3#07"."""
    return f"{int(state)}#{shard:02d}"


@dataclass(frozen=True)
class Claim:
    """An item a worker holds: what it needs to record the outcome later."""

    id: str
    attempts: int
    claimed_from: ProgressState
    reclaimed: bool = False  # taken over from a worker whose lease ran out


# One index page of one shard: (shard, [(id, state_changed_at)], where the next page starts)
ShardPage = tuple[int, list[tuple[str, str]], dict[str, Any] | None]


@dataclass(frozen=True)
class Source:
    """Where claims come from: items in `state`, optionally only those last changed before a time.

    `reclaim` marks a claim state whose holder's lease ran out: the item is taken
    only if it has not changed since it was seen, so two reclaimers cannot both win.
    """

    state: ProgressState
    changed_before: datetime | None = None
    reclaim: bool = False


@dataclass(frozen=True)
class Transition:
    """Move one item from `expected` to `new`; applied only if it is still in `expected`.

    With `worker`, only if that worker still holds the claim. `attempts` and
    `error`, when given, replace the stored values; the claim is dropped when the
    new state is not a claim state.
    """

    id: str
    expected: ProgressState
    new: ProgressState
    worker: str | None = None
    attempts: int | None = None
    error: str | None = None
    label: str | None = None  # the state's name on the item, when not its usual one


@dataclass(frozen=True)
class WriteReport:
    """What a bulk upload did."""

    written: int
    already_present: int


class StateTable:
    """The state table, through a DynamoDB client."""

    def __init__(
        self,
        name: str,
        client: Any,
        *,
        max_workers: int = 16,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = name
        self.client = client
        self._max_workers = max_workers
        self._clock = clock
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="state-table")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (they are made again if needed)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None

    def __enter__(self) -> StateTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return format_instant(self._clock())

    # -- checks -----------------------------------------------------------

    def check(self) -> None:
        """Fail with a clear StateTableError unless the table exists and has the state index."""
        client = self.client
        where = f"region {client.meta.region_name}, endpoint {client.meta.endpoint_url}"
        try:
            table = client.describe_table(TableName=self.name)["Table"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ResourceNotFoundException":
                raise StateTableError(
                    f"table {self.name!r} does not exist in {where}; check --table/--stage "
                    "and --region"
                ) from None
            raise StateTableError(
                f"cannot read table {self.name!r} in {where}: {code}: {error}"
            ) from None
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        if INDEX_NAME not in indexes:
            raise StateTableError(
                f"table {self.name!r} ({where}) has no {INDEX_NAME!r} index: it is not a "
                "grid-reingest state table"
            )

    # -- bulk upload ------------------------------------------------------

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
                    {"PutRequest": {"Item": _fresh_item(i, ProgressState.NOT_STARTED, now)}}
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

    # -- claims and transitions -------------------------------------------

    def claim(
        self, sources: Sequence[Source], to_state: ProgressState, limit: int, worker: str
    ) -> list[Claim]:
        """Take up to `limit` items from `sources` (in order) into `to_state` for `worker`.

        Each take is a conditional write, so an item is never held by two workers.
        """
        return list(self.claim_stream(sources, to_state, limit, worker))

    def claim_stream(
        self,
        sources: Sequence[Source],
        to_state: ProgressState,
        limit: int,
        worker: str,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Claim]:
        """Like `claim`, yielding each claim as soon as it is taken.

        Every shard is read at once (the first pages of every source together)
        and the takes run in parallel: a claim costs about two round trips, not
        one per shard or per source. Once `stop()` is true no new round starts;
        what the current round takes is still yielded, and must be given back
        by the caller.
        """
        taken = 0
        # Usually nothing waits to be reclaimed: finding that out should not
        # cost a round trip before the first real candidates are read.
        first_rounds = self._first_rounds(sources, limit)
        for n, source in enumerate(sources):
            # shard -> where its next page starts (None: at the beginning)
            cursors: dict[int, dict[str, Any] | None] = dict.fromkeys(range(SHARD_COUNT))
            pages: list[ShardPage] | None = first_rounds[n]
            while cursors and taken < limit and not stop():
                if pages is None:
                    share = _share(limit - taken, len(cursors))
                    pages = list(
                        self.pool.map(
                            lambda start, s=source, n=share: self._shard_page(s, *start, n),
                            list(cursors.items()),
                        )
                    )
                candidates: list[tuple[str, str]] = []
                for shard, items, next_key in pages:
                    candidates += items
                    if next_key is None:
                        del cursors[shard]
                    else:
                        cursors[shard] = next_key
                pages = None
                # Racing workers read the same shard heads; trying them in a
                # random order makes them collide less.
                random.shuffle(candidates)
                while candidates and taken < limit:
                    # A round of takes at most as wide as the pool: the first
                    # claims come back before the rest are even sent.
                    attempt = candidates[: min(limit - taken, self._max_workers)]
                    candidates = candidates[len(attempt) :]
                    for claim in self.pool.map(
                        lambda seen, s=source: self._take(seen, s, to_state, worker), attempt
                    ):
                        if claim is not None:
                            taken += 1
                            yield claim
                    if stop():
                        break

    def _first_rounds(self, sources: Sequence[Source], limit: int) -> list[list[ShardPage]]:
        """The first page of every shard of every source, read in one parallel round."""
        share = _share(limit, SHARD_COUNT)
        wanted = [(n, shard) for n in range(len(sources)) for shard in range(SHARD_COUNT)]
        rounds: list[list[ShardPage]] = [[] for _ in sources]
        pages = self.pool.map(
            lambda want: (want[0], self._shard_page(sources[want[0]], want[1], None, share)),
            wanted,
        )
        for n, page in pages:
            rounds[n].append(page)
        return rounds

    def _shard_page(
        self, source: Source, shard: int, start: dict[str, Any] | None, limit: int
    ) -> ShardPage:
        return (shard, *self._candidate_page(source, shard, start, limit))

    def _candidate_page(
        self, source: Source, shard: int, start: dict[str, Any] | None, limit: int
    ) -> tuple[list[tuple[str, str]], dict[str, Any] | None]:
        """One index page of (id, state_changed_at) in one shard, and where the next starts."""
        condition = f"{STATE_SHARD} = :pk"
        values: dict[str, Any] = {":pk": {"S": state_shard(source.state, shard)}}
        if source.changed_before is not None:
            condition += f" AND {CHANGED_AT} < :before"
            values[":before"] = {"S": format_instant(source.changed_before)}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        page = self.client.query(**kwargs)
        items = [(item[ID]["S"], item[CHANGED_AT]["S"]) for item in page["Items"]]
        return items, page.get("LastEvaluatedKey")

    def _candidate_pages(self, source: Source, shard: int) -> Iterator[list[tuple[str, str]]]:
        start: dict[str, Any] | None = None
        while True:
            items, start = self._candidate_page(source, shard, start, BATCH_GET_MAX)
            yield items
            if start is None:
                return

    def _take(
        self, seen: tuple[str, str], source: Source, to_state: ProgressState, worker: str
    ) -> Claim | None:
        image_id, seen_changed_at = seen
        names = {"#state": STATE}
        values: dict[str, Any] = {
            ":from": {"N": str(int(source.state))},
            ":to": {"N": str(int(to_state))},
            ":name": {"S": to_state.label},
            ":shard": {"S": state_shard(to_state, shard_of(image_id))},
            ":now": {"S": self._now()},
            ":worker": {"S": worker},
        }
        update = (
            f"SET #state = :to, {STATE_NAME} = :name, {STATE_SHARD} = :shard, "
            f"{CHANGED_AT} = :now, {CLAIMED_BY} = :worker"
        )
        condition = "#state = :from"
        if source.reclaim:
            # The original source state is kept: it is where a release sends the item.
            condition += f" AND {CHANGED_AT} = :seen"
            values[":seen"] = {"S": seen_changed_at}
        else:
            update += f", {CLAIMED_FROM} = :from"
        try:
            item = self.client.update_item(
                TableName=self.name,
                Key={ID: {"S": image_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None  # another worker was faster, or the index was behind
            raise
        return Claim(
            id=image_id,
            attempts=int(item.get(ATTEMPTS, {"N": "0"})["N"]),
            claimed_from=ProgressState(int(item.get(CLAIMED_FROM, {"N": "0"})["N"])),
            reclaimed=source.reclaim,
        )

    def apply(self, transitions: Iterable[Transition]) -> list[bool]:
        """Apply transitions in parallel: True where applied, False where the item moved on."""
        return list(self.pool.map(self._apply_one, transitions))

    def _apply_one(self, t: Transition) -> bool:
        names = {"#state": STATE}
        values: dict[str, Any] = {
            ":expected": {"N": str(int(t.expected))},
            ":new": {"N": str(int(t.new))},
            ":name": {"S": t.label or t.new.label},
            ":shard": {"S": state_shard(t.new, shard_of(t.id))},
            ":now": {"S": self._now()},
        }
        sets = [
            "#state = :new",
            f"{STATE_NAME} = :name",
            f"{STATE_SHARD} = :shard",
            f"{CHANGED_AT} = :now",
        ]
        removes = [] if t.new.is_claim else [CLAIMED_BY, CLAIMED_FROM]
        if t.attempts is not None:
            sets.append(f"{ATTEMPTS} = :attempts")
            values[":attempts"] = {"N": str(t.attempts)}
        if t.error is not None:
            sets.append(f"{LAST_ERROR} = :error")
            values[":error"] = {"S": t.error[:MAX_ERROR_CHARS] or "-"}
        condition = "#state = :expected"
        if t.worker is not None:
            condition += f" AND {CLAIMED_BY} = :worker"
            values[":worker"] = {"S": t.worker}
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self.client.update_item(
                TableName=self.name,
                Key={ID: {"S": t.id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- reading ----------------------------------------------------------

    def get(self, image_id: str) -> dict[str, Any] | None:
        """One item as plain Python values (strongly consistent), or None."""
        item = self.client.get_item(
            TableName=self.name, Key={ID: {"S": image_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _plain(item)

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
        for (state, _), n in zip(
            pairs, self.pool.map(lambda p: self._count_shard(*p), pairs), strict=True
        ):
            totals[state] += n
        return totals

    def _count_shard(self, state: ProgressState, shard: int) -> int:
        return sum(
            page["Count"]
            for page in self._query_pages(
                IndexName=INDEX_NAME,
                KeyConditionExpression=f"{STATE_SHARD} = :pk",
                ExpressionAttributeValues={":pk": {"S": state_shard(state, shard)}},
                Select="COUNT",
            )
        )

    def has_any(self, states: Iterable[ProgressState]) -> bool:
        """True when at least one item is in one of `states`: one item asked of every shard,
        all at once."""
        pairs = [(state, shard) for state in states for shard in range(SHARD_COUNT)]
        return any(self.pool.map(lambda pair: self._shard_has_any(*pair), pairs))

    def _shard_has_any(self, state: ProgressState, shard: int) -> bool:
        page = self.client.query(
            TableName=self.name,
            IndexName=INDEX_NAME,
            Limit=1,
            KeyConditionExpression=f"{STATE_SHARD} = :pk",
            ExpressionAttributeValues={":pk": {"S": state_shard(state, shard)}},
        )
        return bool(page["Items"] or page.get("LastEvaluatedKey"))

    def scan(self, segments: int = 8, page_queue: int = 8) -> Iterator[list[tuple[str, int]]]:
        """Every item's (id, state), a page at a time, from `segments` parallel scan segments.

        Pages hold at most SCAN_PAGE_ITEMS items and at most `page_queue` wait in
        memory, so memory does not grow with the table.
        """

        def rows(segment: int) -> Iterator[list[tuple[str, int]]]:
            for page in self._scan_pages(segment, segments):
                yield [(i[ID]["S"], int(i[STATE]["N"])) for i in page["Items"]]

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

    def _query_pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs["TableName"] = self.name
        while True:
            page = self.client.query(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- resets -----------------------------------------------------------

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

    # -- helpers ------------------------------------------------------------

    def _map_bounded(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """Like pool.map, but keeps only a few tasks queued so a huge input is not held twice."""
        in_flight: list[Any] = []
        limit = self._max_workers * 2
        for item in items:
            in_flight.append(self.pool.submit(fn, item))
            if len(in_flight) >= limit:
                yield in_flight.pop(0).result()
        for future in in_flight:
            yield future.result()


def release_transition(
    claim: Claim, held_in: ProgressState, worker: str, error: str | None = None
) -> Transition:
    """Give a claim back: the item returns to where it was claimed from, attempts unchanged."""
    return Transition(claim.id, held_in, claim.claimed_from, worker=worker, error=error)


def failure_transition(
    claim: Claim, held_in: ProgressState, worker: str, error: str, max_attempts: int
) -> Transition:
    """One more attempt counted: back where the claim came from, or state 8 once spent."""
    attempts = claim.attempts + 1
    if attempts >= max_attempts:
        return Transition(
            claim.id, held_in, ProgressState.UNKNOWN_ERROR, worker, attempts=attempts, error=error
        )
    return Transition(
        claim.id,
        held_in,
        claim.claimed_from,
        worker,
        attempts=attempts,
        error=error,
        label=RESET_LABEL if claim.claimed_from == ProgressState.NOT_STARTED else None,
    )


def read_plain_items(
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """A botocore before-parse hook: a page's Items read with json alone.

    botocore walks every attribute value of every item through the service
    model, about 6 µs of CPU a row, which bounds a scan of millions of rows
    however many segments run. Strings ("S") and numbers ("N") come out of
    that walk exactly as JSON has them, so a page holding nothing else is
    decoded once here and botocore parses only the rest (counts, the next
    key); any other page is left to botocore untouched.
    """
    if customized_response_dict is None or response_dict.get("status_code") != 200:
        return  # a botocore without the means to hand items back, or an error
    try:
        body = json.loads(response_dict["body"])
    except ValueError:
        return  # botocore reports what it cannot parse
    items = body.pop("Items", None) if isinstance(body, dict) else None
    if not items or not _only_plain_values(items):
        return
    response_dict["body"] = json.dumps(body).encode()
    customized_response_dict["Items"] = items


def _only_plain_values(items: Any) -> bool:
    """Whether every attribute value of every item is a string or a number."""
    if type(items) is not list:
        return False
    for item in items:
        if type(item) is not dict:
            return False
        for value in item.values():
            if type(value) is not dict or len(value) != 1:
                return False
            if "S" not in value and "N" not in value:
                return False
    return True


def _fresh_item(image_id: str, state: ProgressState, now: str) -> dict[str, Any]:
    return {
        ID: {"S": image_id},
        STATE: {"N": str(int(state))},
        STATE_NAME: {"S": state.label},
        STATE_SHARD: {"S": state_shard(state, shard_of(image_id))},
        CHANGED_AT: {"S": now},
        ATTEMPTS: {"N": "0"},
    }


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        ((kind, raw),) = value.items()
        out[key] = int(raw) if kind == "N" else raw
    return out


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _share(need: int, shards: int) -> int:
    """How many candidates to read from each shard: a little more than a fair
    share of what is needed, for takes that lose a race."""
    return min(BATCH_GET_MAX, max(CLAIM_PAGE_MIN, math.ceil(need * 1.25 / shards)))


def lease_cutoff(now: datetime, lease_seconds: int) -> datetime:
    """Claims made before this instant belong to a worker that is no longer running."""
    return now - timedelta(seconds=lease_seconds)


def create_table(client: Any, name: str) -> None:
    """Create a state table, on demand, and wait for it (local runs and tests).

    Deployed tables come from the CDK app, which declares the same keys and index.
    """
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": ID, "AttributeType": "S"},
            {"AttributeName": STATE_SHARD, "AttributeType": "S"},
            {"AttributeName": CHANGED_AT, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": ID, "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": INDEX_NAME,
                "KeySchema": [
                    {"AttributeName": STATE_SHARD, "KeyType": "HASH"},
                    {"AttributeName": CHANGED_AT, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    client.get_waiter("table_exists").wait(TableName=name)
