"""The simulated Grid's image-loader with slots and a queue (devtools/loader_capacity.py), over
real HTTP: a projection holds a slot for its image's time, a full queue answers 503 at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from devtools.grid_server import GridSim
from devtools.loader_capacity import LoaderCapacity
from devtools.testing import grid_id
from grid_reingest.adapters.grid import GridClient

KEY = "X-Gu-Media-Key"


def test_each_image_takes_its_own_time_the_same_every_run():
    loader = LoaderCapacity(slots=1, queue=0, mean_seconds=4.0, sigma=1.0, seed=7)
    times = [loader.seconds(grid_id(n)) for n in range(200)]
    assert times == [LoaderCapacity(1, 0, 4.0, 1.0, seed=7).seconds(grid_id(n)) for n in range(200)]
    assert len(set(times)) == 200
    assert 3.0 < sum(times) / len(times) < 5.0  # the mean asked for, not the median
    assert LoaderCapacity(1, 0, 4.0, 0.0).seconds(grid_id(1)) == 4.0


def test_a_full_loader_queues_then_answers_503_at_once():
    # Given one slot and one place in the queue, each projection 0.3 s
    loader = LoaderCapacity(slots=1, queue=1, mean_seconds=0.3)
    with GridSim(loader=loader) as grid:
        url = grid.base_url("image-loader") + "/images/project/"
        started = threading.Barrier(3)

        def project(n: int) -> int:
            # Plain requests: the Grid client would try a 503 again.
            started.wait()
            answer = requests.get(url + grid_id(n), headers={KEY: grid.api_key}, timeout=10)
            return answer.status_code

        # When three arrive at once
        with ThreadPoolExecutor(3) as pool:
            statuses = sorted(pool.map(project, range(3)))
    # Then one is served, one waits its turn and is served, the third is refused
    assert statuses == [200, 200, 503]
    assert loader.counts == {"served": 2, "refused": 1}
    assert loader.peak_busy == 1


def test_other_loader_routes_and_services_take_no_slot():
    loader = LoaderCapacity(slots=1, queue=0, mean_seconds=5.0)
    with GridSim(loader=loader) as grid:
        client = GridClient(grid.settings(), grid.api_key)
        assert client.image(grid_id(1)).status == 200
    assert loader.counts == {}
