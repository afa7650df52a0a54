"""Where a scheduled repair's ids come from: the image bucket, or its newest S3 Inventory.

Each source comes in parts listed on their own — the bucket's 16 hex prefixes
(each listed in parallel over its own key ranges: at 40M originals, 2.5M keys
and about a minute of listing a part), or the inventory's data files — so that
a repair loads one part at a time and carries on in another invocation
(flows/repair.py). Both keep only the Grid's originals (domain/grid_keys.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from grid_reingest.adapters.inventory_manifest import (
    InventoryError,
    Manifest,
    read_manifest,
    require_reader,
)
from grid_reingest.adapters.s3_inventory import InventoryReader
from grid_reingest.adapters.s3_listing import BucketListing
from grid_reingest.domain.grid_keys import KeyRule, Tally, original_ids

HEX = "0123456789abcdef"
MANIFEST = "manifest.json"


class BucketSource:
    """The image bucket's originals, listed a hex prefix at a time."""

    def __init__(self, s3: Any, bucket: str, instance: str | None = None) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.rule = KeyRule(instance)
        self.tally = Tally()

    def describe(self) -> str:
        """`s3://bucket` (and the instance's prefix)."""
        return f"s3://{self.bucket}/{self.rule.base}"

    def parts(self) -> list[str]:
        """The 16 prefixes `0` … `f`."""
        return list(HEX)

    def ids(self, part: str) -> Iterator[list[str]]:
        """The originals under one prefix, page by page."""
        listing = BucketListing(self._s3, self.bucket, self.rule, part)
        for keys in listing.pages():
            yield list(original_ids(keys, self.rule, self.tally))


class InventorySource:
    """The originals an S3 Inventory lists: its newest manifest under a prefix, a data file at
    a time (each checked against the manifest's size and MD5 before it is read)."""

    def __init__(self, s3: Any, bucket: str, prefix: str, instance: str | None = None) -> None:
        self._s3 = s3
        self.rule = KeyRule(instance)
        self.tally = Tally()
        self.manifest: Manifest = read_manifest(s3, bucket, newest_manifest(s3, bucket, prefix))
        require_reader(self.manifest)

    def describe(self) -> str:
        """The manifest's URL."""
        return self.manifest.url

    def parts(self) -> list[str]:
        """The manifest's data files' keys."""
        return [f.key for f in self.manifest.files]

    def ids(self, part: str) -> Iterator[list[str]]:
        """The originals one data file lists, page by page."""
        files = tuple(f for f in self.manifest.files if f.key == part)
        if not files:
            raise InventoryError(f"{self.manifest.url} lists no data file {part!r}")
        reader = InventoryReader(self._s3, replace(self.manifest, files=files))
        for keys in reader.pages():
            yield list(original_ids(keys, self.rule, self.tally))


def newest_manifest(s3: Any, bucket: str, prefix: str) -> str:
    """The key of the newest `manifest.json` under s3://bucket/prefix (S3 Inventory writes one
    a day, in a folder named for its date); InventoryError when there is none."""
    newest: tuple[Any, str] | None = None
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", ()):
            key = item["Key"]
            if key.rsplit("/", 1)[-1] == MANIFEST and (
                newest is None or item["LastModified"] > newest[0]
            ):
                newest = (item["LastModified"], key)
    if newest is None:
        raise InventoryError(f"s3://{bucket}/{prefix} holds no {MANIFEST}: no inventory there yet")
    return newest[1]
