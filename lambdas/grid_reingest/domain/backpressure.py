"""Overload: which answers say a service is overloaded, and when that is the system's fault.

An overload answer (429, 502, 503, 504; a Lambda throttle; a stream's
throughput exceeded) slows the controller down. Whether it also costs the
image an attempt depends on the others: when many images meet overload at
once, it is the system's (the images go back untouched); an image that alone
keeps failing while the others succeed is charged, so that it still reaches
state 8 after its attempts and a pass always ends. Pure.
"""

from __future__ import annotations

from collections import deque

from grid_reingest.domain.outcome import Failed, Outcome

# Answers that say "too much, later" rather than "this image is bad".
OVERLOAD_STATUSES = frozenset({429, 502, 503, 504})
# How many of the latest finished images judge whether overload is systemic.
WINDOW = 20
# More overload answers than this share of the window: the system's fault.
SYSTEMIC_SHARE = 0.2


def is_overload(outcome: Outcome, infrastructure: frozenset[str] = frozenset()) -> bool:
    """Whether `outcome` is an overload answer; any 5xx from a service in `infrastructure`
    (the Lambda service invoking image-projection) counts too."""
    if not isinstance(outcome, Failed) or outcome.known or outcome.status is None:
        return False
    if outcome.status in OVERLOAD_STATUSES:
        return True
    return outcome.service in infrastructure and outcome.status >= 500


class OverloadWindow:
    """The latest finished images, and whether the overload among them is systemic.

    The share is taken over at least WINDOW images, so an image failing alone
    early in an invocation (nothing else finished yet) does not look systemic.
    """

    def __init__(self, size: int = WINDOW, share: float = SYSTEMIC_SHARE) -> None:
        self.size = size
        self.share = share
        self._latest: deque[bool] = deque(maxlen=size)

    def record(self, overloaded: bool) -> None:
        """Count one finished image (or one published record)."""
        self._latest.append(overloaded)

    def systemic(self) -> bool:
        """True when overload answers are more than `share` of the window."""
        return sum(self._latest) / self.size > self.share
