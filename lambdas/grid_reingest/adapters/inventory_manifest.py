"""An S3 Inventory report's manifest: where it is (an s3:// URL), what it says (its data files,
their format and columns), checked field by field and against `manifest.checksum`.

S3 Inventory writes, once a day or a week, a `manifest.json` that names its
data files (`files`: `key`, `size`, `MD5checksum`), their format (`fileFormat`:
CSV, Parquet or ORC) and, for CSV, the columns (`fileSchema`). The keys in the
data files are read by s3_inventory.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from grid_reingest.adapters.s3_listing import is_bucket_name

FORMATS = ("CSV", "Parquet", "ORC")
# A manifest names files, not keys: 64 MiB would name some 300,000 files.
MAX_MANIFEST_BYTES = 64 * 2**20
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
# S3's error codes for an object (or its bucket) that is not there.
MISSING = ("NoSuchKey", "NoSuchBucket", "404")
PYARROW_HINT = "pip install 'grid-reingest[inventory]' (or pip install pyarrow)"


class InventoryError(ValueError):
    """An inventory that cannot be read as asked; the message names the URL, file or field."""


@dataclass(frozen=True)
class DataFile:
    """One data file the manifest lists."""

    key: str
    size: int
    md5: str


@dataclass(frozen=True)
class Manifest:
    """What a manifest.json says, checked."""

    bucket: str  # where the manifest and its data files are
    key: str
    source_bucket: str  # the bucket the inventory lists
    file_format: str  # CSV, Parquet or ORC
    columns: tuple[str, ...]  # CSV's column names, in order ("" for the others)
    files: tuple[DataFile, ...]
    created_ms: int | None = None  # creationTimestamp, ms since the epoch

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of `s3://BUCKET/KEY`; InventoryError saying what is wrong otherwise."""
    if not url.startswith("s3://"):
        raise InventoryError(f"{url!r} is not an S3 URL: give s3://BUCKET/PATH/manifest.json")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not is_bucket_name(bucket):
        raise InventoryError(f"{url!r}: {bucket!r} is not an S3 bucket name")
    if not key or key.endswith("/"):
        raise InventoryError(
            f"{url!r} names no file: give the inventory's manifest, "
            f"s3://{bucket}/{key or 'PATH/'}…/manifest.json"
        )
    return bucket, key


def read_manifest(s3: Any, bucket: str, key: str) -> Manifest:
    """The manifest at s3://bucket/key, checked field by field (and against the
    `manifest.checksum` beside it, when there is one)."""
    url = f"s3://{bucket}/{key}"
    body = _get_small(s3, bucket, key, url, what="manifest")
    checksum_key = _sibling(key, "manifest.checksum")
    if checksum_key is not None:
        _check_manifest_checksum(s3, bucket, checksum_key, body, url)
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise InventoryError(f"{url}: not a manifest: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise InventoryError(
            f"{url}: not a manifest: bad JSON at line {error.lineno} column {error.colno} "
            f"({error.msg})"
        ) from None
    return _manifest(document, bucket, key, url)


def require_reader(manifest: Manifest) -> None:
    """Raise InventoryError when this installation cannot read the manifest's format."""
    if manifest.file_format == "CSV":
        return
    try:
        import pyarrow  # noqa: F401, PLC0415 - optional: only Parquet and ORC need it
    except ImportError:
        raise InventoryError(
            f"{manifest.url} lists {manifest.file_format} files: reading them needs pyarrow, "
            f"which is not installed: {PYARROW_HINT}"
        ) from None


def _manifest(document: Any, bucket: str, key: str, url: str) -> Manifest:
    if not isinstance(document, dict):
        raise InventoryError(f"{url}: not a manifest: a JSON {type(document).__name__}")
    file_format = document.get("fileFormat")
    if file_format not in FORMATS:
        raise InventoryError(
            f"{url}: fileFormat {file_format!r} is not one S3 Inventory writes "
            f"({', '.join(FORMATS)})"
        )
    schema = document.get("fileSchema")
    if not isinstance(schema, str) or not schema.strip():
        raise InventoryError(f"{url}: fileSchema is missing or not text")
    columns: tuple[str, ...] = ()
    if file_format == "CSV":
        columns = tuple(c.strip() for c in schema.split(","))
        if "Key" not in columns:
            raise InventoryError(f"{url}: fileSchema {schema!r} has no Key column")
    files = document.get("files")
    if not isinstance(files, list):
        raise InventoryError(f"{url}: files is missing or not a list")
    created = document.get("creationTimestamp")
    return Manifest(
        bucket=bucket,
        key=key,
        source_bucket=str(document.get("sourceBucket") or "?"),
        file_format=file_format,
        columns=columns,
        files=tuple(_data_file(entry, i, url) for i, entry in enumerate(files)),
        created_ms=int(created) if isinstance(created, str) and created.isdigit() else None,
    )


def _data_file(entry: Any, index: int, url: str) -> DataFile:
    where = f"{url}: files[{index}]"
    if not isinstance(entry, dict):
        raise InventoryError(f"{where} is not an object")
    key, size, md5 = entry.get("key"), entry.get("size"), entry.get("MD5checksum")
    if not isinstance(key, str) or not key:
        raise InventoryError(f"{where}: key is missing or not text")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InventoryError(f"{where} ({key}): size {size!r} is not a number of bytes")
    if not isinstance(md5, str) or not _MD5.fullmatch(md5):
        raise InventoryError(f"{where} ({key}): MD5checksum {md5!r} is not 32 hex characters")
    return DataFile(key, size, md5.lower())


def _get_small(s3: Any, bucket: str, key: str, url: str, what: str) -> bytes:
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in MISSING:
            place = "bucket" if code == "NoSuchBucket" else what
            raise InventoryError(f"{url}: no such {place} ({code})") from None
        raise
    with contextlib.closing(response["Body"]) as body:
        data: bytes = body.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise InventoryError(f"{url}: larger than {MAX_MANIFEST_BYTES:,} bytes: not a {what}")
    return data


def _sibling(key: str, name: str) -> str | None:
    folder, _, file_name = key.rpartition("/")
    if file_name != "manifest.json":
        return None
    return f"{folder}/{name}" if folder else name


def _check_manifest_checksum(s3: Any, bucket: str, key: str, manifest: bytes, url: str) -> None:
    # S3 Inventory writes manifest.checksum, the manifest's MD5, beside it: a manifest
    # copied or written only in part is refused here rather than half read.
    try:
        text = _get_small(s3, bucket, key, f"s3://{bucket}/{key}", what="checksum")
    except InventoryError:
        return  # not there: a manifest copied without it is still readable
    expected = text.decode("ascii", "replace").split()
    actual = hashlib.md5(manifest, usedforsecurity=False).hexdigest()
    if expected and _MD5.fullmatch(expected[0]) and expected[0].lower() != actual:
        raise InventoryError(
            f"{url}: refused: its MD5 is {actual}, but manifest.checksum beside it says "
            f"{expected[0]} (the manifest changed or was written only in part)"
        )
