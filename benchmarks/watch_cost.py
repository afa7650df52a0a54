"""What one look of `reingest watch` costs at 40M items: counting on the index against the tally.

Both looks are the console's real code, through a real botocore client, at the
table's real size: a before-send hook plays a DynamoDB table of N items spread
over the states (a pass half way), answering each request as DynamoDB would
(Query pages end at 1 MB read, `Select=COUNT` returns counts, `Limit=1` one
entry) and metering it as DynamoDB bills it: each page's entries rounded up to
4 KB, half a read unit for an eventually consistent read, one for a strongly
consistent one, at least one of either per request. Entry sizes are the sizes
of the items' attributes as the workers write them (names and values).

- before: the counts per state as `watch` took them — `Select=COUNT` on the
  16 shards of every state — and the control item;
- after: `StateCounter.count()` (the `~counts` item), the control item, and
  the index asked whether a worker whose rule is off still holds anything
  (both rules off: the dearest case).

    python -m benchmarks watch_cost [--items 40000000] [--write]
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from benchmarks.report import machine, table, write_section
from grid_reingest.adapters.dynamodb.control import CONTROL_ID
from grid_reingest.adapters.dynamodb.schema import (
    CHANGED_AT,
    ID,
    INDEX_NAME,
    SHARD_COUNT,
    STATE_SHARD,
    state_shard,
)
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.adapters.dynamodb.tally import COUNTS_ID, state_attribute
from grid_reingest.domain.states import ProgressState as S
from grid_reingest_cli import counting, prices

# A pass half way: what a look at 40M items sees.
SHARES = {S.NOT_STARTED: 0.40, S.IN_PROGRESS: 0.0001, S.ENQUEUED: 0.10, S.VERIFIED: 0.49}
PAGE_BYTES = 1024 * 1024
UNIT_BYTES = 4096
# A 25-day pass watched at watch's default interval (60 s).
PASS_DAYS = 25
INTERVAL_S = 60


def attribute_bytes(name: str, value: str) -> int:
    """DynamoDB's size of a string attribute: its name and its value, in UTF-8."""
    return len(name.encode()) + len(value.encode())


def entry_bytes(state: int) -> int:
    """One keys-only index entry: the table's key and the index's keys."""
    return (
        attribute_bytes(ID, "0" * 40)
        + attribute_bytes(STATE_SHARD, state_shard(S(state), 7))
        + attribute_bytes(CHANGED_AT, "2026-11-29T21:02:34.123Z")
    )


class _Body:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._payload


