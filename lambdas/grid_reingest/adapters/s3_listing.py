"""Listing a Grid's image bucket in parallel, one key range at a time per thread.

A single ListObjectsV2 paginator waits a round trip for every 1,000 keys. The
Grid's keys spread evenly over hex folders (ids are SHA-1), so the bucket is
cut into contiguous key ranges (`KeyRule.ranges`: 256 over the bucket, fewer
under a deep prefix) that threads walk at once, each with its own paginator.

The top of the bucket (or of the instance's prefix) is read first, with a
delimiter: only its one-hex-character folders can hold originals, so they alone
are walked; other folders (`optimised/`, `thumbs/`, other instances) are named
in `left_out` without listing what they hold, and keys at the top are passed on
to be counted.

Pages come back in the order threads finish them, not in key order: keeping key
order across ranges would mean either holding whole ranges in memory (growing
with the bucket) or making every thread wait for the slowest range before it
(one range's speed for the whole listing). Nothing downstream needs the order:
uploads do not, and `ids diff` sorts its inputs. Memory is bounded by the pages
waiting to be read (twice `threads` pages of at most 1,000 keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from grid_reingest.domain.grid_keys import HEX, KeyRange, KeyRule
from grid_reingest.domain.read_ahead import read_ahead

# ListObjectsV2 returns at most 1,000 keys a page.
PAGE_SIZE = 1000
DEFAULT_THREADS = 16
# S3's rule for bucket names: 3 to 63 lower-case letters, digits, dots and hyphens.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def split_levels(hex_prefix: str) -> int:
    """How many more hex characters to split a listing of `hex_prefix` on.

    At 100M images a folder of one hex character holds ~6M keys and one of three
    ~24,000: 256 ranges for the first, 16 for the second keep every thread busy
    for pages on end; under five characters (~100 keys) one range is enough.
    """
    if len(hex_prefix) <= 2:
        return 2
    return 1 if len(hex_prefix) <= 4 else 0


def is_bucket_name(name: str) -> bool:
    """True when S3 could have a bucket of this name."""
    return _BUCKET_NAME.fullmatch(name) is not None


class BucketListing:
    """The keys of a Grid's image bucket that may hold `rule`'s originals, page by page.

    Example::

        listing = BucketListing(boto3.client("s3"), "media-service-images", KeyRule())
        for keys in listing.pages():
            ...
        listing.left_out  # ['optimised/']
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        rule: KeyRule,
        hex_prefix: str = "",
        *,
        threads: int = DEFAULT_THREADS,
        levels: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.rule = rule
        self.hex_prefix = hex_prefix
        self.threads = threads
        self.levels = levels if levels is not None else split_levels(hex_prefix)
        self.page_size = page_size
        self.left_out: list[str] = []  # folders at the top that were not listed
        self.ranges = 0  # key ranges walked

    def pages(self) -> Iterator[list[str]]:
        """Every key that may be an original, and the keys at the top, in pages."""
        if self.hex_prefix:
            ranges = self.rule.ranges(self.hex_prefix, self.levels)
        else:
            top_keys, folders = self._top()
            if top_keys:
                yield top_keys
            ranges = []
            for folder in folders:
                name = folder[len(self.rule.base) : -1]
                if len(name) == 1 and name in HEX:
                    ranges += self.rule.ranges(name, max(self.levels - 1, 0))
                else:
                    self.left_out.append(folder)
        self.ranges = len(ranges)
        walks = [self._walk(r) for r in ranges]
        yield from read_ahead(walks, depth=2 * self.threads, name="list", threads=self.threads)

    def _top(self) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        folders: list[str] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=self.rule.base,
            Delimiter="/",
            PaginationConfig={"PageSize": self.page_size},
        )
        for page in pages:
            keys += [item["Key"] for item in page.get("Contents", ())]
            folders += [item["Prefix"] for item in page.get("CommonPrefixes", ())]
        return keys, folders

    def _walk(self, where: KeyRange) -> Iterator[list[str]]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": where.prefix}
        if where.start is not None:
            # StartAfter is exclusive: start just before the range and drop the few keys
            # between that and the range's first (they belong to the range before).
            params["StartAfter"] = where.start[:-1] + chr(ord(where.start[-1]) - 1)
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            **params, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            keys = [item["Key"] for item in page.get("Contents", ())]
            if where.start is not None and keys and keys[0] < where.start:
                keys = [k for k in keys if k >= where.start]
            if where.stop is not None and keys and keys[-1] >= where.stop:
                # The rest of the listing is the next range's: stop paginating here.
                keys = [k for k in keys if k < where.stop]
                if keys:
                    yield keys
                return
            if keys:
                yield keys
