"""The in-memory state table keeps DynamoDB's promises: conditional, atomic, claim once."""

import threading
from collections import Counter

from devtools.memory_store import MemoryStore
from grid_reingest.domain.claims import Source, Transition, failure_transition
from grid_reingest.domain.states import ProgressState as S


def test_memory_store_racing_claimers_take_each_item_once():
    # Given 500 items and 8 threads claiming at once
    store = MemoryStore()
    store.put_new(f"{n:040x}" for n in range(500))
    taken: list[str] = []
    barrier = threading.Barrier(8)

    def invocation(name: str) -> None:
        barrier.wait()
        while claims := store.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 25, name):
            taken.extend(c.id for c in claims)

    threads = [threading.Thread(target=invocation, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every item was claimed exactly once
    assert len(taken) == 500
    assert max(Counter(taken).values()) == 1
    assert store.counts()[S.IN_PROGRESS] == 500


def test_memory_store_transitions_hold_only_while_the_claim_does():
    store = MemoryStore()
    store.put_new(["a" * 40])
    (claim,) = store.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "w1")
    assert store.apply([Transition(claim.id, S.IN_PROGRESS, S.ENQUEUED, invocation="w2")]) == [
        False
    ]
    failed = failure_transition(claim, S.IN_PROGRESS, "w1", "loader: HTTP 502", max_attempts=3)
    assert store.apply([failed]) == [True]
    item = store.get(claim.id)
    assert (item.state, item.attempts, item.last_error) == (S.NOT_STARTED, 1, "loader: HTTP 502")
    assert item.claimed_by is None
