"""A thrall-like consumer: reads a Kinesis stream and decodes records as the Grid does.

Written apart from the project's encoder on purpose: thrall strips a leading
0x00 byte and gunzips the rest, else reads the bytes as UTF-8 JSON.
"""

from __future__ import annotations

import gzip
import json
from typing import Any


def decode(data: bytes) -> dict[str, Any]:
    """One record's message, as thrall reads it."""
    if data[:1] == b"\x00":
        data = gzip.decompress(data[1:])
    return json.loads(data.decode("utf-8"))


def read_stream(kinesis: Any, stream: str) -> list[tuple[str, dict[str, Any]]]:
    """Every record on the stream so far: (partition key, message), shard by shard."""
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out += [(r["PartitionKey"], decode(r["Data"])) for r in page["Records"]]
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return out
