"""The progress states of an image in the state table.

The numbers and names are the Grid's own (admin-tools' batch indexing); operators
know them, so they never change here.
"""

from __future__ import annotations

from enum import IntEnum


class ProgressState(IntEnum):
    """Where one image is in a reingestion pass."""

    NOT_STARTED = 0
    IN_PROGRESS = 1
    NOT_FOUND = 2
    ENQUEUED = 3
    KNOWN_ERROR = 4
    LOOKING_FOR_IMAGE = 5
    VERIFIED = 6
    NOT_FOUND_IN_MEDIA_API = 7
    UNKNOWN_ERROR = 8
    TOO_BIG = 9001

    @property
    def label(self) -> str:
        """The state's name as the Grid writes it on an item."""
        return _LABELS[self]

    @property
    def is_claim(self) -> bool:
        """True for the states a worker holds an item in while it works on it."""
        return self in (ProgressState.IN_PROGRESS, ProgressState.LOOKING_FOR_IMAGE)

    @classmethod
    def parse(cls, text: str) -> ProgressState:
        """A state from its number ("4") or its member name ("KNOWN_ERROR")."""
        value = text.strip()
        try:
            return cls(int(value))
        except ValueError:
            pass
        try:
            return cls[value.upper().replace("-", "_")]
        except KeyError:
            known = ", ".join(f"{s.value} ({s.name})" for s in cls)
            raise ValueError(f"unknown progress state {text!r}; known states: {known}") from None


_LABELS = {
    ProgressState.NOT_STARTED: "at rest",
    ProgressState.IN_PROGRESS: "in progress",
    ProgressState.NOT_FOUND: "not found by image-loader",
    ProgressState.ENQUEUED: "enqueued",
    ProgressState.KNOWN_ERROR: "blacklisted because of known failure",
    ProgressState.LOOKING_FOR_IMAGE: "looking for image",
    ProgressState.VERIFIED: "image verified in media-api \u2013 reingestion complete",
    ProgressState.NOT_FOUND_IN_MEDIA_API: "re-ingested image not found in media-api",
    ProgressState.UNKNOWN_ERROR: "blacklisted because of unknown failure",
    ProgressState.TOO_BIG: "too big, putting back down",
}

# State 0 under its other Grid name: where a failed image goes back to for a retry.
RESET_LABEL = "reset because of failure"

# Real Grid errors that will fail the same way every time: retrying is pointless.
KNOWN_PERMANENT_LOADER_ERRORS = (
    "org.im4java.core.CommandException",
    "End of data reached.",
)


def parse_states(text: str) -> tuple[ProgressState, ...]:
    """A comma-separated list of states, e.g. "4,8" or "KNOWN_ERROR,8"."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("no state given")
    return tuple(dict.fromkeys(ProgressState.parse(p) for p in parts))
