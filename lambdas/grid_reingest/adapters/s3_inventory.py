"""Reading an S3 Inventory report: its manifest, then the keys of its data files.

S3 Inventory writes, once a day or a week, a `manifest.json` that names its
data files (`files`: `key`, `size`, `MD5checksum`), their format (`fileFormat`:
CSV, Parquet or ORC) and, for CSV, the columns (`fileSchema`). CSV files are
gzip, and their keys URL-encoded; Parquet and ORC files name their columns
(`key`, `is_latest`, `is_delete_marker`) and hold keys as they are.

Each data file is downloaded to a local file while its MD5 is computed, and
read only once that MD5 and its size match the manifest: nothing of a file that
changed or was damaged is ever read. The next files download while this one is
read (`prefetch`); memory holds a page of keys, not a file (a local file per
download waits on disk). Parquet and ORC are read with pyarrow, imported only
when a manifest lists such files (the `inventory` extra).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
import os
import re
import tempfile
import threading
import zlib
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from grid_reingest.adapters.s3_listing import is_bucket_name

FORMATS = ("CSV", "Parquet", "ORC")
# A manifest names files, not keys: 64 MiB would name some 300,000 files.
MAX_MANIFEST_BYTES = 64 * 2**20
CHUNK_BYTES = 2**20
PAGE_KEYS = 10_000
DEFAULT_PREFETCH = 2
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_MISSING = ("NoSuchKey", "NoSuchBucket", "404")
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


class InventoryReader:
    """The keys of a manifest's data files, page by page, each file checked before it is read.

    Example::

        manifest = read_manifest(s3, "inventory-bucket", "images/.../manifest.json")
        reader = InventoryReader(s3, manifest)
        for keys in reader.pages():
            ...
        reader.skipped  # {"an older version": 12, "a delete marker": 3}
    """

    def __init__(
        self,
        s3: Any,
        manifest: Manifest,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        workdir: str | None = None,
        page_keys: int = PAGE_KEYS,
    ) -> None:
        self.s3 = s3
        self.manifest = manifest
        self.prefetch = max(1, prefetch)
        self.workdir = workdir
        self.page_keys = page_keys
        self.skipped: Counter[str] = Counter()  # rows that are not a current object
        self.files_read = 0
        self.bytes_read = 0
        self._stopped = threading.Event()

    def pages(self) -> Iterator[list[str]]:
        """Every current object's key, file after file; InventoryError on a bad file."""
        require_reader(self.manifest)
        read = self._csv if self.manifest.file_format == "CSV" else self._arrow
        with (
            tempfile.TemporaryDirectory(prefix="reingest-inventory-", dir=self.workdir) as scratch,
            ThreadPoolExecutor(self.prefetch, thread_name_prefix="inventory") as pool,
        ):
            waiting: deque[tuple[DataFile, Future[str]]] = deque()
            files = iter(self.manifest.files)
            try:
                for data in files:
                    waiting.append((data, pool.submit(self._download, data, scratch)))
                    if len(waiting) > self.prefetch:
                        yield from self._read_next(waiting, read)
                while waiting:
                    yield from self._read_next(waiting, read)
            finally:
                # Downloads still going stop at their next chunk (an error, or a reader
                # that stopped early, must not wait for whole files).
                self._stopped.set()
                for _, future in waiting:
                    future.cancel()

    def _read_next(
        self, waiting: deque[tuple[DataFile, Future[str]]], read: Any
    ) -> Iterator[list[str]]:
        data, future = waiting.popleft()
        path = future.result()
        try:
            yield from read(path, data)
        finally:
            os.unlink(path)
        self.files_read += 1
        self.bytes_read += data.size

    def _download(self, data: DataFile, scratch: str) -> str:
        url = f"s3://{self.manifest.bucket}/{data.key}"
        try:
            response = self.s3.get_object(Bucket=self.manifest.bucket, Key=data.key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                raise InventoryError(
                    f"{url}: the manifest lists this file but it is not there"
                ) from None
            raise
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        fd, path = tempfile.mkstemp(dir=scratch, suffix=os.path.basename(data.key)[-40:])
        with os.fdopen(fd, "wb") as out:
            for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                if self._stopped.is_set():
                    return path
                md5.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != data.size or md5.hexdigest() != data.md5:
            os.unlink(path)
            raise InventoryError(
                f"{url}: refused: {size:,} bytes with MD5 {md5.hexdigest()}, but the manifest "
                f"says {data.size:,} bytes with MD5 {data.md5} (the file changed or was "
                "damaged after the inventory was written; nothing of it was read)"
            )
        return path

    def _csv(self, path: str, data: DataFile) -> Iterator[list[str]]:
        columns = self.manifest.columns
        key_at = columns.index("Key")
        latest_at = columns.index("IsLatest") if "IsLatest" in columns else None
        marker_at = columns.index("IsDeleteMarker") if "IsDeleteMarker" in columns else None
        url = f"s3://{self.manifest.bucket}/{data.key}"
        page: list[str] = []
        row_number = 0
        try:
            with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
                for row_number, row in enumerate(csv.reader(text), start=1):
                    if len(row) != len(columns):
                        raise InventoryError(
                            f"{url}: row {row_number} has {len(row)} column(s), the "
                            f"manifest's fileSchema {len(columns)}"
                        )
                    if self._current(
                        marker_at is not None and row[marker_at] == "true",
                        latest_at is not None and row[latest_at] == "false",
                    ):
                        page.append(unquote_plus(row[key_at]))
                        if len(page) >= self.page_keys:
                            yield page
                            page = []
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as error:
            raise InventoryError(
                f"{url}: not a gzip CSV inventory file (after row {row_number:,}): {error}"
            ) from None
        if page:
            yield page

    def _arrow(self, path: str, data: DataFile) -> Iterator[list[str]]:
        url = f"s3://{self.manifest.bucket}/{data.key}"
        file_format = self.manifest.file_format
        try:
            names, batches = _ARROW_OPENERS[file_format](path, self.page_keys)
            if "key" not in names:
                raise InventoryError(f"{url}: no 'key' column (it has {', '.join(names)})")
            wanted = [c for c in ("key", "is_latest", "is_delete_marker") if c in names]
            for batch in batches(wanted):
                # An ORC stripe can hold millions of rows: turn a slice at a time into str.
                for offset in range(0, batch.num_rows, self.page_keys):
                    page = self._arrow_page(batch.slice(offset, self.page_keys))
                    if page:
                        yield page
        except InventoryError:
            raise
        except Exception as error:  # pyarrow's own ArrowInvalid, ArrowIOError, OSError...
            raise InventoryError(f"{url}: not a readable {file_format} file: {error}") from None

    def _arrow_page(self, batch: Any) -> list[str]:
        keys = _column(batch, "key") or []
        latest = _column(batch, "is_latest")
        marker = _column(batch, "is_delete_marker")
        if latest is None and marker is None:
            return keys
        return [
            key
            for i, key in enumerate(keys)
            if self._current(
                marker is not None and marker[i] is True,
                latest is not None and latest[i] is False,
            )
        ]

    def _current(self, delete_marker: bool, older: bool) -> bool:
        # An inventory of all versions lists older versions and delete markers too:
        # only a key's current version, when it is not a delete marker, is an object.
        if delete_marker:
            self.skipped["a delete marker"] += 1
            return False
        if older:
            self.skipped["an older version"] += 1
            return False
        return True


def _open_parquet(path: str, batch_size: int) -> tuple[list[str], Any]:
    import pyarrow.parquet as pq  # noqa: PLC0415 - optional dependency

    parquet = pq.ParquetFile(path)
    return parquet.schema_arrow.names, lambda columns: parquet.iter_batches(
        batch_size=batch_size, columns=columns
    )


def _open_orc(path: str, _batch_size: int) -> tuple[list[str], Any]:
    from pyarrow import orc  # noqa: PLC0415 - optional dependency

    orc_file = orc.ORCFile(path)
    return orc_file.schema.names, lambda columns: (
        orc_file.read_stripe(i, columns=columns) for i in range(orc_file.nstripes)
    )


_ARROW_OPENERS = {"Parquet": _open_parquet, "ORC": _open_orc}


def _column(batch: Any, name: str) -> list[Any] | None:
    at = batch.schema.get_field_index(name)
    return None if at < 0 else batch.column(at).to_pylist()


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
        if code in _MISSING:
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
