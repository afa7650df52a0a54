"""When batch-check asks media-api, and when a 404 is its verdict: on the in-memory store, with
time that moves only when the invocation waits."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from itertools import pairwise

import pytest

from devtools.testing import Steady, check_settings, grid_id
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.domain.thrall_state import Lag, ThrallState
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.ports import Presence

MIN_AGE = 120
FIRST_LOOK = 15
# The fake clock's readings each move on a millisecond; its monotonic time does not.
SLACK = 0.5


@pytest.fixture
def settings():
    return check_settings(
        CHECK_MIN_AGE_SECONDS=str(MIN_AGE), CHECK_FIRST_LOOK_SECONDS=str(FIRST_LOOK)
    )


class MediaApi:
    """media-api whose images arrive at set times (seconds on the clock): 404 before, 200 after."""

    def __init__(self, clock, arrives: dict[str, float]) -> None:
        self.clock, self.arrives = clock, arrives
        self.asked: list[tuple[str, float]] = []

    def __call__(self, image_id: str) -> Presence:
        now = self.clock.monotonic()
        self.asked.append((image_id, now))
        return Presence(200 if now >= self.arrives.get(image_id, math.inf) else 404)


def deps(store, clock, lookup, lag=None) -> CheckDeps:
    return CheckDeps(
        store=store,
        lookup=lookup,
        pace=Steady(limit=4),
        clock=clock,
        remaining_ms=clock.remaining(15 * 60_000),
        invocation="check-1",
        rule=None,
        thrall_lag=lambda: lag,
    )


def test_an_early_404_is_asked_again_not_a_verdict(store, clock, settings):
    # Given an image enqueued now that reaches media-api 60 s later, while batch-index has work
    image = grid_id(1)
    store.put_new([image], S.ENQUEUED)
    store.put_new([grid_id(2)], S.NOT_STARTED)
    media_api = MediaApi(clock, {image: 60})
    clock.sleep(FIRST_LOOK + 1)
    summary = run_batch_check(settings, deps(store, clock, media_api))
    # Then its first 404 was not final: it was asked again, and verified
    assert store.get(image).state is S.VERIFIED
    assert summary.not_yet >= 1
    assert [t for i, t in media_api.asked if i == image][-1] >= 60 - SLACK


def test_a_404_is_final_once_old_enough_when_the_index_is_done(store, clock, settings):
    # Given an image media-api never gets, and nothing left for batch-index
    image = grid_id(1)
    store.put_new([image], S.ENQUEUED)
    media_api = MediaApi(clock, {})
    summary = run_batch_check(settings, deps(store, clock, media_api))
    # Then one invocation waited for it to come of age, and its 404 then stood
    assert store.get(image).state is S.NOT_FOUND_IN_MEDIA_API
    times = [t for _, t in media_api.asked]
    assert times[0] >= FIRST_LOOK - SLACK and times[-1] >= MIN_AGE - SLACK
    assert summary.not_yet == len(times) - 1


def test_nothing_is_asked_while_thrall_is_stalled(store, clock, settings):
    # Given thrall judged 10 s behind, but stalled since (its lag has no bound), while
    # batch-index has work (it judges thrall again)
    ids = [grid_id(i) for i in range(3)]
    store.put_new(ids, S.ENQUEUED)
    store.put_new([grid_id(9)], S.NOT_STARTED)
    clock.sleep(3 * MIN_AGE)
    media_api = MediaApi(clock, {})
    run_batch_check(settings, deps(store, clock, media_api, Lag(10, math.inf)))
    # Then media-api was not asked, and no image was charged or judged missing
    assert media_api.asked == []
    assert {store.get(i).state for i in ids} == {S.ENQUEUED}
    assert {store.get(i).attempts for i in ids} == {0}


def test_a_stall_judged_at_the_end_of_indexing_stops_no_check_and_no_404_stands(
    store, clock, settings
):
    # Given batch-index done, its last judgement of thrall a stall no one will judge again,
    # and two old images: one media-api has, one it lacks
    there, lacking = grid_id(1), grid_id(2)
    store.put_new([there, lacking], S.ENQUEUED)
    clock.sleep(3 * MIN_AGE)
    media_api = MediaApi(clock, {there: 0})
    summary = run_batch_check(settings, deps(store, clock, media_api, Lag(10, math.inf)))
    # Then the one media-api has is verified; the other asked every 30 s, never judged
    assert store.get(there).state is S.VERIFIED
    item = store.get(lacking)
    assert item.state is S.ENQUEUED and item.attempts == 0
    asks = [t for i, t in media_api.asked if i == lacking]
    assert len(asks) > 3 and summary.not_yet == len(asks)
    assert min(b - a for a, b in pairwise(asks)) >= 30 - SLACK


def test_a_404_waits_for_thrall_to_be_shown_past_the_image(store, clock, settings):
    # Given an old image media-api lacks, and batch-index still busy: nothing shows that thrall
    # has reached its record
    image = grid_id(1)
    store.put_new([image], S.ENQUEUED)
    enqueued_at = store.get(image).changed_at
    store.put_new([grid_id(9)], S.NOT_STARTED)
    clock.sleep(MIN_AGE + 1)
    media_api = MediaApi(clock, {})
    summary = run_batch_check(settings, deps(store, clock, media_api, Lag(0, 0)))
    # Then it was asked again and again, never judged, and went back with its place kept
    item = store.get(image)
    assert item.state is S.ENQUEUED and item.attempts == 0
    assert item.changed_at == enqueued_at
    assert len(media_api.asked) > 2 and summary.not_yet == len(media_api.asked)


def enqueued_a_minute_apart(store, clock):
    """Two images enqueued a minute apart, both old enough for a verdict, while batch-index
    still has work: (the earlier, the later)."""
    lost, later = grid_id(1), grid_id(2)
    store.put_new([lost], S.ENQUEUED)
    clock.sleep(60)
    store.put_new([later], S.ENQUEUED)
    store.put_new([grid_id(9)], S.NOT_STARTED)
    clock.sleep(MIN_AGE + 1)
    return lost, later


def test_a_404_stands_once_a_later_image_arrived(store, clock, settings):
    # Given an image media-api lacks, and one enqueued a minute later that it has
    lost, later = enqueued_a_minute_apart(store, clock)
    media_api = MediaApi(clock, {later: 0})
    run_batch_check(settings, deps(store, clock, media_api, Lag(0, 0)))
    # Then thrall is past the first: its 404 is the verdict
    assert store.get(later).state is S.VERIFIED
    assert store.get(lost).state is S.NOT_FOUND_IN_MEDIA_API


class RacingMediaApi(MediaApi):
    """thrall takes `lost` and `later` together while `lost`'s call is out: that call answers
    404 (asked just before), after `later`'s 200 has been taken in; every later call, 200."""

    def __init__(self, clock, lost: str, later: str) -> None:
        super().__init__(clock, {later: 0})
        self.lost, self.later_answered = lost, threading.Event()

    def __call__(self, image_id: str) -> Presence:
        if image_id != self.lost:
            answer = super().__call__(image_id)
            self.later_answered.set()
            return answer
        if self.arrives.get(image_id) is not None:
            return super().__call__(image_id)
        self.asked.append((image_id, self.clock.monotonic()))
        self.later_answered.wait(5)
        # The worker takes the 200 in first (real time: the fake clock does not move here).
        time.sleep(0.3)
        self.arrives[image_id] = 0
        return Presence(404)


