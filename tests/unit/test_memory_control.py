"""The in-memory control item behaves as the DynamoDB one: conditional, atomic saves."""

import threading

from devtools.memory_control import MemoryControl
from grid_reingest.domain.control import Knobs, PaceState


def test_memory_control_lets_exactly_one_of_racing_saves_win():
    # Given many threads that read the same version
    store = MemoryControl()
    version = store.read().version
    wins = []
    barrier = threading.Barrier(16)

    def save(n: int) -> None:
        barrier.wait()
        if store.save_pace(PaceState(n, None, f"worker {n}"), version):
            wins.append(n)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then one save won and the item holds its state
    assert len(wins) == 1
    assert store.read().pace.limit == wins[0]
    assert store.read().version == version + 1


def test_memory_control_knobs_keep_the_pace():
    store = MemoryControl()
    store.save_pace(PaceState(3, None, "start"), 0)
    control = store.set_knobs(Knobs(paused=True))
    assert control.knobs.paused
    assert control.pace == PaceState(3, None, "start")
