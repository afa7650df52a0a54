"""The state table's shape in DynamoDB: attribute names, the sharded state index, item codecs,
and the plumbing every access to the table shares.

One item per image: `id`, `progress_state` and, so that an item says in words
where it is and why, `state_name`, `state_changed_at`, `attempts` and
`last_error`. Workers find work through the `by-state` index, whose partition
key spreads each state over SHARD_COUNT key values (see docs/state-table.md
for the throughput reasoning).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, Self

from botocore.exceptions import ClientError

from grid_reingest.domain.claims import Source
from grid_reingest.domain.isotime import format_instant, utc_now
from grid_reingest.domain.passes import CHECK_FIRST_LABEL, Arming, Kind
from grid_reingest.domain.states import ProgressState

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
# The image's own overload answers since its last attempt (domain/systemic.py).
OVERLOADS = "overloads"
# The pass that armed the item (its id), and, in a check-first pass, whether it is still
# to be checked first (1) or was sent back to be re-projected (docs/state-table.md).
PASS = "pass"  # noqa: S105 - an attribute name
CHECK_FIRST = "check_first"
REPROJECTED = "reprojected"
LAST_ERROR = "last_error"
CLAIMED_BY = "claimed_by"
CLAIMED_FROM = "claimed_from"
# The table's time-to-live attribute (epoch seconds): only the tally's batch markers have it.
EXPIRES_AT = "expires_at"
# What the table's stream carries of each write: the item before and after (the
# state-counts function needs both states).
STREAM_VIEW = "NEW_AND_OLD_IMAGES"

# Items per Scan page. DynamoDB's own 1 MB cap is ~7,000 of ours, ~10 MB each
# once decoded; 2,000 keeps a scan with 8 segments and 8 queued pages well under
# 150 MB while each round trip still carries enough rows to be worth it.
SCAN_PAGE_ITEMS = 2000
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


class TableNotFound(StateTableError):
    """No table of that name where the client looks (its caller knows what named it)."""


def condition_failed(error: ClientError) -> bool:
    """Whether a write was refused because its condition did not hold (not a fault)."""
    return bool(error.response["Error"]["Code"] == "ConditionalCheckFailedException")


def updated_if(client: Any, **request: Any) -> bool:
    """One conditional UpdateItem (`request` as boto3 takes it); False when its condition
    did not hold, any other error raised."""
    try:
        client.update_item(**request)
    except ClientError as error:
        if condition_failed(error):
            return False
        raise
    return True


def shard_of(image_id: str) -> int:
    """The index shard an id always lives in."""
    return zlib.crc32(image_id.encode()) % SHARD_COUNT


def state_shard(state: ProgressState, shard: int) -> str:
    """The index partition key of one shard of one state, e.g. "3#07"."""
    return f"{int(state)}#{shard:02d}"


class TableAccess:
    """One state table through a DynamoDB client, with a thread pool for parallel calls."""

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return format_instant(self._clock())

    def check(self) -> None:
        """Fail with a clear StateTableError unless the table exists and has the state index."""
        client = self.client
        where = f"region {client.meta.region_name}, endpoint {client.meta.endpoint_url}"
        try:
            table = client.describe_table(TableName=self.name)["Table"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ResourceNotFoundException":
                raise TableNotFound(f"table {self.name!r} does not exist in {where}") from None
            raise StateTableError(
                f"cannot read table {self.name!r} in {where}: {code}: {error}"
            ) from None
        indexes = {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}
        if INDEX_NAME not in indexes:
            raise StateTableError(
                f"table {self.name!r} ({where}) has no {INDEX_NAME!r} index: it is not a "
                "grid-reingest state table"
            )

    def _query_pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs["TableName"] = self.name
        while True:
            page = self.client.query(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

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


def fresh_item(
    image_id: str, state: ProgressState, now: str, arming: Arming | None = None
) -> dict[str, Any]:
    """A new item at `state`, armed as `arming` says (no pass by default)."""
    item = {
        ID: {"S": image_id},
        STATE: {"N": str(int(state))},
        STATE_NAME: {"S": state.label},
        STATE_SHARD: {"S": state_shard(state, shard_of(image_id))},
        CHANGED_AT: {"S": now},
        ATTEMPTS: {"N": "0"},
    }
    if arming is not None and arming.pass_id is not None:
        item[PASS] = {"S": arming.pass_id}
    if arming is not None and arming.kind is Kind.CHECK_FIRST:
        item[CHECK_FIRST] = {"N": "1"}
        item[STATE_NAME] = {"S": CHECK_FIRST_LABEL}
    return item


def plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        ((kind, raw),) = value.items()
        out[key] = int(raw) if kind == "N" else raw
    return out


def create_table(client: Any, name: str) -> None:
    """Create a state table, on demand, and wait for it (local runs and tests).

    Deployed tables come from the CDK app, which declares the same keys, index,
    stream (the state-counts function reads it) and time-to-live attribute.
    """
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": STREAM_VIEW},
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
    client.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT},
    )
