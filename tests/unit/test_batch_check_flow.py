"""batch-check's flow on the in-memory store: progressive claims, systemic failures cost nothing."""

from __future__ import annotations

import pytest

from devtools.testing import Rule, Steady, check_settings, grid_id
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.flows.invocation import SystemicFailure
from grid_reingest.handlers.batch_check import media_api_lookup
from grid_reingest.ports import PaceDecision, Presence


@pytest.fixture
def settings():
    return check_settings(CHECK_MIN_AGE_SECONDS="0", BREAKER_MIN_RESULTS="10")


def enqueued(store, n):
    ids = [grid_id(i) for i in range(n)]
    store.put_new(ids, S.ENQUEUED)
    return ids


def deps(store, clock, lookup, *, pace=None, rule=None) -> CheckDeps:
    return CheckDeps(
        store=store,
        lookup=lookup,
        pace=pace or Steady(limit=4),
        clock=clock,
        remaining_ms=lambda: 15 * 60_000,
        invocation="check-1",
        rule=rule,
    )


def test_batch_check_records_media_apis_answers(store, clock, settings):
    ids = enqueued(store, 3)
    answers = {ids[0]: Presence(200), ids[1]: Presence(404), ids[2]: Presence(500, "boom")}
    summary = run_batch_check(settings, deps(store, clock, lambda i: answers[i]))
    assert [store.get(i).state for i in ids] == [S.VERIFIED, S.NOT_FOUND_IN_MEDIA_API, S.ENQUEUED]
    assert store.get(ids[2]).attempts == 1
    assert summary.failures == 1


def test_batch_check_claims_progressively_under_its_ceiling(store, clock, settings):
    enqueued(store, 300)
    pace = Steady(limit=4)
    summary = run_batch_check(settings, deps(store, clock, lambda i: Presence(200), pace=pace))
    assert store.counts()[S.VERIFIED] == 300
    assert summary.limit == 4 and pace.seen.finished == 300


def test_batch_check_a_refused_key_costs_no_attempt_and_fails_loudly(store, clock, settings):
    # Given media-api refusing the key for every image
    ids = enqueued(store, 40)
    asked = []

    def refused(image_id):
        asked.append(image_id)
        return Presence(401, "Unauthorized")

    with pytest.raises(SystemicFailure) as caught:
        run_batch_check(settings, deps(store, clock, refused))
    # Then every claim went back with no attempt
    assert "401" in str(caught.value)
    assert store.counts()[S.ENQUEUED] == 40
    assert {store.get(i).attempts for i in ids} == {0}
    # media-api was asked about what was in flight when the 401 came back, no more
    assert len(asked) <= 4 + 4
    assert caught.value.summary.released == caught.value.summary.claimed


def test_batch_check_media_api_down_costs_no_attempt_and_fails_loudly(store, clock, settings):
    ids = enqueued(store, 100)
    with pytest.raises(SystemicFailure, match="media-api server error"):
        run_batch_check(settings, deps(store, clock, lambda i: Presence(500, "down")))
    assert store.counts()[S.ENQUEUED] == 100
    assert {store.get(i).attempts for i in ids} == {0}


def test_batch_check_pause_stops_claiming(store, clock, settings):
    enqueued(store, 20)
    paused = Steady(script=lambda n: PaceDecision(0, None, "paused by the operator", paused=True))
    summary = run_batch_check(settings, deps(store, clock, lambda i: Presence(200), pace=paused))
    assert summary.claimed == 0 and summary.stopped_because == "paused by the operator"
    assert store.counts()[S.ENQUEUED] == 20


def test_batch_check_switches_its_rule_off_at_the_end(store, clock, settings):
    enqueued(store, 5)
    rule = Rule()
    summary = run_batch_check(settings, deps(store, clock, lambda i: Presence(200), rule=rule))
    assert summary.finished_pass and not rule.enabled


class Response:
    def __init__(self, status):
        self.status, self.message = status, ""


class Grid:
    """A Grid client whose media-api accepts only key 'new'."""

    def __init__(self, key="old"):
        self.key = key

    def with_key(self, key):
        return Grid(key)

    def image(self, image_id):
        return Response(200 if self.key == "new" else 401)


def test_batch_check_lookup_reads_the_key_again_after_a_401():
    # Given a key rotated since the cached read
    reads = []

    def read_key(max_age):
        reads.append(max_age)
        return "old" if max_age else "new"

    lookup = media_api_lookup(Grid(), read_key)
    assert lookup(grid_id(1)).status == 200
    assert reads == [60, 0]
