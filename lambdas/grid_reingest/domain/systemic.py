"""Whose failure is it: the image's own, or the system's (pure).

A failed call costs an image an attempt only when the failure is the image's
own. Whether it is depends on what the same service does for other images:

- A service that answers most of the latest images (it fails at most
  `others_fine_share` of the window) is serving others: the failure is this
  image's own.
- Otherwise the answers alone cannot tell "the service is down" from "the
  images left all fail on their own" (the tail of a pass is exactly that), so
  a **probe** decides: the same call for an image the service served lately,
  or its health route when it has served none (flows/triage.py makes it). A
  service that fails the probe is the system's failure; one that passes it is
  healthy, and the failures are the images'.
- 401 and 403 say the key is refused, whatever the image: the system's, with
  no probe.

The system's failures cost no attempt and stop the invocation, which then
fails loudly — except overload answers that are not most of the window, which
are the pace's business (the controller slows down). An overload answer that
is an image's own (it keeps getting one while the service serves others)
costs an attempt only every `overloads_per_attempt` times: a full queue at the
Grid answers 503 to whichever image comes, and one such answer says little.
So an image that fails alone always ends (at 8, after `max_attempts` x
`overloads_per_attempt` overload answers at most), and a healthy pass under
real systemic overload charges nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

# Answers that say "too much, later" rather than "this image is bad".
OVERLOAD_STATUSES = frozenset({429, 502, 503, 504})
# Answers that say the key is refused: every image would get the same.
REFUSED_STATUSES = frozenset({401, 403})


class Cause(Enum):
    """How a service failed, as far as whose fault it is goes."""

    REFUSED = "key refused"
    OVERLOAD = "overloaded"
    ERROR = "server error"
    NO_ANSWER = "no answer"
    OTHER = "other answer"


def cause_of(status: int | None, *, infrastructure: bool = False) -> Cause:
    """The cause of a failed call from its status (None: no answer). With `infrastructure`
    (the Lambda service invoking image-projection), any 5xx is overload."""
    if status is None:
        return Cause.NO_ANSWER
    if status in REFUSED_STATUSES:
        return Cause.REFUSED
    if status in OVERLOAD_STATUSES or (infrastructure and status >= 500):
        return Cause.OVERLOAD
    if status >= 500:
        return Cause.ERROR
    return Cause.OTHER


@dataclass(frozen=True)
class Symptom:
    """One failed call: which service, and how."""

    service: str
    cause: Cause

    def __str__(self) -> str:
        return f"{self.service} {self.cause.value}"


class Verdict(Enum):
    """Whose failure it is, or that it cannot be told yet."""

    OWN = "the image's own"
    SYSTEMIC = "the system's"
    OPEN = "not known yet"


@dataclass(frozen=True)
class Rules:
    """The judgement's constants (docs/reliability.md says why each)."""

    window: int = 20  # the latest finished images (and records) judged over
    min_results: int = 20  # fewer in the window: it cannot show a service serving others
    others_fine_share: float = 0.2  # a service failing at most this share serves others
    most_share: float = 0.5  # overload from more than this share stops the invocation
    probe_seconds: float = 30.0  # a probe's verdict stands this long
    overloads_per_attempt: int = 3  # an image's own overload answers per attempt charged


class Judge:
    """The latest results, per service, and the verdict on a failure given a probe's answer.

    Results are kept per channel: the Grid's services answer for images (one result a
    projection), thrall's stream for records (one a record); a service's share is taken
    among the results of its own channel.
    """

    def __init__(self, rules: Rules | None = None) -> None:
        self.rules = rules or Rules()
        self._windows: dict[str, deque[str | None]] = {}
        self._channels: dict[str, str] = {}  # service: its channel

    def served(self, channel: str = "") -> None:
        """Count one image (or record) every service of `channel` answered."""
        self._window(channel).append(None)

    def failed(self, symptom: Symptom, channel: str = "") -> None:
        """Count one image (or record) whose `symptom.service` failed."""
        self._channels[symptom.service] = channel
        self._window(channel).append(symptom.service)

    def share(self, service: str) -> float:
        """The share of its channel's window `service` failed (0 for an empty window)."""
        latest = self._latest(service)
        if not latest:
            return 0.0
        return sum(s == service for s in latest) / len(latest)

    def others_fine(self, service: str) -> bool:
        """Whether the window shows `service` serving other images."""
        enough = len(self._latest(service)) >= self.rules.min_results
        return enough and self.share(service) <= self.rules.others_fine_share

    def verdict(self, symptom: Symptom, healthy: bool | None) -> Verdict:
        """Whose failure `symptom` is, given a probe of its service (None: no probe answer)."""
        if symptom.cause is Cause.REFUSED:
            return Verdict.SYSTEMIC
        if self.others_fine(symptom.service):
            return Verdict.OWN
        if healthy is None:
            return Verdict.OPEN
        return Verdict.OWN if healthy else Verdict.SYSTEMIC

    def without_probe(self, symptom: Symptom, *, final: bool) -> Verdict:
        """The verdict where the service cannot be probed (thrall's stream), or the probe could
        not tell: the window alone, which must be full to call a failure the system's. Until it
        is, OPEN — unless `final` (the invocation ends): then the image's own."""
        if symptom.cause is Cause.REFUSED:
            return Verdict.SYSTEMIC
        if len(self._latest(symptom.service)) < self.rules.min_results:
            return Verdict.OWN if final else Verdict.OPEN
        failing = self.share(symptom.service) > self.rules.others_fine_share
        return Verdict.SYSTEMIC if failing else Verdict.OWN

    def stops(self, symptom: Symptom) -> bool:
        """Whether the system's failure `symptom` stops the invocation: any but overload, and
        overload from most of the window."""
        if symptom.cause is not Cause.OVERLOAD:
            return True
        return self.share(symptom.service) > self.rules.most_share

    def _window(self, channel: str) -> deque[str | None]:
        return self._windows.setdefault(channel, deque(maxlen=self.rules.window))

    def _latest(self, service: str) -> deque[str | None]:
        return self._window(self._channels.get(service, ""))
