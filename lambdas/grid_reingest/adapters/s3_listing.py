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

import html
import re
from collections.abc import Iterator
from typing import Any

from grid_reingest.domain.grid_keys import HEX, KeyRange, KeyRule
from grid_reingest.domain.read_ahead import read_ahead

# ListObjectsV2 returns at most 1,000 keys a page.
PAGE_SIZE = 1000
DEFAULT_THREADS = 16
# In a ListObjectsV2 answer: every object, and each one's key (first, as S3 writes it).
_CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.DOTALL)
_KEY = re.compile(rb"<Contents>\s*<Key>(.*?)</Key>", re.DOTALL)
# S3's rule for bucket names: 3 to 63 lower-case letters, digits, dots and hyphens.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def keys_only(s3: Any) -> Any:
    """`s3` (returned), its ListObjectsV2 answers made to hold each object's Key alone.

    botocore turns every field of every object of a page into Python (dates,
    sizes, checksums...): at 1,000 objects a page that is ~45 ms of one core,
    which caps a listing near 20,000 keys a second however many threads wait
    on S3. A listing needs the keys: they are taken from the answer's XML as it
    arrives (botocore's `before-parse` event, whose `customized_response_dict`
    is for this) and the objects are cut from what botocore parses; the rest of
    the answer (truncation, continuation token, common prefixes, errors) is
    parsed as usual, and botocore still URL-decodes the keys.
    """
    s3.meta.events.register(
        "before-parse.s3.ListObjectsV2", _keys_only, unique_id="grid-reingest-keys-only"
    )
    return s3


def _keys_only(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    if response_dict.get("status_code") != 200 or not isinstance(response_dict.get("body"), bytes):
        return
    body = response_dict["body"]
    keys = _KEY.findall(body)
    if len(keys) != body.count(b"<Contents>"):
        return  # not S3's usual shape (Key first): botocore parses it all, as by default
    customized_response_dict["Contents"] = [
        {"Key": html.unescape(key.decode()) if b"&" in key else key.decode()} for key in keys
    ]
    response_dict["body"] = _CONTENTS.sub(b"", body)


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

    Its client's ListObjectsV2 answers hold keys alone from then on (`keys_only`).

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
        self.s3 = keys_only(s3)
        self.bucket = bucket
        self.rule = rule
        self.hex_prefix = hex_prefix
        self.threads = threads
        self.levels = levels if levels is not None else split_levels(hex_prefix)
        self.page_size = page_size
        self.left_out: list[str] = []  # folders at the top that were not listed
        self.ranges = 0  # originals' folders walked (gaps between them are probed besides)

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
        self.ranges = sum(1 for r in ranges if not r.sparse)
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
        if where.sparse:
            # A gap between the originals' folders is almost always empty: ask for one key
            # rather than read (and parse) a page of the next folder's.
            first = self.s3.list_objects_v2(**params, MaxKeys=1).get("Contents", ())
            keys = self._within(where, [item["Key"] for item in first])
            if not keys:
                return
            yield keys
            params["StartAfter"] = keys[-1]
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            **params, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            listed = [item["Key"] for item in page.get("Contents", ())]
            keys = self._within(where, listed)
            if keys:
                yield keys
            if len(keys) < len(listed) and where.stop is not None and listed[-1] >= where.stop:
                return  # the rest of the listing is the next range's

    @staticmethod
    def _within(where: KeyRange, keys: list[str]) -> list[str]:
        if where.start is not None and keys and keys[0] < where.start:
            keys = [k for k in keys if k >= where.start]
        if where.stop is not None and keys and keys[-1] >= where.stop:
            keys = [k for k in keys if k < where.stop]
        return keys
