"""A one-line progress bar with rate and ETA, drawn only on a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

WIDTH = 30
REDRAW_EVERY_S = 0.1


class Progress:
    """Counts work done towards `total` (None: unknown) and redraws at most ten times a second."""

    def __init__(self, total: int | None, label: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

    def advance(self, n: int) -> None:
        """Record `n` more units done."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and now - self._drawn >= REDRAW_EVERY_S:
                self._drawn = now
                self._draw(now)

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-6)
        if not self.total:
            self.stream.write(f"\r{self.label} {self.done:,} {rate:,.0f}/s")
            self.stream.flush()
            return
        share = min(self.done / self.total, 1.0)
        filled = int(share * WIDTH)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] "
            f"{self.done:,}/{self.total:,} {share:5.1%} {rate:,.0f}/s "
            f"ETA {eta(self.total - self.done, rate)}\x1b[K"
        )
        self.stream.flush()


def eta(remaining: int, rate: float) -> str:
    """Time left at `rate` per second, as h:mm:ss ("--:--" before there is a rate)."""
    if rate <= 0:
        return "--:--"
    seconds = int(max(remaining, 0) / rate)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