def test_a_404_asked_before_a_later_image_was_found_is_no_verdict(store, clock, settings):
    # Given an old image and one enqueued a minute later, both asked about at once: thrall
    # takes both while the first's call is out, so it answers 404 after the later one's 200
    lost, later = enqueued_a_minute_apart(store, clock)
    media_api = RacingMediaApi(clock, lost, later)
    run_batch_check(settings, deps(store, clock, media_api, Lag(0, 0)))
    # Then that 404 was no verdict (what media-api showed before the call said nothing of
    # thrall past it): asked again, the image is verified
    assert store.get(later).state is S.VERIFIED
    assert store.get(lost).state is S.VERIFIED
    assert [i for i, _ in media_api.asked].count(lost) >= 2


def test_the_first_look_waits_for_thralls_lag(store, clock, settings):
    # Given thrall 40 s behind and an image just enqueued that media-api has at once
    image = grid_id(1)
    store.put_new([image], S.ENQUEUED)
    media_api = MediaApi(clock, {image: 0})
    run_batch_check(settings, deps(store, clock, media_api, Lag(40, 40)))
    # Then it was first asked once it was FIRST_LOOK past what thrall reaches
    assert store.get(image).state is S.VERIFIED
    assert media_api.asked[0][1] >= FIRST_LOOK + 40 - SLACK


def test_the_invocation_ends_when_the_oldest_is_not_due_within_a_minute(store, clock, settings):
    # Given thrall 10 minutes behind and nothing left for batch-index
    store.put_new([grid_id(1)], S.ENQUEUED)
    media_api = MediaApi(clock, {})
    summary = run_batch_check(settings, deps(store, clock, media_api, Lag(600, 600)))
    # Then it ends at once rather than wait: the next tick comes sooner than the image is due
    assert media_api.asked == [] and summary.claimed == 0
    assert clock.monotonic() < 60


def test_oldest_change_is_the_earliest_of_a_state(store, clock):
    store.put_new([grid_id(1)], S.ENQUEUED)
    first = store.get(grid_id(1)).changed_at
    clock.sleep(30)
    store.put_new([grid_id(2)], S.ENQUEUED)
    store.put_new([grid_id(3)], S.NOT_STARTED)
    assert store.oldest_change(S.ENQUEUED).isoformat().startswith(first[:19])
    assert store.oldest_change(S.VERIFIED) is None
    assert store.oldest_change(S.NOT_STARTED) - store.oldest_change(S.ENQUEUED) >= timedelta(
        seconds=30
    )


def test_thralls_lag_grows_with_time_since_it_was_judged_and_has_no_bound_while_stalled():
    state = ThrallState(age_ms=20_000, age_at=1000.0)
    assert state.lag(1030.0, fresh_for=300) == Lag(20, 50)
    assert state.lag(1400.0, fresh_for=300) is None
    state.stalled_at = 1010.0
    assert state.lag(1030.0, fresh_for=300) == Lag(20, math.inf)


def test_a_failed_image_is_asked_again_only_a_while_later(store, clock, settings):
    # Given twenty old images media-api has, one of which fails once with a 500
    ids = [grid_id(i) for i in range(20)]
    store.put_new(ids, S.ENQUEUED)
    clock.sleep(MIN_AGE)
    answers = MediaApi(clock, dict.fromkeys(ids, 0))
    flaky = ids[7]

    def media_api(image_id):
        answer = answers(image_id)
        first = [t for i, t in answers.asked if i == flaky] == [clock.monotonic()]
        return Presence(500, "boom") if image_id == flaky and first else answer

    run_batch_check(settings, deps(store, clock, media_api))
    # Then one invocation verified it, asking again once MIN_AGE had passed, not at once
    asks = [t for i, t in answers.asked if i == flaky]
    assert store.get(flaky).state is S.VERIFIED and store.get(flaky).attempts == 1
    assert len(asks) == 2 and asks[1] - asks[0] >= MIN_AGE - SLACK
