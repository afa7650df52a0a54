"""What differs between the two workers' loops: the `Strategy` each gives the loop
(flows/loop.py), and what a strategy's background work reports back to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from grid_reingest.domain.claims import Claim, Source


@dataclass
class Flushed:
    """What a strategy's flush learnt from its background work, for the pace."""

    overloaded: int = 0  # overload answers (the stream's)
    # Records the stream accepted: (shard id, sequence number, monotonic time published).
    published: list[tuple[str, int, float]] = field(default_factory=list)


class Strategy[R](Protocol):
    """What a worker's loop does that the other's does not."""

    # Whether claims given back unstarted keep their items' places (the time each last
    # changed); otherwise they go back as changed now, and wait for the next invocation.
    keeps_place: ClassVar[bool]

    def sources(self, started_at: datetime) -> Sequence[Source]:
        """Where claims come from, in order (what went back after `started_at`, when the
        invocation began, waits for the next one)."""
        ...

    def admit(self, claim: Claim) -> float | None:
        """Seconds to hold a new claim before its work starts (None: at once)."""
        ...

    def work(self, image_id: str) -> R:
        """One image's work (runs in a thread of the pool); never raises for an image."""
        ...

    def surprise(self, image_id: str, error: Exception) -> R:
        """The result of a work that raised anyway."""
        ...

    def finish(self, claim: Claim, result: R) -> bool:
        """Take one finished image's result (outcomes to the recorder); True for an overload
        answer."""
        ...

    def timed(self, result: R) -> bool:
        """Whether the time `result` took measures the service's (a failure that comes back
        at once, a 500 with no latency warning, says nothing of it and would read the Grid
        quicker than it is)."""
        ...

    def flush(self, *, final: bool, idle: bool) -> Flushed:
        """Write what is due (all of it when `final`; `idle`: nothing in flight)."""
        ...

    def halt(self) -> str | None:
        """The strategy's own reason to stop starting images, if any."""
        ...

    def cap(self, limit: int) -> int:
        """The in-flight limit the strategy allows now, given the pace's."""
        ...

    def again_in(self) -> float | None:
        """Once a claim found nothing and nothing runs: seconds to wait before claiming again
        (more will come within the invocation), or None to end."""
        ...

    def close(self) -> None:
        """After the loop (or a failure): wait for the strategy's own background work."""
        ...
