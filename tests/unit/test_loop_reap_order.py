"""The loop takes in finished images in the order it started them, whatever the set says."""

from __future__ import annotations

from concurrent.futures import Future

from devtools.testing import Scripted, Stream, grid_id, index_deps
from grid_reingest.domain.claims import Claim
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.batch_index import IndexSummary
from grid_reingest.flows.invocation import Limits, LoopDeps
from grid_reingest.flows.loop import Loop
from grid_reingest.flows.record import Recorder
from grid_reingest.settings import BatchIndexSettings, load


class Finishes:
    """A strategy that only remembers the order images were taken in."""

    keeps_place = False

    def __init__(self) -> None:
        self.order: list[str] = []

    def timed(self, result: object) -> bool:
        return True

    def finish(self, claim: Claim, result: object) -> bool:
        self.order.append(claim.id)
        return False


def test_images_finished_together_are_taken_in_the_order_they_started(store, clock):
    # Given a loop with 64 images in flight, all finished by the time it looks, started in
    # the reverse of the order their futures were made (a set iterates by address)
    settings = load(
        BatchIndexSettings,
        {
            "STATE_TABLE_NAME": "state-TEST",
            "THRALL_STREAM_NAME": "thrall-TEST",
            "PROJECTION_FUNCTION_NAME": "image-projection-TEST",
        },
    )
    deps = index_deps(store, Scripted(), Stream(), clock=clock)
    recorder = Recorder(S.IN_PROGRESS, LoopDeps.of(deps), Limits.of(settings), IndexSummary())
    strategy = Finishes()
    loop = Loop(recorder, strategy)
    futures = [Future() for _ in range(64)]
    for future in futures:
        future.set_result((None, 1.0))
    started = [grid_id(n) for n in range(64)]
    for future, image_id in zip(reversed(futures), started, strict=True):
        loop.in_flight[future] = Claim(image_id, attempts=0, claimed_from=S.NOT_STARTED)
    # When it takes them in
    loop._reap(block=False)
    # Then in the order they started: two runs of a simulated pass take the same records
    # into the same calls
    assert strategy.order == started
    assert not loop.in_flight
