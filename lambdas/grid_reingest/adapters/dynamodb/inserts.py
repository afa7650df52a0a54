"""New ids into the state table as PartiQL `INSERT`s, 25 a BatchExecuteStatement call.

DynamoDB refuses each `INSERT` on its own (`DuplicateItem`) when its key
exists, so a batch never overwrites an item whoever wrote it and whenever; an
id found there is read and handed back to the upload to decide about.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.reads import StateReads
from grid_reingest.adapters.dynamodb.schema import (
    BATCH_WRITE_MAX,
    CHANGED_AT,
    ID,
    STATE,
    STATE_SHARD,
    StateTableError,
    fresh_item,
)
from grid_reingest.adapters.dynamodb.write_report import WriteReport
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.passes import Arming
from grid_reingest.domain.states import ProgressState

# A new item's attributes that differ from id to id: the INSERT statement's parameters,
# in order. The others are the same for every new item: literals in the statement, so
# that botocore has less to validate and serialise in each call.
_INSERT_PARAMETERS = (ID, STATE_SHARD, CHANGED_AT)
# BatchExecuteStatement answers each statement on its own (Responses[i].Error.Code).
# These are DynamoDB running short of capacity for that statement: send it again.
_INSERT_AGAIN = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
        "InternalServerError",
        "TransactionConflict",
    }
)
# The key exists (INSERT never overwrites): read the item to see whose it is.
_ALREADY_THERE = frozenset({"DuplicateItem", "ConditionalCheckFailed"})

# What to do about an id whose key exists: given its id and its item as read.
Decide = Callable[[str, dict[str, Any]], None]


class Inserts:
    """Inserts new items through one handle; reads what it finds there through `reads`."""

    def __init__(self, handle: TableHandle, reads: StateReads) -> None:
        self.handle = handle
        self.reads = reads

    def insert_new(self, ids: list[str], decide: Decide, out: WriteReport, arming: Arming) -> bool:
        """Insert each id as a new item at the pass's start state, 25 a call; an id whose key
        exists by now is read and handed to `decide`. Statements DynamoDB had no capacity for are
        sent again after a backoff. Whether any key was there."""
        rounds_without_progress = 0
        met = False
        while ids:
            again, there = self._insert_once(ids, out, arming)
            met = met or bool(there)
            again += self._settle_existing(there, decide, out, arming)
            rounds_without_progress = 0 if len(again) < len(ids) else rounds_without_progress + 1
            ids = again
            if ids:
                self.handle.give_up_if_stuck(rounds_without_progress, "BatchExecuteStatement")
                sleep_before_retry(rounds_without_progress)
        return met

    def _insert_once(
        self, ids: list[str], out: WriteReport, arming: Arming
    ) -> tuple[list[str], dict[str, str | None]]:
        """One INSERT of each id: the ids to send again, and those whose key exists (with
        the time of change this run sent for each, None when the call was sent once)."""
        again: list[str] = []
        there: dict[str, str | None] = {}
        for chunk in chunks(ids, BATCH_WRITE_MAX):
            items = [fresh_item(i, arming.state, self.handle.now(), arming) for i in chunk]
            statement = self.statement(arming)
            response = self.handle.client.batch_execute_statement(
                Statements=[
                    {
                        "Statement": statement,
                        "Parameters": [item[a] for a in _INSERT_PARAMETERS],
                    }
                    for item in items
                ]
            )
            answers = response["Responses"]
            # Only a call botocore sent again can have been refused by its own earlier,
            # applied sending. Sent once, a refusal is someone else's item, even one equal
            # to ours: another upload (or a batch of this one) inserting the same id in the
            # same millisecond writes the same item, and was counted as written by both.
            resent = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
            refused: StateTableError | None = None
            for image_id, item, answer in zip(chunk, items, answers, strict=True):
                error = answer.get("Error")
                if error is None:
                    out.written += 1
                elif error.get("Code") in _INSERT_AGAIN:
                    again.append(image_id)
                elif error.get("Code") in _ALREADY_THERE:
                    there[image_id] = item[CHANGED_AT]["S"] if resent else None
                else:
                    # Counted to the end first: the report must hold every id written.
                    refused = refused or self._refused(image_id, error)
            if refused is not None:
                raise refused
        return again, there

    def _settle_existing(
        self, there: dict[str, str | None], decide: Decide, out: WriteReport, arming: Arming
    ) -> list[str]:
        """Read the ids an INSERT found there and decide for each; the ids to insert again."""
        if not there:
            return []
        again = []
        found = self.reads.items_by_id(list(there))
        for image_id, sent in there.items():
            item = found.get(image_id)
            if item is None:
                again.append(image_id)  # refused as there, yet gone: insert it again
            elif _is_state(item, arming.state) and changed_at(item) == sent:
                # Our own insert, applied though its answer was lost (botocore sent
                # the call again; `sent` is None otherwise): written by this very statement.
                out.written += 1
            else:
                decide(image_id, item)
        return again

    @functools.cache  # noqa: B019 - one per table and arming, kept as long as the table
    def statement(self, arming: Arming) -> str:
        """The INSERT of a new item armed as `arming` says, its varying attributes `?`."""
        # Table names are [A-Za-z0-9_.-]: quoted as an identifier, nothing to escape.
        new = fresh_item("-", arming.state, "-", arming)
        item = ", ".join(
            f"'{a}': " + ("?" if a in _INSERT_PARAMETERS else _literal(value))
            for a, value in new.items()
        )
        return f'INSERT INTO "{self.handle.name}" VALUE {{{item}}}'

    def _refused(self, image_id: str, error: dict[str, Any]) -> StateTableError:
        code, message = error.get("Code"), error.get("Message")
        hint = ""
        if code == "AccessDenied":
            hint = (
                "; uploads write new ids with PartiQL INSERT: the caller needs "
                "dynamodb:PartiQLInsert on the table (and BatchGetItem, PutItem)"
            )
        return StateTableError(
            f"DynamoDB refused to insert id {image_id!r} into {self.handle.name!r}: {code}: "
            f"{message}{hint}; the ids written so far stay stored"
        )


def changed_at(item: dict[str, Any]) -> str:
    """An item's time of change as stored ("" when it has none)."""
    return str(item.get(CHANGED_AT, {}).get("S", ""))


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of `size` (the last one shorter)."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _literal(value: dict[str, str]) -> str:
    """A PartiQL literal of a string or number AttributeValue."""
    ((kind, raw),) = value.items()
    if kind == "N":
        return raw
    return "'" + raw.replace("'", "''") + "'"


def _is_state(item: dict[str, Any], state: ProgressState) -> bool:
    return STATE in item and int(item[STATE]["N"]) == state
