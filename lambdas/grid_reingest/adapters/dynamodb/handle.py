"""One state table through a DynamoDB client: its name, the client, a thread pool for
parallel calls and the clock its writes are stamped with.

Every part of the adapter (reads, claims, uploads, scans, resets) takes one of
these rather than inheriting it, so that the parts of one table share a pool
and a client while each stays one small class with one job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, Self

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.schema import (
    INDEX_NAME,
    MAX_ROUNDS_WITHOUT_PROGRESS,
    StateTableError,
    TableNotFound,
)
from grid_reingest.domain.isotime import format_instant, utc_now


class TableHandle:
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
        self.max_workers = max_workers
        self.clock = clock
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The worker threads, made on first use."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="state-table")
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

    def now(self) -> str:
        """The clock's instant as the table stores it."""
        return format_instant(self.clock())

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

    def give_up_if_stuck(self, rounds: int, operation: str) -> None:
        """Raise once a batch call has come back unprocessed `rounds` times in a row."""
        if rounds >= MAX_ROUNDS_WITHOUT_PROGRESS:
            raise StateTableError(
                f"{operation} on {self.name!r} made no progress in {rounds} rounds: the table is "
                "throttling every write; nothing was lost, run the command again later"
            )

    def run_bounded(
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
        limit = self.max_workers * 2
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
