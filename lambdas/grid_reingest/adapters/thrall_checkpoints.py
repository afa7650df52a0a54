"""thrall's checkpoints, read from its KCL lease table in DynamoDB.

thrall consumes its low-priority stream with the KCL (3.x, through
kcl-pekko-stream), whose lease table is named after the stream (the KCL
application name thrall gives is the stream's name). Each item is one shard's lease: its hash key
`leaseKey` is the shard id (in the KCL's multi-stream mode
`account:stream:creationEpoch:shardId`), and `checkpoint` the sequence number of
the last record thrall processed on that shard, or a sentinel while there is
none. thrall checkpoints each shard about once a minute while it works, so these
are minutes fresher than CloudWatch's iterator age.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

LEASE_KEY = "leaseKey"
CHECKPOINT = "checkpoint"

# The KCL's SentinelCheckpoint values: where a shard's reading starts, not a
# record processed...
SENTINELS = frozenset({"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "SHARD_END"})
# ...except SHARD_END: every record of a closed shard (a parent after a reshard) was
# processed. It reads as a checkpoint past any sequence number (at most 129 digits).
SHARD_END = "SHARD_END"
SHARD_ENDED = 10**129
# Leases a look at the table reads (lease_table_problem): a stream has a few shards.
PROBE_ITEMS = 100

# Kinesis's own pattern for a sequence number (its API reference): a decimal
# integer of up to 129 digits. Real ones are 56 digits (about 2**185): far beyond
# 64 or 128 bits: they come back as exact Python ints.
_SEQUENCE_NUMBER = re.compile(r"0|[1-9][0-9]{0,128}")


def read_checkpoints(
    client: Any, table: str, *, page_size: int | None = None, max_items: int | None = None
) -> dict[str, int]:
    """Each shard's checkpoint as an int, by shard id, from the lease table `table`.

    A shard not yet checkpointed (a sentinel, or no checkpoint) is left out. A
    checkpoint that is neither raises ValueError naming the table, the lease
    key and the value; so does a shard id two leases share. Client errors
    propagate (the client's retry mode has already retried them).

    Example::

        table = "media-service-PROD-ThrallLowPriorityMessageStream"
        read_checkpoints(boto3.client("dynamodb"), table)
        # {"shardId-000000000003": 4965...}
    """
    pagination = {"PageSize": page_size} if page_size else {}
    if max_items:
        pagination["MaxItems"] = max_items
    pages = client.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="#key, #checkpoint",
        ExpressionAttributeNames={"#key": LEASE_KEY, "#checkpoint": CHECKPOINT},
        PaginationConfig=pagination,
    )
    checkpoints: dict[str, int] = {}
    lease_keys: dict[str, str] = {}
    for page in pages:
        for item in page["Items"]:
            lease_key = item[LEASE_KEY]["S"]
            value = _checkpoint(table, lease_key, item.get(CHECKPOINT))
            if value is None:
                continue
            shard = lease_key.rsplit(":", 1)[-1]
            if shard in lease_keys:
                # Leases of two streams in one table: which shard is whose is unknowable here.
                raise ValueError(
                    f"lease table {table}: leases {lease_keys[shard]!r} and {lease_key!r} "
                    f"are both for shard {shard!r}"
                )
            lease_keys[shard] = lease_key
            checkpoints[shard] = value
    return checkpoints


def _checkpoint(table: str, lease_key: str, attribute: dict[str, Any] | None) -> int | None:
    """A lease's checkpoint as an int; None when the shard has none yet."""
    if attribute is None:
        return None
    raw = attribute.get("S")
    if raw == SHARD_END:
        return SHARD_ENDED
    if raw in SENTINELS:
        return None
    if isinstance(raw, str) and _SEQUENCE_NUMBER.fullmatch(raw):
        return int(raw)
    shown = raw if isinstance(raw, str) else attribute
    raise ValueError(
        f"lease table {table}, lease {lease_key!r}: checkpoint {shown!r} is neither a "
        f"sequence number nor one of {', '.join(sorted(SENTINELS))}"
    )


def lease_table_problem(client: Any, table: str) -> str | None:
    """Why `table` cannot be read as thrall's lease table (one page of it read), in words;
    None when it can. For the operator's commands, before a pass relies on it."""
    try:
        read_checkpoints(client, table, max_items=PROBE_ITEMS)
    except ValueError as error:
        return str(error)
    except ClientError as error:
        info = error.response.get("Error", {})
        return f"{info.get('Code')}: {info.get('Message')}"
    except BotoCoreError as error:
        return f"{type(error).__name__}: {error}"
    return None
