"""Failures planted in the simulated Grid the way real images fail, for the demo and `make local`.

Each kind is how it is made on a GridSim, the state its images must end in,
and why, in the words the demo prints. A --mix share of a file's ids is
planted, at least one of each kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from devtools.grid_server import GridSim
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.settings import MAX_ATTEMPTS

ATTEMPTS: int = MAX_ATTEMPTS.default_value


@dataclass(frozen=True)
class Kind:
    """One kind of planted failure: how it is made, where it must end, and why."""

    key: str
    what: str
    state: S
    why: str
    plant: Callable[[GridSim, str], None]


KINDS = (
    Kind(
        "missing",
        "ids image-loader does not have",
        S.NOT_FOUND,
        "deleted images or wrong ids in the list: nothing to retry",
        lambda grid, i: grid.missing.add(i),
    ),
    Kind(
        "corrupt",
        "corrupt originals",
        S.KNOWN_ERROR,
        "image-loader fails with an error known to be permanent (org.im4java)",
        lambda grid, i: grid.known_loader_error(i),
    ),
    Kind(
        "huge",
        "huge images",
        S.TOO_BIG,
        "the projection is above one Kinesis record (1 MiB): thrall could never take it",
        lambda grid, i: grid.huge.add(i),
    ),
    Kind(
        "leases-down",
        "ids whose leases service answers 500 every time",
        S.UNKNOWN_ERROR,
        f"each invocation tries again; after {ATTEMPTS} attempts they are set aside at 8,"
        " worth retrying once the service is mended",
        lambda grid, i: grid.fail(i, "leases", 500),
    ),
    Kind(
        "usages-blip",
        "ids whose usages service fails once",
        S.VERIFIED,
        "a passing failure: the next invocation retries them and they are verified",
        lambda grid, i: grid.fail(i, "usages", 500, times=1),
    ),
)


def image_ids(n: int) -> list[str]:
    """Ids shaped like the Grid's: the SHA-1 of an original file."""
    return [
        hashlib.sha1(f"original-{i}.jpg".encode(), usedforsecurity=False).hexdigest()
        for i in range(n)
    ]


def planted_count(ids: int, mix: float) -> int:
    """How many ids get a planted failure: the --mix share, at least one of each kind."""
    return 0 if mix == 0 else max(len(KINDS), round(ids * mix))


def plant(grid: GridSim, ids: list[str], mix: float) -> dict[str, Kind]:
    """Plant failures on a --mix share of `ids`; id -> its kind. The ids taken are the
    smallest: the same each run, and spread over the file (ids are SHA-1s)."""
    chosen = sorted(ids)[: planted_count(len(ids), mix)]
    planted = {image_id: KINDS[n % len(KINDS)] for n, image_id in enumerate(chosen)}
    for image_id, kind in planted.items():
        kind.plant(grid, image_id)
    return planted
