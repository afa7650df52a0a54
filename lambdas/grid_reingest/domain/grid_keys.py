"""Which keys of a Grid's image bucket are originals, and the id each one holds.

The Grid stores an original under its id's first six characters as folders,
then the id (`ImageIngestOperations.fileKeyFromId`): `a/b/c/d/e/f/abcdef…`; a
multi-instance Grid stores the same under the instance's name,
`<instance>/a/b/c/d/e/f/<id>`. Its optimised PNGs sit beside them under
`optimised/` (`optimisedPngKeyFromId`). A key is an original only in that
layout, with a Grid id as its last part and that id's first six characters as
its folders; every other key is counted by kind (`Skip`) and left out.

Pure: no AWS. The listing and the inventory reader feed keys through one
`KeyRule`, so both agree on what an original is.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from grid_reingest.domain.ids import GRID_ID

# fileKeyFromId: `id.take(6).mkString("/") + "/" + id`.
FOLDERS = 6
ID_LENGTH = 40
HEX = "0123456789abcdef"
# Folders where the Grid keeps files that are not originals, beside them or under
# an instance: optimised PNGs (`optimisedPngKeyFromId`) and, in deployments that
# keep them in the image bucket, thumbnails. Without --instance, a key in the
# original's layout under one of these is still not an instance's original.
GRID_FOLDERS = frozenset({"optimised", "thumbs", "thumbnails"})

_ORIGINAL = re.compile(rf"(?:[0-9a-f]/){{{FOLDERS}}}{GRID_ID.pattern}")
_INSTANCE_PROBLEMS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda t: not t, "is empty"),
    (lambda t: "/" in t, "contains '/' (give the instance's name, the first folder of its keys)"),
    (lambda t: t in (".", ".."), "is a path segment, not a name"),
    (lambda t: any(c.isspace() or not c.isprintable() for c in t), "contains whitespace"),
)


class Skip(Enum):
    """Why a key was left out; the value is what the summary says."""

    OTHER_FOLDER = "in a folder that is not an original's (optimised/, thumbs/, ...)"
    INSTANCE_PREFIX = "an original's layout under an instance prefix"
    OTHER_INSTANCE = "not under the instance's prefix"
    FOLDERS_MISMATCH = "folders do not match the id"
    NOT_GRID_ID = "last part is not a Grid id"
    NOT_LAYOUT = "not the Grid's layout"


class InvalidKeyRuleInput(ValueError):
    """An instance name or hex prefix that cannot select a Grid's keys; the message says why."""


@dataclass(frozen=True)
class KeyRule:
    """The originals of one Grid: under `instance`'s prefix, or at the bucket's top."""

    instance: str | None = None

    def __post_init__(self) -> None:
        if self.instance is None:
            return
        for refused, reason in _INSTANCE_PROBLEMS:
            if refused(self.instance):
                raise InvalidKeyRuleInput(f"instance {self.instance!r} {reason}")

    @property
    def base(self) -> str:
        """The prefix every original of this Grid starts with ('' without an instance)."""
        return f"{self.instance}/" if self.instance is not None else ""

    def key_of(self, image_id: str) -> str:
        """Where the Grid stores the original of `image_id`."""
        return self.base + "/".join(image_id[:FOLDERS]) + "/" + image_id

    def classify(self, key: str) -> str | Skip:
        """The Grid id `key` holds when it is an original, else why it is left out."""
        if self.instance is not None:
            if not key.startswith(self.base):
                return Skip.OTHER_INSTANCE
            key = key[len(self.base) :]
        if _ORIGINAL.fullmatch(key):
            image_id = key[2 * FOLDERS :]
            # The folders are every other character: a/b/c/d/e/f/
            if key[: 2 * FOLDERS : 2] == image_id[:FOLDERS]:
                return image_id
            return Skip.FOLDERS_MISMATCH
        return _skip_kind(key, self.instance is None)

    def listing_prefix(self, hex_prefix: str = "") -> str:
        """The key prefix under which every original whose id starts with `hex_prefix` lies."""
        return self.base + prefix_path(hex_prefix)

    def ranges(self, hex_prefix: str = "", levels: int = 2) -> list[KeyRange]:
        """Key ranges that together cover every key under `listing_prefix` exactly once,
        for listing in parallel.

        The originals' folders (or id prefixes) `levels` hex characters further down
        are whole prefixes (`KeyRange(prefix)`); the gaps around them, where only keys
        of no original can be (`a/1.jpg`, `a/x/`), are ranges marked `sparse`.
        """
        check_hex_prefix(hex_prefix, allow_empty=True)
        depth = min(levels, ID_LENGTH - len(hex_prefix))
        prefix = self.listing_prefix(hex_prefix)
        if depth <= 0:
            return [KeyRange(prefix)]
        # key prefixes of equal-length hex strings sort as the strings do ('/' is constant)
        folders = [
            self.listing_prefix(hex_prefix + "".join(tail))
            for tail in itertools.product(HEX, repeat=depth)
        ]
        # Every key in [folder, after(folder)) starts with folder, and no other key does.
        starts = [None, *(after(f) for f in folders)]
        stops = [*folders, None]
        gaps = [
            KeyRange(prefix, start, stop, sparse=True)
            for start, stop in zip(starts, stops, strict=True)
        ]
        return [*(KeyRange(f) for f in folders), *gaps]


