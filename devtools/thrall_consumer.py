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
    return StreamFollower(kinesis, stream).read()


class StreamFollower:
    """thrall's reading of a stream, as its checkpoints give it: each `read` returns the records
    that arrived since the last (the first, every record so far), so that a long run does not
    read its whole stream again at every look."""

    def __init__(self, kinesis: Any, stream: str) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self._after: dict[str, str] = {}  # shard -> the last sequence number read

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        """The records since the last read: (partition key, message), shard by shard."""
        out = []
        for shard in self.kinesis.list_shards(StreamName=self.stream)["Shards"]:
            out += self._read_shard(shard["ShardId"])
        return out

    def _read_shard(self, shard: str) -> list[tuple[str, dict[str, Any]]]:
        where = (
            {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": self._after[shard],
            }
            if shard in self._after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self.kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard, **where)[
            "ShardIterator"
        ]
        out = []
        while iterator:
            page = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records = page["Records"]
            out += [(r["PartitionKey"], decode(r["Data"])) for r in records]
            if records:
                self._after[shard] = records[-1]["SequenceNumber"]
            if not records and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
        return out
