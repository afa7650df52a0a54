"""Failures wait until whose they are is known; a probe decides what the window cannot."""

from __future__ import annotations

from devtools.memory_store import MemoryStore
from devtools.testing import FakeClock, grid_id
from grid_reingest.domain.claims import Claim
from grid_reingest.domain.outcome import Failed, Ready
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.domain.systemic import Cause, Judge, Rules, Symptom, Verdict
from grid_reingest.flows.probes import LookupProbe, ProjectionProbe
from grid_reingest.flows.triage import FailureTriage
from grid_reingest.ports import Presence

USAGE_503 = Symptom("usage", Cause.OVERLOAD)
USAGE_500 = Symptom("usage", Cause.ERROR)


class Probe:
    """A probe that answers as told, noting what it was asked."""

    def __init__(self, healthy: bool | None) -> None:
        self.answer = healthy
        self.asked: list[tuple[str, str | None]] = []

    def healthy(self, service: str, known_good: str | None) -> bool | None:
        self.asked.append((service, known_good))
        return self.answer


def triage(probe, clock=None, known_good=lambda: None, unprobed=()) -> FailureTriage:
    return FailureTriage(
        Judge(Rules(min_results=20)), probe, clock or FakeClock(), known_good, unprobed
    )


def fail_all(t: FailureTriage, n: int, symptom: Symptom = USAGE_503) -> None:
    for i in range(n):
        t.failed(Claim(grid_id(i), 0, S.NOT_STARTED), symptom, f"{symptom}")


def test_triage_at_the_tail_a_healthy_probe_makes_the_failures_the_images_own():
    # Given 25 images failing at usage and nothing else in the window (the tail of a pass),
    # and an image the table holds as done
    probe = Probe(healthy=True)
    t = triage(probe, known_good=lambda: "done-image")
    fail_all(t, 25)
    # When the invocation ends
    decided = t.decide(final=True)
    t.close()
    # Then the probe asked about the known-good image, and the failures are the images' own
    assert probe.asked == [("usage", "done-image")]
    assert {d.verdict for d in decided} == {Verdict.OWN} and len(decided) == 25
    assert t.stop_reason is None


def test_triage_a_failed_probe_makes_it_the_systems_and_stops_the_invocation():
    probe = Probe(healthy=False)
    t = triage(probe, known_good=lambda: "done-image")
    fail_all(t, 25, USAGE_500)
    decided = t.decide(final=True)
    t.close()
    assert {d.verdict for d in decided} == {Verdict.SYSTEMIC}
    assert t.stop_reason is not None and "usage server error" in t.stop_reason


def test_triage_prefers_an_image_served_in_this_invocation_as_the_probe():
    probe = Probe(healthy=True)
    t = triage(probe, known_good=lambda: "from-the-table")
    t.served("served-just-now")
    fail_all(t, 3)
    t.decide(final=True)
    t.close()
    assert probe.asked == [("usage", "served-just-now")]


def test_triage_a_health_route_says_nothing_of_room_for_overload():
    # Given nothing known to be good anywhere: the probe can only ask the health route
    probe = Probe(healthy=True)
    t = triage(probe)
    fail_all(t, 20, USAGE_503)
    # Then a healthy route does not make overload the images' own: the full window does
    decided = t.decide(final=True)
    t.close()
    assert {d.verdict for d in decided} == {Verdict.SYSTEMIC}


def test_triage_a_health_route_decides_for_errors():
    probe = Probe(healthy=True)
    t = triage(probe)
    fail_all(t, 20, USAGE_500)
    decided = t.decide(final=True)
    t.close()
    assert {d.verdict for d in decided} == {Verdict.OWN}


def test_triage_a_probes_verdict_stands_for_a_while():
    clock = FakeClock()
    probe = Probe(healthy=True)
    t = triage(probe, clock=clock, known_good=lambda: "done")
    fail_all(t, 5)
    t.decide(final=True)
    fail_all(t, 5)
    t.decide(final=True)
    assert len(probe.asked) == 1
    clock.sleep(Rules().probe_seconds)
    fail_all(t, 5)
    t.decide(final=True)
    t.close()
    assert len(probe.asked) == 2


