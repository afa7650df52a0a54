"""image-loader's capacity, for the simulated Grid over HTTP (devtools/grid_server.py).

A real loader projects an image by downloading its original and converting it:
seconds, more for a large image. It has so many slots; what arrives when all
are taken waits in a queue of so many, and beyond that is answered 503 at
once. Here each image's projection time is log-normal with a given mean and
spread, drawn from the image id (devtools/sim_random.py), so the same image
always takes as long and a run repeats whichever thread asks first.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from devtools import sim_random


@dataclass
class LoaderCapacity:
    """`slots` projections at once, `queue` more waiting; each image's time log-normal."""

    slots: int
    queue: int
    mean_seconds: float
    sigma: float = 0.0
    seed: int = 1
    counts: Counter[str] = field(default_factory=Counter)  # served, refused
    peak_busy: int = 0
    _busy: int = 0
    _waiting: int = 0
    _free: threading.Condition = field(default_factory=threading.Condition)

    @property
    def per_minute(self) -> float:
        """Images a minute with every slot busy."""
        return self.slots * 60.0 / self.mean_seconds

    def seconds(self, image_id: str) -> float:
        """How long projecting `image_id` takes once it has a slot."""
        return sim_random.lognormal(self.mean_seconds, self.sigma, self.seed, image_id)

    def serve(self, image_id: str) -> bool:
        """Take a slot (waiting in the queue), hold it for the image's time; False, at once,
        when the queue is full too (the caller answers 503)."""
        with self._free:
            if self._busy >= self.slots and self._waiting >= self.queue:
                self.counts["refused"] += 1
                return False
            self._waiting += 1
            while self._busy >= self.slots:
                self._free.wait()
            self._waiting -= 1
            self._busy += 1
            self.peak_busy = max(self.peak_busy, self._busy)
        try:
            time.sleep(self.seconds(image_id))
        finally:
            with self._free:
                self._busy -= 1
                self.counts["served"] += 1
                self._free.notify()
        return True
