"""What projecting one image for reingestion can come to.

These cross the boundary between image-projection and batch-index (a Lambda
invoke, whose payload is capped at 6 MB), so each has a JSON form. A found
image travels as its finished Kinesis record (at most 1 MiB, base64), never as
the raw image, so no oversized payload can cross the boundary.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Found:
    """A projected image and its JSON (compact UTF-8), serialized once for every later use."""

    image_id: str
    image: dict[str, Any]
    serialized: bytes

    @property
    def image_bytes(self) -> int:
        """The size of the image's JSON, uncompressed."""
        return len(self.serialized)


@dataclass(frozen=True)
class Ready:
    """Found, and its reingest-image record fits on the stream."""

    image_id: str
    record: bytes  # the Kinesis record data: 0x00 marker + gzip(JSON message)
    image_bytes: int  # size of the image's JSON, uncompressed


@dataclass(frozen=True)
class NotFound:
    """image-loader has no such image (404)."""

    image_id: str


@dataclass(frozen=True)
class TooBig:
    """Found, but its record (data + partition key) would exceed the limit."""

    image_id: str
    record_bytes: int
    limit: int


@dataclass(frozen=True)
class Failed:
    """A Grid service (or the invoke itself) failed; `known` means retrying cannot help."""

    image_id: str
    service: str
    status: int | None
    message: str
    downstream_message: str = ""
    known: bool = False

    @property
    def reason(self) -> str:
        """What this failure has in common with others of the same cause (the breaker's key)."""
        return f"{self.service}:{self.status if self.status is not None else 'no-response'}"

    def describe(self) -> str:
        """One line for the item's last_error and for logs."""
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        text = f"{self.service}: {status}: {self.message}"
        return f"{text}: {self.downstream_message}" if self.downstream_message else text


# What batch-index records for an image (and image-projection returns to an invoke).
Outcome = Ready | NotFound | TooBig | Failed
# What projecting an image comes to before it is encoded as a record (the HTTP answer).
Projection = Found | NotFound | Failed


def to_json(outcome: Outcome) -> dict[str, Any]:
    """The outcome as the image-projection Lambda returns it to a direct invoke."""
    match outcome:
        case Ready():
            return {
                "id": outcome.image_id,
                "outcome": "ready",
                "record": base64.b64encode(outcome.record).decode("ascii"),
                "imageBytes": outcome.image_bytes,
            }
        case NotFound():
            return {"id": outcome.image_id, "outcome": "not-found"}
        case TooBig():
            return {
                "id": outcome.image_id,
                "outcome": "too-big",
                "recordBytes": outcome.record_bytes,
                "limit": outcome.limit,
            }
        case Failed():
            return {
                "id": outcome.image_id,
                "outcome": "failed",
                "service": outcome.service,
                "status": outcome.status,
                "errorMessage": outcome.message,
                "downstreamErrorMessage": outcome.downstream_message,
                "known": outcome.known,
            }
    raise TypeError(f"not an outcome: {outcome!r}")


def from_json(data: dict[str, Any]) -> Outcome:
    """Read back what to_json wrote; ValueError (naming the field) for anything else."""
    try:
        image_id = data["id"]
        kind = data["outcome"]
        if kind == "ready":
            return Ready(
                image_id, base64.b64decode(data["record"], validate=True), int(data["imageBytes"])
            )
        if kind == "not-found":
            return NotFound(image_id)
        if kind == "too-big":
            return TooBig(image_id, int(data["recordBytes"]), int(data["limit"]))
        if kind == "failed":
            return Failed(
                image_id,
                data["service"],
                data["status"],
                data["errorMessage"],
                data.get("downstreamErrorMessage", ""),
                bool(data.get("known")),
            )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed projection outcome ({error!r}): {str(data)[:200]}") from None
    raise ValueError(f"unknown projection outcome {kind!r}")