def test_triage_a_probe_that_raises_tells_nothing_and_the_window_decides():
    class Broken:
        def healthy(self, service, known_good):
            raise RuntimeError("boom")

    t = triage(Broken(), known_good=lambda: "done")
    fail_all(t, 3, USAGE_500)
    decided = t.decide(final=True)
    t.close()
    assert {d.verdict for d in decided} == {Verdict.OWN}


def test_triage_unprobed_services_are_judged_on_the_window():
    probe = Probe(healthy=True)
    t = triage(probe, unprobed=["kinesis"])
    fail_all(t, 20, Symptom("kinesis", Cause.OVERLOAD))
    decided = t.decide(final=False)
    t.close()
    assert probe.asked == []
    assert {d.verdict for d in decided} == {Verdict.SYSTEMIC}


def test_triage_a_streams_throughput_is_the_systems_unless_the_caller_knows_better():
    # Given a stream serving most records, turning two away for a shard's throughput, and
    # one record the caller knows is its own (a record too large for a busy shard)
    t = triage(Probe(healthy=True), unprobed=["kinesis"])
    for _ in range(30):
        t.served(channel="kinesis")
    throughput = Symptom("kinesis", Cause.OVERLOAD)
    for i in range(2):
        t.failed(Claim(grid_id(i), 0, S.NOT_STARTED), throughput, "throughput", "kinesis")
    t.own(Claim(grid_id(9), 0, S.NOT_STARTED), throughput, "too large", "kinesis")
    # When the invocation ends
    decided = t.decide(final=True)
    t.close()
    # Then the throughput rejections are the system's, without stopping the invocation,
    # and the one the caller judged is the image's own, one attempt's worth
    verdicts = {d.claim.id: (d.verdict, d.per_attempt) for d in decided}
    assert verdicts[grid_id(0)][0] is verdicts[grid_id(1)][0] is Verdict.SYSTEMIC
    assert verdicts[grid_id(9)] == (Verdict.OWN, 1)
    assert t.stop_reason is None


class Projector:
    def __init__(self, outcome):
        self.outcome = outcome
        self.health_asked: list[str] = []

    def project(self, image_id):
        return self.outcome

    def health(self, service):
        self.health_asked.append(service)
        return True


def test_projection_probe_judges_by_a_known_good_images_projection():
    ok = ProjectionProbe(Projector(Ready("a", b"x", 1)))
    down = ProjectionProbe(Projector(Failed("a", "image-loader", None, "no response")))
    known = ProjectionProbe(Projector(Failed("a", "image-loader", 500, "x", known=True)))
    assert ok.healthy("usage", "a") is True
    assert down.healthy("usage", "a") is False
    assert known.healthy("usage", "a") is True  # the loader answered: it serves


def test_projection_probe_without_an_image_asks_the_health_route():
    projector = Projector(Ready("a", b"x", 1))
    assert ProjectionProbe(projector).healthy("usage", None) is True
    assert projector.health_asked == ["usage"]


def test_lookup_probe_serving_means_200_or_404():
    answers = {"present": Presence(200), "gone": Presence(404), "down": Presence(None)}
    probe = LookupProbe(lambda i: answers[i], lambda: None)
    assert probe.healthy("media-api", "present") is True
    assert probe.healthy("media-api", "gone") is True
    assert probe.healthy("media-api", "down") is False
    assert probe.healthy("media-api", None) is None


def test_memory_store_sample_finds_an_item_in_a_state():
    store = MemoryStore()
    store.put_new([grid_id(1)])
    assert store.sample([S.ENQUEUED]) is None
    store.put_new([grid_id(2)], state=S.ENQUEUED)
    assert store.sample([S.ENQUEUED, S.VERIFIED]) == grid_id(2)
