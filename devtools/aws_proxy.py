"""An HTTP proxy in front of an AWS emulator that adds a round-trip latency and faults.

The emulator never throttles, never leaves UnprocessedItems and never fails
part of a PutRecords call; real AWS does all three, and a real round trip
takes milliseconds. This proxy adds those, over real HTTP, so that botocore's
retry modes and our own partial-failure handling are exercised as in AWS:

- `throttle`: the call is answered 400 ThrottlingException (not forwarded);
- `partial`: part of a BatchWriteItem / PutRecords / BatchExecuteStatement is
  dropped before it is forwarded, and reported back as UnprocessedItems /
  failed records / statements refused with `ThrottlingError`.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PARTIAL_TARGETS = ("DynamoDB_20120810.BatchWriteItem", "Kinesis_20131202.PutRecords")


@dataclass
class Faults:
    """What the proxy does to calls whose X-Amz-Target ends with one of `targets`."""

    targets: tuple[str, ...] = PARTIAL_TARGETS
    throttle_rate: float = 0.0
    partial_rate: float = 0.0
    seed: int = 7
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, target: str) -> str | None:
        """ "throttle", "partial" or None for one call."""
        if not any(target.endswith(t.split(".")[-1]) for t in self.targets):
            return None
        with self._lock:
            roll = self._random.random()
            if roll < self.throttle_rate:
                self.counts["throttle"] += 1
                return "throttle"
            if roll < self.throttle_rate + self.partial_rate:
                self.counts["partial"] += 1
                return "partial"
            return None

    def pick(self, n: int) -> set[int]:
        """Indexes of the entries to drop from a call of `n` (at least one, never all when n>1)."""
        with self._lock:
            k = self._random.randint(1, max(1, n - 1))
            return set(self._random.sample(range(n), k))


class AwsProxy:
    """A threaded proxy on 127.0.0.1; `url` is its endpoint. Use as a context manager."""

    def __init__(self, upstream: str, latency_s: float = 0.0, faults: Faults | None = None):
        self.upstream = urlsplit(upstream)
        self.latency_s = latency_s
        self.faults = faults or Faults()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's
            # algorithm and delayed ACKs add ~40 ms to every response.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_POST
            do_PUT = do_POST
            do_DELETE = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._local = threading.local()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> AwsProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- one request --------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        target = request.headers.get("X-Amz-Target", "")
        if self.latency_s:
            time.sleep(self.latency_s)
        fault = self.faults.draw(target) if target else None
        if fault == "throttle":
            self._reply(
                request, 400, _throttling(target), {"Content-Type": "application/x-amz-json-1.0"}
            )
            return
        dropped: list[tuple[int, Any]] = []
        if fault == "partial":
            body, dropped = _drop_entries(target, body, self.faults)
        if body is None:  # every entry dropped: nothing to forward
            status, headers = 200, {"Content-Type": "application/x-amz-json-1.0"}
            payload = b'{"Records": [], "FailedRecordCount": 0}' if "Kinesis" in target else b"{}"
        else:
            status, headers, payload = self._forward(request, body)
        if dropped and status == 200:
            payload = _report_dropped(target, payload, dropped)
        self._reply(request, status, payload, headers)

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict, bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(
                self.upstream.hostname, self.upstream.port, timeout=120
            )
            self._local.conn = conn
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(request.command, request.path, body=body, headers=headers)
            response = conn.getresponse()
        except (http.client.HTTPException, OSError):
            conn.close()
            self._local.conn = conn = http.client.HTTPConnection(
                self.upstream.hostname, self.upstream.port, timeout=120
            )
            conn.request(request.command, request.path, body=body, headers=headers)
            response = conn.getresponse()
        payload = response.read()
        keep = {
            k: v
            for k, v in response.getheaders()
            if k.lower()
            not in ("content-length", "transfer-encoding", "connection", "date", "server")
        }
        return response.status, keep, payload

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)


def _throttling(target: str) -> bytes:
    if target.startswith("Kinesis"):
        kind = "ProvisionedThroughputExceededException"
    else:
        kind = "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    return json.dumps({"__type": kind, "message": "Rate exceeded (injected)"}).encode()


def _drop_entries(
    target: str, body: bytes, faults: Faults
) -> tuple[bytes | None, list[tuple[int, Any]]]:
    request = json.loads(body)
    if target.endswith("BatchWriteItem"):
        ((table, entries),) = request["RequestItems"].items()
        drop = faults.pick(len(entries))
        request["RequestItems"][table] = [e for i, e in enumerate(entries) if i not in drop]
        dropped = [(i, (table, e)) for i, e in enumerate(entries) if i in drop]
        if not request["RequestItems"][table]:
            return None, dropped
    else:  # entries answered one by one, in order: statements or records
        key = "Statements" if target.endswith("BatchExecuteStatement") else "Records"
        entries = request[key]
        drop = faults.pick(len(entries))
        request[key] = [e for i, e in enumerate(entries) if i not in drop]
        dropped = [(i, e) for i, e in enumerate(entries) if i in drop]
        if not request[key]:
            return None, dropped
    return json.dumps(request).encode(), dropped


def _report_dropped(target: str, payload: bytes, dropped: list[tuple[int, Any]]) -> bytes:
    response = json.loads(payload or b"{}")
    if target.endswith("BatchWriteItem"):
        unprocessed = response.setdefault("UnprocessedItems", {})
        for _, (table, entry) in dropped:
            unprocessed.setdefault(table, []).append(entry)
    else:
        if target.endswith("BatchExecuteStatement"):
            key = "Responses"
            refusal = {"Error": {"Code": "ThrottlingError", "Message": "Rate exceeded (injected)"}}
        else:
            key = "Records"
            refusal = {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": "Rate exceeded for shard (injected)",
            }
        results = list(response.get(key, []))
        for index, _ in sorted(dropped):
            results.insert(index, refusal)
        response[key] = results
        if key == "Records":
            response["FailedRecordCount"] = response.get("FailedRecordCount", 0) + len(dropped)
    return json.dumps(response).encode()
