"""Random draws for the pass simulator, each from its own key: never from a shared generator.

A draw is a function of (seed, what it is for, and its place: an image id, an
attempt, a call), so a run does not depend on which thread asked first:
the same scenario and seed give the same world however the machine's load
orders the threads.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

_UNIT = NormalDist()
_SCALE = float(2**64)


def uniform(seed: int, *key: object) -> float:
    """A number in (0, 1), the same for the same seed and key."""
    text = "\x1f".join(str(part) for part in (seed, *key)).encode()
    value = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")
    return (value + 0.5) / _SCALE


def lognormal(mean: float, sigma: float, seed: int, *key: object) -> float:
    """A log-normal draw with this mean (not median) and spread."""
    if sigma <= 0:
        return mean
    z = _UNIT.inv_cdf(uniform(seed, *key))
    return mean * math.exp(sigma * z - sigma * sigma / 2)


def chance(share: float, seed: int, *key: object) -> bool:
    """True with probability `share`."""
    return uniform(seed, *key) < share
