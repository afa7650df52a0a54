"""Lambda's poller of a DynamoDB stream, for a table on the emulator.

A deployed stack maps the state table's stream to state-counts; Lambda reads
each shard in order and invokes the function with batches of records, again
after a failure, until a batch is done. moto keeps the records
(devtools/moto_partiql.py) but cannot run the function, so `StreamPoller`
reads them and calls the handler in this process with the event Lambda would
send::

    poller = StreamPoller(endpoint, "grid-reingest-LOCAL", state_counts.handler)
    poller.drain()        # every record written since the last drain, in batches
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3

from devtools.local_lambda import FakeContext

# The event source mapping's batch size (infra/constructs/state_counts.py).
BATCH_SIZE = 1000


class StreamPoller:
    """Hands a table's stream records to `handler`, `batch_size` at a time, each batch until
    the handler returns (a batch it raised on is handed again at the next drain)."""

    def __init__(
        self,
        endpoint: str | None,
        table: str,
        handler: Callable[[dict[str, Any], Any], Any],
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.table = table
        self.handler = handler
        self.batch_size = batch_size
        self.dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
        self.streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self._after: dict[str, str] = {}  # shard -> the last sequence number handled
        # One drain at a time: like Lambda's, a shard's batches go one after another.
        self._lock = threading.Lock()

    def stream_arn(self) -> str | None:
        """The table's stream, None when it has none."""
        table = self.dynamodb.describe_table(TableName=self.table)["Table"]
        return table.get("LatestStreamArn")

    def drain(self) -> int:
        """Hand every record not yet handled to the handler; how many were handed."""
        with self._lock:
            return self._drain()

    def _drain(self) -> int:
        arn = self.stream_arn()
        if arn is None:
            return 0
        handed = 0
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        for shard in shards:
            handed += self._drain_shard(arn, shard["ShardId"])
        return handed

    def _drain_shard(self, arn: str, shard: str) -> int:
        where: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._after[shard]}
            if shard in self._after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, **where)[
            "ShardIterator"
        ]
        handed = 0
        while iterator:
            page = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
            records = page["Records"]
            if not records:
                return handed
            self.handler({"Records": [_lambda_record(r, arn) for r in records]}, FakeContext())
            self._after[shard] = records[-1]["dynamodb"]["SequenceNumber"]
            handed += len(records)
            iterator = page.get("NextShardIterator")
        return handed


def _lambda_record(record: dict[str, Any], arn: str) -> dict[str, Any]:
    """A record as Lambda's event carries it: its times in epoch seconds, the stream named."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": dynamodb, "eventSourceARN": arn}
