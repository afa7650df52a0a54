"""An in-memory control item (the ControlStore port), for fast tests and the pass simulator."""

from __future__ import annotations

import threading
from dataclasses import replace

from grid_reingest.domain.control import Control, Knobs, PaceState


class MemoryControl:
    """The control item in memory; saves are atomic and conditional, as DynamoDB's are."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self._control = Control(knobs=knobs or Knobs())
        self._lock = threading.Lock()
        self.refused_runs = 0

    def read(self) -> Control:
        """The item as it is now."""
        with self._lock:
            return self._control

    def save_pace(self, pace: PaceState, expected_version: int) -> bool:
        """Store the controller's state if nobody saved since `expected_version`."""
        with self._lock:
            if self._control.version != expected_version:
                return False
            self._control = replace(self._control, pace=pace, version=expected_version + 1)
            return True

    def set_knobs(self, knobs: Knobs, previous: Knobs | None = None) -> Control:
        """Write the operator's knobs; with `previous`, only those that differ from it."""
        with self._lock:
            if previous is not None:
                changed = {
                    name: getattr(knobs, name)
                    for name in ("paused", "max_in_flight", "max_rate_per_minute")
                    if getattr(knobs, name) != getattr(previous, name)
                }
                knobs = replace(self._control.knobs, **changed)
            self._control = replace(self._control, knobs=knobs)
            return self._control

    def count_refusal(self, refused: bool) -> int:
        """Add one to the refused invocations in a row, or reset them; the count."""
        with self._lock:
            self.refused_runs = self.refused_runs + 1 if refused else 0
            return self.refused_runs
