"""A check-first pass on the in-memory store: batch-check sends what media-api lacks back to
batch-index as a fresh item, counts present and repaired on the pass, and the pass ends once."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from devtools.memory_passes import MemoryPasses
from devtools.testing import Rule, Scripted, Steady, Stream, grid_id, index_deps
from grid_reingest.domain.passes import MISSING_ERROR, MISSING_LABEL, Kind, Pass, Status
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.flows.batch_check import CheckDeps, run_batch_check
from grid_reingest.flows.batch_index import run_batch_index
from grid_reingest.flows.pass_end import PassEnd, end_pass_if_over, failure_groups
from grid_reingest.ports import Presence
from grid_reingest.settings import BatchCheckSettings, BatchIndexSettings, load

GRID = {"GRID_DOMAIN_ROOT": "media.example.org", "GRID_API_KEY": "key"}


@pytest.fixture
def settings():
    env = {"STATE_TABLE_NAME": "state-TEST", "CHECK_MIN_AGE_SECONDS": "0", **GRID}
    return load(BatchCheckSettings, {**env, "BREAKER_MIN_RESULTS": "10"})


@pytest.fixture
def passes(clock):
    passes = MemoryPasses()
    passes.start(Pass.start(Kind.CHECK_FIRST, "ids.txt", clock.now()))
    return passes


class Notes:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def publish(self, subject, text):
        self.sent.append((subject, text))


def check_first(store, passes, ids):
    store.put_new(ids, S.ENQUEUED, pass_id=passes.current().id, check_first=True)


def budget(clock, ms=15 * 60_000):
    """An invocation's time left, from now on the fake clock."""
    start = clock.t
    return lambda: int(ms - (clock.t - start) * 1000)


def check_deps(store, clock, lookup, passes, **extra) -> CheckDeps:
    return CheckDeps(
        store=store,
        lookup=lookup,
        pace=Steady(limit=4),
        clock=clock,
        remaining_ms=budget(clock),
        invocation=extra.pop("invocation", "check-1"),
        rule=extra.pop("rule", None),
        passes=passes,
        **extra,
    )


def test_a_check_first_item_media_api_lacks_goes_back_to_batch_index_as_fresh(
    store, clock, passes, settings
):
    # Given check-first items, one present, one missing after two failed checks
    present, missing = grid_id(1), grid_id(2)
    check_first(store, passes, [present, missing])
    with store._lock:  # an earlier invocation's failures and overload answers
        store._items[missing].attempts, store._items[missing].overloads = 2, 1
    index_rule = Rule()
    index_rule.enabled = False
    answers = {present: Presence(200), missing: Presence(404, "Not Found")}
    # When batch-check runs
    summary = run_batch_check(
        settings, check_deps(store, clock, answers.get, passes, index_rule=index_rule)
    )
    # Then the present one is verified, never to be re-projected
    kept = store.get(present)
    assert (kept.state, kept.check_first, kept.reprojected) == (S.VERIFIED, True, False)
    # and the missing one is batch-index's again, as a fresh item saying why
    back = store.get(missing)
    assert (back.state, back.state_name, back.last_error) == (
        S.NOT_STARTED,
        MISSING_LABEL,
        MISSING_ERROR,
    )
    assert (back.attempts, back.overloads, back.check_first, back.reprojected) == (
        0,
        0,
        False,
        True,
    )
    assert (back.claimed_by, back.claimed_from) == (None, None)
    # with batch-index switched on, and the present one counted on the pass
    assert index_rule.enabled and index_rule.switches == ["on"]
    assert (summary.sent_back, summary.present) == (1, 1)
    assert (passes.current().present, passes.current().repaired) == (1, 0)
    # and batch-check keeps its schedule: batch-index has work that will come back to it
    assert not summary.finished_pass


def test_a_full_pass_item_media_api_lacks_still_ends_at_7(store, clock, settings):
    # Given an item of no check-first pass
    store.put_new([grid_id(1)], S.ENQUEUED)
    # When media-api lacks it
    run_batch_check(settings, check_deps(store, clock, lambda i: Presence(404), None))
    # Then it failed, as before
    assert store.get(grid_id(1)).state is S.NOT_FOUND_IN_MEDIA_API


def test_a_repaired_item_is_counted_once_found_and_a_missing_one_after_repair_fails(
    store, clock, passes, settings
):
    # Given two items re-projected in a check-first pass, back at 3
    ids = [grid_id(1), grid_id(2)]
    check_first(store, passes, ids)
    with store._lock:
        for i in ids:
            store._items[i].check_first, store._items[i].reprojected = False, True
    answers = {ids[0]: Presence(200), ids[1]: Presence(404)}
    # When batch-check finds one and still lacks the other
    summary = run_batch_check(settings, check_deps(store, clock, answers.get, passes))
    # Then one is repaired, and the other fails at 7 (it is never sent back twice)
    assert [store.get(i).state for i in ids] == [S.VERIFIED, S.NOT_FOUND_IN_MEDIA_API]
    assert (passes.current().present, passes.current().repaired) == (0, 1)
    assert summary.repaired == 1 and summary.sent_back == 0


