"""Failure reasons grouped by cause: a stored `last_error` with what varies taken out.

The same failure reads differently on every image: its id, a byte count, a
request id, a timestamp, an address. `normalise` replaces each of those with a
placeholder so that one cause is one group (as the Grid's own failure report
had to, before messages would group).

A group (one state, one normalised reason) is named by `group_id`: the state,
then a digest of state and reason. It is the same in every run and whatever
else the table holds, unlike a group's rank, which moves as items do.
"""

from __future__ import annotations

import hashlib
import re

MAX_REASON_CHARS = 200

# Most specific first: a UUID or a URL holds hex and numbers the later rules would split.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>()]*[^\s'\"<>().,:;]", re.I), "<url>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"),
        "<time>",
    ),
    (re.compile(r"\b(?:[\w-]+\.)*[\w-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}\b", re.I), "<ip>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    # A Grid id (40 hex characters), even one that happens to hold no letter.
    (re.compile(r"\b[0-9a-f]{40}\b", re.I), "<id>"),
    # Runs of 8+ hex characters with a digit and a letter (ids, hashes, request ids),
    # and long tokens mixing both; digits alone are numbers, whatever their length.
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[0-9A-Za-z_-]*\d)(?=[0-9A-Za-z_-]*[A-Za-z])[0-9A-Za-z_-]{20,}\b"), "<id>"),
    # Numbers, except HTTP statuses (a 502 is not a 500) and digits inside words (im4java).
    (re.compile(r"(?<![A-Za-z_\d])(?<!HTTP )(?<!status )[-+]?\d+(?:[.,]\d+)*"), "<n>"),
)
_SPACES = re.compile(r"\s+")


def normalise(message: str | None) -> str:
    """The cause of a failure, without the parts that differ from image to image."""
    if not message:
        return "(no error recorded)"
    text = message
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 3] + "..."
    return text


# 8 hex characters tell apart a few thousand groups of one state with a collision
# chance below 1 in 1,000; the state in front keeps states apart and says what it is.
GROUP_DIGEST_CHARS = 8
_GROUP_ID = re.compile(rf"(\d+)-[0-9a-f]{{{GROUP_DIGEST_CHARS}}}")


def group_id(state: int, reason: str) -> str:
    """The name of the group of items in `state` whose last error normalises to `reason`,
    e.g. '8-1f3a9c0d'; the same in every run."""
    text = f"{int(state)}\n{reason}".encode()
    return f"{int(state)}-{hashlib.sha256(text).hexdigest()[:GROUP_DIGEST_CHARS]}"


def group_id_state(text: str) -> int | None:
    """The state a group id names ('8-1f3a9c0d' -> 8), or None when `text` is not shaped
    like a group id."""
    match = _GROUP_ID.fullmatch(text.strip().lower())
    return None if match is None else int(match.group(1))
