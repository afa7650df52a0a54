"""What an image id may be: the Grid's own shape, or, when the operator allows it, any safe key.

Grid ids are the SHA-1 of the original file, 40 lower-case hex characters.
Anything else (a CSV header, quoted ids, upper case) is almost always a
mistake in the file. Other ids are allowed only on request, and even then
must survive a URL path and a Kinesis partition key. Ids starting with `~`
are the table's own items (the control item is `~control`): never an image.
"""

from __future__ import annotations

import re

GRID_ID = re.compile(r"[0-9a-f]{40}")
# Kinesis refuses a partition key longer than this, failing the whole PutRecords call.
MAX_ID_CHARS = 256
# URL libraries collapse these path segments into other routes (`..` is `GET /`).
DOT_SEGMENTS = (".", "..")
# Keys the table keeps for itself (the control item, `~control`): no image's id starts so.
RESERVED_PREFIX = "~"


def is_reserved(text: str) -> bool:
    """True for a key the table keeps for itself (the control item's), never an image's."""
    return text.startswith(RESERVED_PREFIX)


_ALWAYS_REFUSED = (
    (lambda t: not t, "empty"),
    (lambda t: any(c.isspace() for c in t), "contains whitespace (one id per line)"),
    (lambda t: any(not c.isprintable() for c in t), "contains control characters"),
    (lambda t: t in DOT_SEGMENTS, "a path segment ('.' or '..'), not an id"),
    (is_reserved, f"starts with {RESERVED_PREFIX!r}: the table's own keys start so, no image's"),
    (
        lambda t: len(t) > MAX_ID_CHARS,
        f"longer than {MAX_ID_CHARS} characters (Kinesis's partition-key limit)",
    ),
)


class InvalidImageId(ValueError):
    """An id that must not be stored or used; the message says why."""


def is_grid_id(text: str) -> bool:
    """True for 40 lower-case hex characters."""
    return GRID_ID.fullmatch(text) is not None


def id_problem(text: str, *, allow_any: bool = False) -> str | None:
    """Why `text` cannot be an image id, or None when it can.

    Strict (the default): only Grid ids. With `allow_any`: anything printable
    without whitespace, except `.`, `..` and ids starting with `~`, of at most
    MAX_ID_CHARS characters.
    """
    if not allow_any and is_grid_id(text):
        return None
    for refused, reason in _ALWAYS_REFUSED:
        if refused(text):
            return reason
    return None if allow_any else _not_grid_reason(text)


def check_id(text: str, *, allow_any: bool = False) -> str:
    """`text` itself when it can be an image id; raises InvalidImageId otherwise."""
    problem = id_problem(text, allow_any=allow_any)
    if problem is not None:
        raise InvalidImageId(f"{text[:60]!r}: {problem}")
    return text


def _not_grid_reason(text: str) -> str:
    hint = ""
    if text[:1] in "\"'" or text[-1:] in "\"'":
        hint = "quoted; "
    elif text.lower() == "id":
        hint = "a header line; "
    elif is_grid_id(text.lower()):
        hint = "upper-case hex; "
    return f"{hint}not a Grid id (40 lower-case hex characters; --allow-any-id to allow others)"