def test_counts_of_another_pass_are_not_added_to_the_current_one(store, clock, passes, settings):
    # Given an item armed by an older pass, checked first
    store.put_new([grid_id(1)], S.ENQUEUED, pass_id="20200101T000000Z", check_first=True)
    run_batch_check(settings, check_deps(store, clock, lambda i: Presence(200), passes))
    assert store.get(grid_id(1)).state is S.VERIFIED
    assert passes.current().present == 0


def test_racing_check_invocations_count_each_item_once(store, clock, passes, settings):
    # Given 400 check-first items, one in four missing, and four invocations at once
    ids = [grid_id(i) for i in range(400)]
    check_first(store, passes, ids)
    missing = set(ids[::4])

    def lookup(image_id):
        return Presence(404 if image_id in missing else 200)

    summaries = []

    def invoke(n):
        summaries.append(
            run_batch_check(settings, check_deps(store, clock, lookup, passes, invocation=f"w{n}"))
        )

    threads = [threading.Thread(target=invoke, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every item was decided once: 300 present, 100 back at 0, counted exactly
    counts = store.counts()
    assert (counts[S.VERIFIED], counts[S.NOT_STARTED]) == (300, 100)
    assert passes.current().present == 300 == sum(s.present for s in summaries)
    assert sum(s.sent_back for s in summaries) == 100


def index_settings():
    env = {"STATE_TABLE_NAME": "state-TEST", "THRALL_STREAM_NAME": "thrall-low", **GRID}
    return load(BatchIndexSettings, env)


def test_a_check_first_pass_end_to_end_in_memory(store, clock, passes, settings):
    # Given 30 check-first ids, 10 of which media-api lacks until they are re-projected
    ids = [grid_id(i) for i in range(30)]
    check_first(store, passes, ids)
    missing = set(ids[:10])
    projector, stream, notes = Scripted(), Stream(), Notes()
    end = PassEnd(passes, store, clock.now, lambda topic: notes)

    def lookup(image_id):
        return Presence(404 if image_id in missing and image_id not in projector.calls else 200)

    # When batch-check, then batch-index, then batch-check run
    first = run_batch_check(settings, check_deps(store, clock, lookup, passes, pass_end=end))
    indexed = run_batch_index(
        index_settings(),
        replace(
            index_deps(store, projector, stream, clock=clock, remaining=budget(clock)),
            pass_end=end,
        ),
    )
    clock.sleep(1)
    last = run_batch_check(settings, check_deps(store, clock, lookup, passes, pass_end=end))
    # Then only the missing ten were projected, and all thirty are verified
    assert sorted(projector.calls) == sorted(missing)
    assert store.counts()[S.VERIFIED] == 30
    # and the pass ended once, at the last check, with its report
    assert (first.ended_pass, indexed.ended_pass) == (None, None)
    assert last.ended_pass == passes.current().id
    ended = passes.current()
    assert ended.status is Status.FINISHED
    assert (ended.report.present, ended.report.repaired, ended.report.failed) == (20, 10, 0)
    assert ended.report.states == {6: 30}
    assert len(notes.sent) == 1 and "present in media-api: 20; repaired: 10" in notes.sent[0][1]


def test_a_pass_is_finished_exactly_once_by_racing_workers(store, clock, passes):
    # Given a running pass whose items are all final, one failed
    store.put_new([grid_id(1)], S.VERIFIED)
    store.put_new([grid_id(2)], S.UNKNOWN_ERROR)
    notes = Notes()
    end = PassEnd(passes, store, clock.now, lambda topic: notes)
    ended = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        ended.append(end_pass_if_over(end))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one of them finished it, and told the topic once
    finished = [p for p in ended if p is not None]
    assert len(finished) == 1 and len(notes.sent) == 1
    assert finished[0].report.failed == 1 and finished[0].report.states == {6: 1, 8: 1}


def test_a_pass_with_work_left_is_not_finished(store, clock, passes):
    store.put_new([grid_id(1)], S.ENQUEUED)
    assert end_pass_if_over(PassEnd(passes, store, clock.now)) is None
    assert passes.current().status is Status.RUNNING


def test_failure_groups_of_a_sample_are_scaled_to_the_whole():
    sample = [(8, f"leases: HTTP 500: image {grid_id(i)}") for i in range(30)] + [(7, None)] * 10
    groups = failure_groups(sample, failed=400)
    assert [g["count"] for g in groups] == [300, 100]
    assert groups[0]["state"] == 8 and groups[0]["reason"] == "leases: HTTP 500: image <id>"
    assert groups[0]["sampled"] == 30 and groups[0]["id"].startswith("8-")
