"""S3 Inventory reports made up for tests and benchmarks: data files and their manifest.

The files are what S3 Inventory writes: CSV is gzip with every field quoted and
keys URL-encoded; Parquet and ORC (through pyarrow) hold keys as they are, in
columns named in snake case. The manifest names each file with its size and MD5.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

CSV_SCHEMA = "Bucket, Key, Size, LastModifiedDate"
VERSIONED_CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size"
# What S3 Inventory's manifest says of a Parquet file's schema (the reader uses the file's).
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (STRING); required binary key (STRING); "
    "optional int64 size; optional boolean is_latest; optional boolean is_delete_marker;}"
)


@dataclass(frozen=True)
class Row:
    """One object (or version) the inventory lists."""

    key: str
    is_latest: bool = True
    is_delete_marker: bool = False


def csv_gz(bucket: str, rows: Iterable[Row | str], schema: str = CSV_SCHEMA) -> bytes:
    """A gzip CSV data file with `schema`'s columns (Bucket, Key, ... as S3 names them)."""
    columns = [c.strip() for c in schema.split(",")]
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for item in rows:
        row = item if isinstance(item, Row) else Row(item)
        values = {
            "Bucket": bucket,
            # S3 URL-encodes CSV keys; here every reserved character is, '/' too, so that
            # a reader that forgets to decode finds no original at all.
            "Key": quote_plus(row.key, safe=""),
            "VersionId": "v1",
            "IsLatest": str(row.is_latest).lower(),
            "IsDeleteMarker": str(row.is_delete_marker).lower(),
            "Size": "1234",
            "LastModifiedDate": "2026-11-28T10:00:00.000Z",
        }
        writer.writerow([values[c] for c in columns])
    return gzip.compress(text.getvalue().encode(), compresslevel=6)


def arrow_file(bucket: str, rows: Sequence[Row | str], file_format: str) -> bytes:
    """A Parquet or ORC data file, in pyarrow's writing."""
    import pyarrow as pa

    items = [r if isinstance(r, Row) else Row(r) for r in rows]
    table = pa.table(
        {
            "bucket": [bucket] * len(items),
            "key": [r.key for r in items],
            "size": pa.array([1234] * len(items), pa.int64()),
            "is_latest": [r.is_latest for r in items],
            "is_delete_marker": [r.is_delete_marker for r in items],
        }
    )
    sink = io.BytesIO()
    if file_format == "Parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, sink, row_group_size=max(1, len(items) // 3 or 1))
    else:
        from pyarrow import orc

        orc.write_table(table, sink)
    return sink.getvalue()


def manifest(
    source_bucket: str,
    files: Sequence[tuple[str, bytes]],
    file_format: str = "CSV",
    schema: str = CSV_SCHEMA,
    created_ms: int = 1_764_374_400_000,
) -> bytes:
    """manifest.json for `files` (each its key in the destination bucket and its bytes)."""
    return json.dumps(
        {
            "sourceBucket": source_bucket,
            "destinationBucket": "arn:aws:s3:::inventory",
            "version": "2016-11-30",
            "creationTimestamp": str(created_ms),
            "fileFormat": file_format,
            "fileSchema": schema,
            "files": [
                {"key": key, "size": len(body), "MD5checksum": md5(body)} for key, body in files
            ],
        },
        indent=2,
    ).encode()


def md5(body: bytes) -> str:
    """The hex MD5 S3 Inventory writes for a file."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()
