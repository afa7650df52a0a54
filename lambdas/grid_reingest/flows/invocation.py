"""What one worker invocation works with and within, and how it can fail to record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from grid_reingest.domain.systemic import Rules
from grid_reingest.ports import ClaimStore, Clock, Pace
from grid_reingest.settings import BatchCheckSettings, BatchIndexSettings

if TYPE_CHECKING:
    from grid_reingest.flows.summary import Summary


class RecordFailed(RuntimeError):
    """Outcomes could not be written after every try; the images stay held until their lease."""


class SystemicFailure(RuntimeError):
    """The system failed for the images alike (a service down, overloaded for most images, the
    key refused): raised once their claims went back with no attempt (domain/systemic.py)."""

    def __init__(self, message: str, summary: Summary) -> None:
        super().__init__(message)
        self.summary = summary


def rules_of(settings: BatchIndexSettings | BatchCheckSettings) -> Rules:
    """The judgement of whose a failure is, with the worker's settings."""
    return Rules(
        min_results=settings.loop.breaker_min_results, most_share=settings.loop.breaker_share
    )


class WorkerDeps(Protocol):
    """What a worker's dependencies carry for its loop (IndexDeps, CheckDeps)."""

    @property
    def store(self) -> ClaimStore: ...
    @property
    def pace(self) -> Pace: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def remaining_ms(self) -> Callable[[], int]: ...
    @property
    def invocation(self) -> str: ...


@dataclass
class LoopDeps:
    """What every worker's loop works with."""

    store: ClaimStore
    pace: Pace
    clock: Clock
    remaining_ms: Callable[[], int]
    invocation: str

    @classmethod
    def of(cls, deps: WorkerDeps) -> LoopDeps:
        """The loop's part of a worker's dependencies (any that carry these five)."""
        return cls(deps.store, deps.pace, deps.clock, deps.remaining_ms, deps.invocation)


# A worker told work goes on this soon waits rather than ending: the keep-alive
# deployed (a minute) would bring the next invocation no sooner.
LONGEST_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Limits:
    """The invocation's limits from the settings."""

    margin_ms: int  # stop starting images with less than this left
    lease_seconds: int  # claims not started within half of it go back (another may take them)
    max_in_flight: int  # the deployed ceiling (threads)
    max_attempts: int
    idle_seconds: float  # nothing could start this long and nothing in flight: end
    record_budget_ms: int  # a write is tried again only while this much is left
    refresh_seconds: float = 15.0  # the pace's refresh: claims under a rate take this long's worth

    @classmethod
    def of(cls, settings: BatchIndexSettings | BatchCheckSettings) -> Limits:
        """A worker's limits, from its settings (both workers name them alike)."""
        return cls(
            margin_ms=settings.stop_margin_seconds * 1000,
            lease_seconds=settings.loop.lease_seconds,
            max_in_flight=settings.max_in_flight,
            max_attempts=settings.loop.max_attempts,
            idle_seconds=settings.loop.idle_seconds,
            record_budget_ms=settings.loop.record_budget_seconds * 1000,
            refresh_seconds=settings.loop.refresh_seconds,
        )

    def out_of_time(self, remaining_ms: int) -> bool:
        """Too little of the invocation left to start an image (the stop margin)."""
        return remaining_ms < self.margin_ms
