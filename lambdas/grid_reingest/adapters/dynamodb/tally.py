"""The tally of items per state, kept in the state table's `~counts` item from its stream.

The table's stream carries every write to an item with the item before and
after (NEW_AND_OLD_IMAGES). The state-counts function adds each batch of
records to `~counts` with one transaction: the counts, and a marker item
named after the batch's first record, written only if it is not there. A
batch Lambda sends again (a retry, a duplicate delivery) finds its marker and
adds nothing, so every change is counted exactly once. Markers expire after
MARKER_DAYS (the table's time-to-live), long after the stream has dropped
their records.

Reading the tally is one strongly consistent GetItem, whatever the table's
size. Neither item has `progress_state`, so no scan, count or reset takes
them for an image.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.schema import EXPIRES_AT, ID, STATE
from grid_reingest.domain.backoff import sleep_before_retry
from grid_reingest.domain.isotime import format_instant, utc_now
from grid_reingest.domain.tally import Tally

COUNTS_ID = "~counts"
MARKER_PREFIX = "~counts-batch#"
UPDATED_AT = "updated_at"
BATCHES = "batches"
RECOUNTED_AT = "recounted_at"
# A stream keeps records 24 hours; Lambda retries a batch at most that long.
MARKER_DAYS = 2
# Transactions on `~counts` from different stream shards can collide
# (TransactionConflict); each is tried again after a jittered wait, this often.
MAX_CONFLICTS = 10


def state_attribute(state: int) -> str:
    """The attribute of `~counts` that holds the count of `state`, e.g. "s3"."""
    return f"s{int(state)}"


def record_changes(records: Iterable[Mapping[str, Any]]) -> list[tuple[int | None, int | None]]:
    """(state before, state after) of each DynamoDB stream record, as Lambda delivers them;
    None where the item did not exist or was not an image (`~control`, the tally's own)."""
    return [
        (_state(record["dynamodb"].get("OldImage")), _state(record["dynamodb"].get("NewImage")))
        for record in records
    ]


def _state(image: Mapping[str, Any] | None) -> int | None:
    if not image or STATE not in image:
        return None
    return int(image[STATE]["N"])


class TallyTable:
    """`~counts` of one state table: added to by the state-counts function, read by the console."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client

    def read(self) -> Tally | None:
        """The tally now, or None when no change has been counted yet."""
        item = self.client.get_item(
            TableName=self.name, Key={ID: {"S": COUNTS_ID}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        counts = {
            int(key[1:]): int(value["N"])
            for key, value in item.items()
            if key[:1] == "s" and key[1:].isdigit() and "N" in value
        }
        return Tally(
            counts=counts,
            updated_at=item.get(UPDATED_AT, {}).get("S"),
            batches=int(item.get(BATCHES, {}).get("N", "0")),
            recounted_at=item.get(RECOUNTED_AT, {}).get("S"),
        )

    def add(self, batch: str, deltas: Mapping[int, int]) -> bool:
        """Add `deltas` to the counts once for the batch named `batch` (its first record's
        eventID); False when that batch was added before. Nothing is written for no deltas."""
        if not deltas:
            return True
        for conflicts in range(MAX_CONFLICTS + 1):
            try:
                self.client.transact_write_items(TransactItems=self._add_items(batch, deltas))
                return True
            except ClientError as error:
                reasons = _cancellation_codes(error)
                if reasons[1:2] == ["ConditionalCheckFailed"]:
                    return False  # this batch's marker is there: it was counted
                if "TransactionConflict" not in reasons or conflicts == MAX_CONFLICTS:
                    raise
            sleep_before_retry(conflicts)
        raise AssertionError("unreachable")

    def _add_items(self, batch: str, deltas: Mapping[int, int]) -> list[dict[str, Any]]:
        names = {"#batches": BATCHES, "#at": UPDATED_AT}
        values: dict[str, Any] = {":one": {"N": "1"}, ":now": {"S": format_instant(utc_now())}}
        adds = ["#batches :one"]
        for n, (state, change) in enumerate(sorted(deltas.items())):
            names[f"#s{n}"] = state_attribute(state)
            values[f":d{n}"] = {"N": str(change)}
            adds.append(f"#s{n} :d{n}")
        expires = int(time.time()) + MARKER_DAYS * 86400
        return [
            {
                "Update": {
                    "TableName": self.name,
                    "Key": {ID: {"S": COUNTS_ID}},
                    "UpdateExpression": f"ADD {', '.join(adds)} SET #at = :now",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            {
                "Put": {
                    "TableName": self.name,
                    "Item": {ID: {"S": MARKER_PREFIX + batch}, EXPIRES_AT: {"N": str(expires)}},
                    "ConditionExpression": "attribute_not_exists(#id)",
                    "ExpressionAttributeNames": {"#id": ID},
                }
            },
        ]

    def replace(self, counts: Mapping[int, int], seen: Tally | None) -> bool:
        """Set the counts to `counts` (an exact recount) if no batch was added since the
        tally was `seen` (None: it did not exist); False when one was."""
        now = {"S": format_instant(utc_now())}
        item: dict[str, Any] = {
            ID: {"S": COUNTS_ID},
            BATCHES: {"N": str(seen.batches if seen else 0)},
            UPDATED_AT: now,
            RECOUNTED_AT: now,
        }
        item.update(
            {state_attribute(s): {"N": str(n)} for s, n in counts.items()},
        )
        if seen is None:
            condition, values = "attribute_not_exists(#batches)", None
        else:
            condition, values = "#batches = :seen", {":seen": {"N": str(seen.batches)}}
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Item": item,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#batches": BATCHES},
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True


def _cancellation_codes(error: ClientError) -> list[str]:
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        return []
    return [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
