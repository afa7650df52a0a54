"""thrall's messages: encoding reingest-image records and publishing them on its stream."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.backoff import sleep_before_retry
from grid_reingest.isotime import format_instant

SUBJECT = "reingest-image"
# The Grid's producers put this byte before gzipped JSON; thrall strips it and gunzips.
COMPRESSED_MARKER = b"\x00"
# What the JVM's GZIPOutputStream uses, which the Grid's producers run on.
GZIP_LEVEL = 6


def compact_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as the messages carry it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_message(image: dict[str, Any], now: datetime) -> bytes:
    """The record data for one image: 0x00 + gzip(UTF-8 JSON message)."""
    return encode_image_json(compact_json(image), now)


def encode_image_json(image_json: bytes, now: datetime) -> bytes:
    """Like encode_message, for an image already serialized by `compact_json`: a large image's
    JSON is the costly part, and is not built twice."""
    body = (
        b'{"subject":'
        + compact_json(SUBJECT)
        + b',"image":'
        + image_json
        + b',"lastModified":'
        + compact_json(format_instant(now))
        + b"}"
    )
    return COMPRESSED_MARKER + gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def record_size(image_id: str, data: bytes) -> int:
    """What Kinesis counts against its 1 MiB record limit: data plus partition key."""
    return len(data) + len(image_id.encode("utf-8"))


# PutRecords' own limits: 500 records and 5 MiB (data + partition keys) a call.
PUT_RECORDS_MAX_RECORDS = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
# Kinesis rejects records of a call one by one (a hot shard, an internal error);
# those are sent again, with backoff, this many times before the image is failed.
MAX_SEND_ROUNDS = 6


@dataclass
class PublishResult:
    """Which images' records Kinesis accepted, and why the others were not."""

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # one record at a time
    unsent: list[str] = field(default_factory=list)  # whole calls failed: see call_error
    call_error: str | None = None
    calls: int = 0


class Publisher:
    """Sends records to thrall's stream with PutRecords, retrying only the rejected entries."""

    def __init__(
        self,
        client: Any,
        stream: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._target = (
            {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}
        )
        self._sleep = sleep

    def publish(self, records: Sequence[tuple[str, bytes]]) -> PublishResult:
        """Send (image id, data) records; the partition key is the image id."""
        result = PublishResult()
        for chunk in _calls(records):
            if result.call_error is None:
                self._send(chunk, result)
            else:
                # A whole call failed even after botocore's retries: the stream is
                # unusable now, so the rest is not tried.
                result.unsent += [image_id for image_id, _ in chunk]
        return result

    def _send(self, records: list[tuple[str, bytes]], result: PublishResult) -> None:
        pending = records
        for attempt in range(MAX_SEND_ROUNDS):
            if attempt:
                sleep_before_retry(attempt - 1, self._sleep)
            result.calls += 1
            try:
                response = self._client.put_records(
                    Records=[{"Data": data, "PartitionKey": i} for i, data in pending],
                    **self._target,
                )
            except ClientError as error:
                info = error.response.get("Error", {})
                result.call_error = f"kinesis: {info.get('Code')}: {info.get('Message')}"
                for image_id, _ in pending:
                    result.rejected.pop(image_id, None)
                    result.unsent.append(image_id)
                return
            retry = []
            for (image_id, data), entry in zip(pending, response["Records"], strict=True):
                if "ErrorCode" in entry:
                    retry.append((image_id, data))
                    result.rejected[image_id] = f"{entry['ErrorCode']}: {entry.get('ErrorMessage')}"
                else:
                    result.accepted.append(image_id)
                    result.rejected.pop(image_id, None)
            pending = retry
            if not pending:
                return
        for image_id, _ in pending:
            result.rejected[image_id] = (
                f"kinesis rejected the record {MAX_SEND_ROUNDS} times: {result.rejected[image_id]}"
            )


def _calls(records: Sequence[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    """Split records into PutRecords calls within the count and size limits."""
    calls: list[list[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    size = 0
    for image_id, data in records:
        weight = record_size(image_id, data)
        if current and (
            len(current) == PUT_RECORDS_MAX_RECORDS or size + weight > PUT_RECORDS_MAX_BYTES
        ):
            calls.append(current)
            current, size = [], 0
        current.append((image_id, data))
        size += weight
    if current:
        calls.append(current)
    return calls
