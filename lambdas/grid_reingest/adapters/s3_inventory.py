"""Reading an S3 Inventory report's data files: the keys of the current objects, file by file.

The manifest (inventory_manifest.py) names the data files. CSV files are
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

import csv
import gzip
import hashlib
import os
import tempfile
import threading
import zlib
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from grid_reingest.adapters.inventory_manifest import (
    MISSING,
    DataFile,
    InventoryError,
    Manifest,
    require_reader,
)

CHUNK_BYTES = 2**20
PAGE_KEYS = 10_000
DEFAULT_PREFETCH = 2


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
            if error.response.get("Error", {}).get("Code") in MISSING:
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
