"""The state table's shape in DynamoDB: attribute names, the sharded state index, item codecs,
and the one conditional update and page loop every part of the adapter shares.

One item per image: `id`, `progress_state` and, so that an item says in words
where it is and why, `state_name`, `state_changed_at`, `attempts` and
`last_error`. Workers find work through the `by-state` index, whose partition
key spreads each state over SHARD_COUNT key values (see docs/state-table.md
for the throughput reasoning).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

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


def pages(call: Callable[..., dict[str, Any]], **request: Any) -> Iterator[dict[str, Any]]:
    """Every page of a Query or Scan (`call`, with `request` as boto3 takes it), in order."""
    while True:
        page = call(**request)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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
