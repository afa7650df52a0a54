"""thrall's messages: the reingest-image record format and the stream's limits."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from grid_reingest.domain.isotime import format_instant

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


# A shard takes this many bytes a second, from every producer together.
SHARD_BYTES_PER_SECOND = 1024 * 1024
# The span a shard's limits are counted over.
SHARD_LIMIT_SECONDS = 1.0
# PutRecords' own limits: 500 records and 5 MiB (data + partition keys) a call.
PUT_RECORDS_MAX_RECORDS = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024


def split_calls(records: Sequence[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
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