class MeteredTable:
    """A modelled state table of `counts` items per state; meters every request it answers."""

    def __init__(self, name: str, counts: Mapping[int, int]) -> None:
        self.name = name
        self.counts = dict(counts)
        self.requests = 0
        self.read_units = 0.0
        self.bytes_read = 0
        # The console asks the shards from many threads at once.
        self._lock = threading.Lock()

    def client(self) -> Any:
        client = boto3.session.Session().client(
            "dynamodb",
            region_name="eu-west-1",
            endpoint_url="http://metered.invalid",
            aws_access_key_id="metered",
            aws_secret_access_key="metered",
        )
        client.meta.events.register("before-send.dynamodb", self.answer)
        return client

    def reset(self) -> None:
        self.requests, self.read_units, self.bytes_read = 0, 0.0, 0

    def answer(self, request: Any, **kwargs: Any) -> AWSResponse:
        target = request.headers["X-Amz-Target"].decode().split(".")[-1]
        body = json.loads(request.body or b"{}")
        with self._lock:
            payload = getattr(self, f"_{target}")(body)
            self.requests += 1
        return AWSResponse(
            request.url,
            200,
            {"Content-Type": "application/x-amz-json-1.0"},
            _Body(json.dumps(payload).encode()),
        )

    def _meter(self, read: int, consistent: bool) -> None:
        self.bytes_read += read
        units = max(1, math.ceil(read / UNIT_BYTES))
        self.read_units += units if consistent else units / 2

    def _DescribeTable(self, body: dict) -> dict:
        size = sum(n * (entry_bytes(s) + 60) for s, n in self.counts.items())
        return {
            "Table": {
                "TableName": self.name,
                "TableStatus": "ACTIVE",
                "ItemCount": sum(self.counts.values()),
                "TableSizeBytes": size,
                "CreationDateTime": 1764000000.0,
                "LatestStreamArn": f"arn:aws:dynamodb:eu-west-1:1:table/{self.name}/stream/x",
                "LatestStreamLabel": "2025-11-24T16:00:00.000",
                "GlobalSecondaryIndexes": [{"IndexName": INDEX_NAME, "IndexStatus": "ACTIVE"}],
            }
        }

    def _GetItem(self, body: dict) -> dict:
        key = body["Key"][ID]["S"]
        item: dict[str, Any] = {ID: {"S": key}}
        if key == COUNTS_ID:
            item.update({state_attribute(s): {"N": str(n)} for s, n in self.counts.items()})
            item["updated_at"] = {"S": "2026-11-29T21:02:31.512Z"}
            item["batches"] = {"N": "123456"}
        elif key == CONTROL_ID:
            item["paused"] = {"BOOL": False}
            item["pace"] = {"S": json.dumps({"limit": 16, "reason": "x" * 200})}
        size = sum(len(k) + len(json.dumps(v)) for k, v in item.items())
        self._meter(size, consistent=body.get("ConsistentRead", False))
        return {"Item": item}

    def _Query(self, body: dict) -> dict:
        assert body["IndexName"] == INDEX_NAME
        key = body["ExpressionAttributeValues"][":pk"]["S"]
        state = int(key.split("#")[0])
        in_shard = self.counts.get(state, 0) // SHARD_COUNT
        size = entry_bytes(state)
        start = int(body.get("ExclusiveStartKey", {}).get(ID, {}).get("S", "0"))
        limit = body.get("Limit") or PAGE_BYTES // size
        read = min(limit, PAGE_BYTES // size, in_shard - start)
        self._meter(read * size, consistent=False)
        answer: dict[str, Any] = {"Count": read, "ScannedCount": read}
        if body.get("Select") != "COUNT":
            answer["Items"] = [
                {ID: {"S": f"{i:040x}"}, STATE_SHARD: {"S": key}, CHANGED_AT: {"S": "x"}}
                for i in range(read)
            ]
        if start + read < in_shard:
            answer["LastEvaluatedKey"] = {ID: {"S": str(start + read)}}
        return answer


def looks(items: int) -> list[list[object]]:
    """The cost of one look before and after, at `items` items."""
    counts = {int(s): round(items * share) for s, share in SHARES.items()}
    metered = MeteredTable("grid-reingest-PROD", counts)
    control = {ID: {"S": CONTROL_ID}}
    rows = []
    for label, look in (
        ("before: Select=COUNT on every shard of every state", lambda t: t.counts()),
        (
            "after: the tally, and the index asked about both idle workers",
            lambda t: (
                counting.StateCounter(t).count(),
                t.has_any([S.IN_PROGRESS]),
                t.has_any([S.LOOKING_FOR_IMAGE]),
            ),
        ),
    ):
        metered.reset()
        started = time.perf_counter()
        # Closed before the meter is read: every request the look sent has been answered.
        with OperatorTable(metered.name, metered.client()) as state_table:
            look(state_table)
            state_table.client.get_item(TableName=metered.name, Key=control, ConsistentRead=True)
        seconds = time.perf_counter() - started
        usd = metered.read_units * prices.DYNAMODB_READ_UNIT.value
        per_pass = usd * PASS_DAYS * 86400 / INTERVAL_S
        rows.append(
            [
                label,
                f"{metered.requests:,}",
                f"{metered.bytes_read / 1e6:,.1f} MB",
                f"{metered.read_units:,.1f}",
                f"${usd:,.6f}",
                f"${per_pass:,.2f}",
                f"{seconds:,.2f} s",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks watch_cost")
    parser.add_argument("--items", type=int, default=40_000_000)
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args(argv)
    rows = looks(args.items)
    headers = [
        "one look",
        "requests",
        "read",
        "read units",
        "price",
        f"{PASS_DAYS}-day pass at {INTERVAL_S} s",
        "client time",
    ]
    before, after = (float(r[3].replace(",", "")) for r in rows)
    body = (
        f"{machine()}; {args.items:,} items, a pass half way "
        f"({', '.join(f'{int(s)}: {share:.0%}' for s, share in SHARES.items())}); "
        f"{prices.DYNAMODB_READ_UNIT.value * 1e6:.4f} USD per million read units "
        f"(`scripts/grid_reingest_cli/prices.py`).\n\n"
        + table(headers, rows)
        + f"\n\nA look after costs {after / before:.4%} of one before "
        f"({before:,.0f} against {after:,.1f} read units), whatever the table's size: the "
        "tally is one item, and the two questions to the index read at most one entry from "
        "each shard. Index entries are "
        f"{entry_bytes(0)}–{entry_bytes(9001)} bytes (the key attributes' names and values). "
        "Besides DynamoDB, each look asks EventBridge for both rules (free) and CloudWatch for "
        "thrall's iterator age (one GetMetricStatistics, $0.01 per 1,000), before and after."
    )
    print(body)
    if args.write:
        write_section("watch: the cost of one look", body)


if __name__ == "__main__":
    main()
