"""A latency model of DynamoDB, for benchmarks only: what a client's design is worth.

moto's server is one CPU-bound Python process (about 3,500 writes/s and 4,000
scanned rows/s here, whatever the client does), so a benchmark against it
measures moto. This server answers the calls the state-table client makes —
DescribeTable, BatchWriteItem, BatchGetItem, PutItem (`attribute_not_exists`),
BatchExecuteStatement (PartiQL `INSERT`, refused per statement as `DuplicateItem`
when the key exists), Scan (segments, 1 MB pages), conditional UpdateItem (`SET`/`REMOVE`,
`a = :x AND ...` conditions) and Query on the state index (keys only or COUNT) —
from memory, after a fixed round-trip latency per request, in its own process,
the way AWS's fleet answers: the time a call takes does not grow with the
number of calls in flight. Optional faults (throttling, UnprocessedItems,
statements refused with `ThrottlingError`) come from the same `Faults` model as
the test proxy.

    python -m benchmarks.dynamodb_model --port 8123 --latency-ms 10
    GET /_count -> ids stored in all tables;  POST /_seed?n=1000000&table=bench -> fill one

With --scan-page-ms, a Scan page also costs the time the store takes to read
it (DynamoDB reads up to 1 MB per page); 0 models the round trip alone.
"""

from __future__ import annotations

import argparse
import collections
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.aws_proxy import Faults
from devtools.partiql import InsertStatement, PartiqlError, statement_error

# DynamoDB stops a Scan page at 1 MB of items read; an item of the state table
# (id, state, name, shard, time, attempts) weighs about 150 bytes.
ITEM_BYTES = 150
PAGE_ITEMS = 1024 * 1024 // ITEM_BYTES