def after(prefix: str) -> str:
    """`prefix` with its last character bumped ('a/1/' -> 'a/10'): above every string that
    starts with `prefix`, and at or below every other string above `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class KeyRange:
    """The keys under `prefix` that are >= `start` (None: from the first) and < `stop`
    (None: to the last); `sparse` when few or none are expected there."""

    prefix: str
    start: str | None = None
    stop: str | None = None
    sparse: bool = False

    def holds(self, key: str) -> bool:
        """True when `key` lies in this range."""
        return (
            key.startswith(self.prefix)
            and (self.start is None or key >= self.start)
            and (self.stop is None or key < self.stop)
        )


@dataclass
class Tally:
    """What a stream of keys held: originals kept, and the rest by kind."""

    kept: int = 0
    skipped: Counter[Skip] = field(default_factory=Counter)
    examples: dict[Skip, str] = field(default_factory=dict)  # the first key of each kind

    @property
    def keys(self) -> int:
        """Every key seen."""
        return self.kept + sum(self.skipped.values())

    def skip(self, kind: Skip, key: str) -> None:
        """Count `key` as left out for `kind`."""
        self.skipped[kind] += 1
        self.examples.setdefault(kind, key)

    def lines(self) -> list[str]:
        """One line per kind of key left out, largest first, with its first example."""
        return [
            f"{count:>14,}  {kind.value} (e.g. {self.examples[kind]!r})"
            for kind, count in self.skipped.most_common()
        ]


def original_ids(keys: Iterable[str], rule: KeyRule, tally: Tally) -> Iterator[str]:
    """The ids of the originals among `keys`, in their order; `tally` counts every key."""
    classify = rule.classify
    for key in keys:
        verdict = classify(key)
        if isinstance(verdict, Skip):
            tally.skip(verdict, key)
        else:
            tally.kept += 1
            yield verdict


def prefix_path(hex_prefix: str) -> str:
    """The key path for ids starting with `hex_prefix`: 'ab' -> 'a/b/', 'abcdef01' ->
    'a/b/c/d/e/f/abcdef01' (past six characters the id itself continues the prefix)."""
    folders = "".join(f"{c}/" for c in hex_prefix[:FOLDERS])
    return folders + (hex_prefix if len(hex_prefix) > FOLDERS else "")


def check_hex_prefix(text: str, *, allow_empty: bool = False) -> str:
    """`text` when it can start a Grid id (1 to 40 lower-case hex characters)."""
    if not text and allow_empty:
        return text
    if not 1 <= len(text) <= ID_LENGTH or any(c not in HEX for c in text):
        hint = " (Grid ids are lower case)" if text.lower() != text else ""
        raise InvalidKeyRuleInput(f"prefix {text!r} is not 1 to 40 lower-case hex characters{hint}")
    return text


def _skip_kind(key: str, top_level: bool) -> Skip:
    parts = key.split("/")
    first = parts[0]
    if len(parts) == 1:
        return Skip.NOT_LAYOUT
    if len(first) != 1 or first not in HEX:
        if (
            top_level
            and first not in GRID_FOLDERS
            and first
            and _ORIGINAL.fullmatch(key[len(first) + 1 :])
        ):
            return Skip.INSTANCE_PREFIX
        return Skip.OTHER_FOLDER
    folders = parts[:-1]
    if len(folders) == FOLDERS and all(len(f) == 1 and f in HEX for f in folders):
        # an original's folders with a last part that is no Grid id: upper case, a
        # suffix, a folder marker ('')
        return Skip.NOT_GRID_ID
    return Skip.NOT_LAYOUT
