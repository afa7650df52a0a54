"""The pass records in memory (the PassStore port), atomic as the DynamoDB adapter's."""

from __future__ import annotations

import threading
from dataclasses import replace

from grid_reingest.adapters.dynamodb.passes import PassRunning
from grid_reingest.domain.passes import Pass, Status, Verified


class MemoryPasses:
    """`~pass` and the history, in memory; every method is atomic."""

    def __init__(self) -> None:
        self._current: Pass | None = None
        self.records: dict[str, Pass] = {}
        self._lock = threading.Lock()

    def current(self) -> Pass | None:
        with self._lock:
            return self._current

    def start(self, new: Pass) -> Pass:
        with self._lock:
            if self._current is not None and self._current.status is not Status.FINISHED:
                raise PassRunning(self._current)
            fresh = replace(new, present=0, repaired=0, gb_seconds=0.0)
            self._current = self.records[new.id] = fresh
            return new

    def save(self, record: Pass, expected: Status) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.id != record.id or current.status is not expected:
                return False
            # The counts are kept apart from the record, as the table's ADDs are.
            kept = replace(
                record,
                present=current.present,
                repaired=current.repaired,
                gb_seconds=current.gb_seconds,
            )
            self._current = self.records[record.id] = kept
            return True

    def finish(self, ended: Pass) -> bool:
        return self.save(ended, Status.RUNNING)

    def count_verified(self, verified: Verified) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.id != verified.pass_id:
                return False
            self._current = replace(
                current,
                present=current.present + verified.present,
                repaired=current.repaired + verified.repaired,
            )
            return True

    def add_usage(self, gb_seconds: float) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.status is not Status.RUNNING:
                return False
            self._current = replace(current, gb_seconds=current.gb_seconds + gb_seconds)
            return True
