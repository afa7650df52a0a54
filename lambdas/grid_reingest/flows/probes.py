"""The probes that decide whose a failure is (domain/systemic.py), one per worker.

A probe asks again for an image the service served lately: the same call that
is failing, on an image known to be good, so its answer is about the service,
not about the images failing now. With no such image, the service's health
route answers instead.
"""

from __future__ import annotations

from collections.abc import Callable

from grid_reingest.domain.outcome import Failed
from grid_reingest.ports import ImageLookup, Projector

# media-api's answers that say it serves: it knows the image, or knows it has none.
SERVING = frozenset({200, 404})


class ProjectionProbe:
    """batch-index's: a projection of a known-good image, through the same projector."""

    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    def healthy(self, service: str, known_good: str | None) -> bool | None:
        """Whether a projection of `known_good` goes through (any service failing it says the
        system is not healthy); without one, `service`'s health route."""
        if known_good is None:
            return self._projector.health(service)
        outcome = self._projector.project(known_good)
        return not (isinstance(outcome, Failed) and not outcome.known)


class LookupProbe:
    """batch-check's: media-api asked about a known-good image."""

    def __init__(self, lookup: ImageLookup, health: Callable[[], bool | None]) -> None:
        self._lookup = lookup
        self._health = health

    def healthy(self, service: str, known_good: str | None) -> bool | None:
        """Whether media-api answers about `known_good`; without one, its health route."""
        if known_good is None:
            return self._health()
        return self._lookup(known_good).status in SERVING
