"""Instants as the Grid writes them: ISO-8601, UTC, milliseconds, a trailing Z."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_instant(text: str) -> datetime:
    """An aware datetime from an ISO-8601 string with any offset (or Z).

    Raises ValueError for anything else, naive times included: a time without an
    offset cannot be compared with the others as an instant.
    """
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"date {text!r} has no UTC offset")
    return value


def format_instant(value: datetime) -> str:
    """e.g. 2024-05-01T10:00:00.000Z."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_now() -> datetime:
    """The current instant (a seam for tests)."""
    return datetime.now(UTC)