class ModelError(Exception):
    """An error DynamoDB would answer with (HTTP 400)."""

    def __init__(self, kind: str, message: str, extra: dict | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.extra = extra or {}


class ConditionFailed(ModelError):
    """A failed write condition, with the item as it is when the request asks for it."""

    def __init__(self, current: dict, request: dict) -> None:
        wanted = request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
        super().__init__(
            "ConditionalCheckFailedException",
            "condition failed",
            {"Item": current} if wanted else {},
        )


class Table:
    """Items by id, and the scan order of each segment count asked for so far."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        # TotalSegments -> per segment: (ids in scan order, id -> position)
        self._segments: dict[int, list[tuple[list[str], dict[str, int]]]] = {}

    def put(self, item: dict[str, Any]) -> None:
        with self.lock:
            self.items[item["id"]["S"]] = item
            self._segments.clear()

    def segment(self, segment: int, total: int) -> tuple[list[str], dict[str, int]]:
        with self.lock:
            if total not in self._segments:
                split: list[list[str]] = [[] for _ in range(total)]
                for image_id in self.items:
                    split[zlib.crc32(image_id.encode()) % total].append(image_id)
                self._segments[total] = [
                    (ids, {image_id: i for i, image_id in enumerate(ids)}) for ids in split
                ]
            return self._segments[total][segment]


def serve(port: int, latency_s: float, faults: Faults, page_s: float = 0.0) -> None:
    """Serve until killed."""
    tables: collections.defaultdict[str, Table] = collections.defaultdict(Table)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            count = sum(len(t.items) for t in tables.values())
            self._reply(200, json.dumps({"count": count}).encode())

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if url.path == "/_seed":
                query = parse_qs(url.query)
                n = int(query["n"][0])
                table = tables[query.get("table", ["bench"])[0]]
                for i in range(n):
                    table.put({"id": {"S": f"{i:040x}"}, "progress_state": {"N": str(i % 10)}})
                self._reply(200, b"{}")
                return
            time.sleep(latency_s)
            target = self.headers.get("X-Amz-Target", "").split(".")[-1]
            request = json.loads(body or b"{}")
            fault = faults.draw(target)
            if fault == "throttle":
                self._reply(
                    400,
                    json.dumps(
                        {
                            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                            "message": "Rate exceeded (modelled)",
                        }
                    ).encode(),
                )
                return
            handler = getattr(self, f"_{target}", None)
            try:
                if handler is None:
                    raise ModelError("UnknownOperationException", target)
                self._reply(200, handler(request, fault))
            except ModelError as error:
                kind = f"com.amazonaws.dynamodb.v20120810#{error.kind}"
                answer = {"__type": kind, "message": str(error), **error.extra}
                self._reply(400, json.dumps(answer).encode())

        def _DescribeTable(self, request: dict, fault: str | None) -> bytes:
            return json.dumps(
                {
                    "Table": {
                        "TableName": request["TableName"],
                        "TableStatus": "ACTIVE",
                        "GlobalSecondaryIndexes": [{"IndexName": "by-state"}],
                    }
                }
            ).encode()

        def _CreateTable(self, request: dict, fault: str | None) -> bytes:
            return self._DescribeTable(request, fault).replace(b'"Table"', b'"TableDescription"')

        def _BatchWriteItem(self, request: dict, fault: str | None) -> bytes:
            ((name, entries),) = request["RequestItems"].items()
            table = tables[name]
            skipped = faults.pick(len(entries)) if fault == "partial" else set()
            for i, entry in enumerate(entries):
                if i not in skipped:
                    table.put(entry["PutRequest"]["Item"])
            left = [e for i, e in enumerate(entries) if i in skipped]
            return json.dumps({"UnprocessedItems": {name: left} if left else {}}).encode()

        def _BatchExecuteStatement(self, request: dict, fault: str | None) -> bytes:
            statements = request["Statements"]
            skipped = faults.pick(len(statements)) if fault == "partial" else set()
            answers = []
            for i, entry in enumerate(statements):
                if i in skipped:
                    answers.append(
                        statement_error("ThrottlingError", "Throughput exceeds (modelled)")
                    )
                    continue
                try:
                    insert = InsertStatement.parse(entry["Statement"])
                    item = insert.item(entry.get("Parameters", []))
                except PartiqlError as error:
                    answers.append(statement_error("ValidationError", str(error)))
                    continue
                table = tables[insert.table]
                with table.lock:
                    if item["id"]["S"] in table.items:
                        answers.append(
                            statement_error(
                                "DuplicateItem", "Duplicate primary key exists in table"
                            )
                        )
                        continue
                    table.items[item["id"]["S"]] = item
                    table._segments.clear()
                answers.append({"TableName": insert.table})
            return json.dumps({"Responses": answers}).encode()

        def _PutItem(self, request: dict, fault: str | None) -> bytes:
            table = tables[request["TableName"]]
            item = request["Item"]
            with table.lock:
                current = table.items.get(item["id"]["S"])
                if request.get("ConditionExpression") and current is not None:
                    # Only `attribute_not_exists(id)` is modelled: the upload's condition.
                    raise ConditionFailed(current, request)
                table.items[item["id"]["S"]] = item
                table._segments.clear()
            return b"{}"

        def _BatchGetItem(self, request: dict, fault: str | None) -> bytes:
            ((name, wanted),) = request["RequestItems"].items()
            table = tables[name]
            with table.lock:
                found = [
                    table.items[k["id"]["S"]] for k in wanted["Keys"] if k["id"]["S"] in table.items
                ]
            return json.dumps({"Responses": {name: found}, "UnprocessedKeys": {}}).encode()

        def _Scan(self, request: dict, fault: str | None) -> bytes:
            table = tables[request["TableName"]]
            segment, total = request.get("Segment", 0), request.get("TotalSegments", 1)
            ids, index = table.segment(segment, total)
            start = 0
            if "ExclusiveStartKey" in request:
                start = index[request["ExclusiveStartKey"]["id"]["S"]] + 1
            size = min(request.get("Limit", PAGE_ITEMS), PAGE_ITEMS)
            page = ids[start : start + size]
            # Reading a page takes the store time in proportion to what it reads.
            time.sleep(page_s * len(page) / PAGE_ITEMS)
            items = ",".join(
                f'{{"id":{{"S":"{i}"}},"progress_state":{{"N":"{table.items[i]["progress_state"]["N"]}"}}}}'
                for i in page
            )
            more = start + size < len(ids)
            last = f',"LastEvaluatedKey":{{"id":{{"S":"{page[-1]}"}}}}' if more else ""
            counts = f'"Count":{len(page)},"ScannedCount":{len(page)}'
            return f'{{"Items":[{items}],{counts}{last}}}'.encode()

        def _UpdateItem(self, request: dict, fault: str | None) -> bytes:
            table = tables[request["TableName"]]
            key = request["Key"]["id"]["S"]
            names = request.get("ExpressionAttributeNames", {})
            values = request.get("ExpressionAttributeValues", {})
            with table.lock:
                current = table.items.get(key)
                condition = request.get("ConditionExpression")
                if condition and not _holds(condition, current, names, values):
                    raise ModelError("ConditionalCheckFailedException", "condition failed")
                item = dict(current or {"id": {"S": key}})
                _update(item, request["UpdateExpression"], names, values)
                table.items[key] = item
                table._segments.clear()
            wanted = request.get("ReturnValues") == "ALL_NEW"
            return json.dumps({"Attributes": item} if wanted else {}).encode()

        def _Query(self, request: dict, fault: str | None) -> bytes:
            table = tables[request["TableName"]]
            values = request["ExpressionAttributeValues"]
            partition = values[":pk"]["S"]
            before = values.get(":before", {}).get("S")
            with table.lock:
                found = sorted(
                    (i["state_changed_at"]["S"], image_id)
                    for image_id, i in table.items.items()
                    if i.get("state_shard", {}).get("S") == partition
                    and (before is None or i["state_changed_at"]["S"] < before)
                )
            start = request.get("ExclusiveStartKey")
            if start:
                after = (start["state_changed_at"]["S"], start["id"]["S"])
                found = [f for f in found if f > after]
            limit = request.get("Limit", len(found))
            page, more = found[:limit], len(found) > limit
            answer: dict[str, Any] = {"Count": len(page), "ScannedCount": len(page)}
            if request.get("Select") != "COUNT":
                answer["Items"] = [
                    {"id": {"S": i}, "state_shard": {"S": partition}, "state_changed_at": {"S": t}}
                    for t, i in page
                ]
            if more:
                t, i = page[-1]
                answer["LastEvaluatedKey"] = {
                    "id": {"S": i},
                    "state_shard": {"S": partition},
                    "state_changed_at": {"S": t},
                }
            return json.dumps(answer).encode()

        def _reply(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def _holds(condition: str, item: dict | None, names: dict, values: dict) -> bool:
    """`a = :x AND b = :y`, the only condition shape the state table writes."""
    for clause in condition.split(" AND "):
        name, value = (part.strip() for part in clause.split("="))
        if item is None or item.get(names.get(name, name)) != values[value]:
            return False
    return True


def _update(item: dict, expression: str, names: dict, values: dict) -> None:
    """`SET a = :x, b = :y REMOVE c, d`."""
    sets, _, removes = expression.partition(" REMOVE ")
    for assignment in sets.removeprefix("SET ").split(","):
        name, value = (part.strip() for part in assignment.split("="))
        item[names.get(name, name)] = values[value]
    for name in filter(None, (n.strip() for n in removes.split(","))):
        item.pop(names.get(name, name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=10)
    parser.add_argument("--throttle", type=float, default=0.0)
    parser.add_argument("--partial", type=float, default=0.0)
    parser.add_argument(
        "--scan-page-ms",
        type=float,
        default=0.0,
        help="store time to read one full 1 MB Scan page, on top of the latency",
    )
    args = parser.parse_args()
    faults = Faults(
        targets=("BatchWriteItem", "BatchExecuteStatement", "PutItem"),
        throttle_rate=args.throttle,
        partial_rate=args.partial,
    )
    serve(args.port, args.latency_ms / 1000, faults, args.scan_page_ms / 1000)


if __name__ == "__main__":
    main()
