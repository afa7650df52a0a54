"""batch-index's flow on the in-memory store: continuous, paced, pausable, and safe."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace

import pytest

from devtools.memory_control import MemoryControl
from devtools.memory_store import MemoryStore
from devtools.testing import (
    FakeClock,
    Rule,
    Scripted,
    Steady,
    Stream,
    grid_id,
    index_deps,
    ready,
)
from grid_reingest import names
from grid_reingest.domain.claims import Source
from grid_reingest.domain.outcome import Failed, NotFound, Ready, TooBig
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.domain.systemic import Rules
from grid_reingest.flows.batch_index import (
    REFUSALS_BEFORE_STOP,
    RecordMismatch,
    StreamRefused,
    run_batch_index,
)
from grid_reingest.flows.invocation import RecordFailed, SystemicFailure
from grid_reingest.flows.probes import ProjectionProbe
from grid_reingest.flows.turned_away import STREAM_RESENDS
from grid_reingest.ports import PaceDecision, PartialApply, PublishResult
from grid_reingest.settings import BatchIndexSettings, load


@pytest.fixture
def settings():
    return load(
        BatchIndexSettings,
        {
            "STATE_TABLE_NAME": "state-TEST",
            "THRALL_STREAM_NAME": "thrall-TEST",
            "PROJECTION_FUNCTION_NAME": "image-projection-TEST",
            "MAX_IN_FLIGHT": "16",
            "MAX_ATTEMPTS": "3",
            "BREAKER_MIN_RESULTS": "10",
        },
    )


def states(store, ids):
    return [store.get(i).state for i in ids]


def test_batch_index_records_every_outcome_on_its_own_item(store, clock, settings):
    # Given one image of each kind
    ids = [grid_id(i) for i in range(6)]
    store.put_new(ids)
    script = {
        ids[1]: NotFound(ids[1]),
        ids[2]: TooBig(ids[2], 2_000_000, 1_048_576),
        ids[3]: Failed(ids[3], "image-loader", 500, "boom", "CommandException", known=True),
        ids[4]: Failed(ids[4], "leases", 500, "Internal Server Error"),
    }
    stream = Stream()
    # When
    summary = run_batch_index(settings, index_deps(store, Scripted(script), stream, clock=clock))
    # Then
    assert states(store, ids)[:5] == [
        S.ENQUEUED,
        S.NOT_FOUND,
        S.TOO_BIG,
        S.KNOWN_ERROR,
        S.NOT_STARTED,
    ]
    assert store.get(ids[4]).attempts == 1
    assert store.get(ids[4]).state_name == "reset because of failure"
    # Its retry is claimed again in the same invocation, after the rest (oldest change first)
    assert summary.claimed >= 6
    assert sorted(stream.counts()) == sorted([ids[0], ids[5]])


def test_four_overlapping_invocations_publish_each_image_exactly_once(settings):
    # Given 2,000 ids and four invocations running at once on a store whose
    # conditional writes are atomic
    clock = FakeClock()
    store = MemoryStore(clock=clock.now)
    ids = [grid_id(i) for i in range(2000)]
    store.put_new(ids)
    projector, stream = Scripted(), Stream()
    start = threading.Barrier(4)
    errors = []

    def invocation(n: int) -> None:
        start.wait()
        try:
            run_batch_index(
                settings,
                index_deps(store, projector, stream, clock=clock, invocation=f"invocation-{n}"),
            )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=invocation, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then each image was projected once, published once, and is enqueued
    assert not errors
    assert set(projector.calls.values()) == {1} and len(projector.calls) == 2000
    assert len(stream.counts()) == 2000 and set(stream.counts().values()) == {1}
    assert store.counts()[S.ENQUEUED] == 2000


def test_batch_index_keeps_working_until_nothing_is_left(store, clock, settings):
    # Given far more images than the old batch (500) and a pace allowing 8 in flight
    ids = [grid_id(i) for i in range(1200)]
    store.put_new(ids)
    projector, pace = Scripted(), Steady(limit=8)
    # When one invocation runs
    summary = run_batch_index(
        settings, index_deps(store, projector, Stream(), clock=clock, pace=pace)
    )
    # Then it did them all, never more than 8 at once, and told the pace what finished
    assert store.counts()[S.ENQUEUED] == 1200
    assert projector.most_in_flight <= 8
    assert pace.seen.finished == 1200
    assert len(pace.seen.latencies_ms) == 1200
    assert summary.limit == 8
    assert summary.metric_counts()[names.CONTROL_LIMIT] == 8


def test_batch_index_starts_at_most_the_rate_a_minute(store, clock, settings):
    # Given a rate ceiling of 60 a minute and a budget of two minutes past the margin
    store.put_new(grid_id(i) for i in range(500))
    pace = Steady(script=lambda n: PaceDecision(8, 60.0, "rate"))
    budget = (settings.stop_margin_seconds + 120) * 1000
    summary = run_batch_index(
        settings,
        index_deps(
            store, Scripted(), Stream(), clock=clock, pace=pace, remaining=clock.remaining(budget)
        ),
    )
    # Then about 120 started, no more; what was claimed and not started went back
    started = summary.claimed - summary.released
    assert 110 <= started <= 121
    assert summary.stopped_because == "invocation running out of time"
    assert store.counts()[S.IN_PROGRESS] == 0


def test_batch_index_under_a_rate_claims_a_refresh_s_worth_a_call(store, clock, settings):
    # Given a rate ceiling of 240 a minute (60 in a 15 s refresh) and a claim store that
    # counts its calls
    store.put_new(grid_id(i) for i in range(600))
    calls: list[int] = []
    claim = store.claim

    def counted(sources, to_state, limit, invocation):
        calls.append(limit)
        return claim(sources, to_state, limit, invocation)

    store.claim = counted
    pace = Steady(script=lambda n: PaceDecision(8, 240.0, "rate"))
    # When one invocation works through them
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, pace=pace)
    )
    # Then each claim call asked for a refresh's worth (not one image), so the 600 images
    # took a tenth as many calls as there were images (each call reads every index shard)
    assert store.counts()[S.ENQUEUED] == 600
    assert set(calls) == {60}
    assert len(calls) <= 600 // 60 + 2
    assert summary.claimed == 600


def test_batch_index_waits_out_back_pressure_then_works(store, clock, settings):
    # Given a pace that says "nothing" for its first five answers
    store.put_new(grid_id(i) for i in range(20))
    pace = Steady(script=lambda n: PaceDecision(0 if n <= 5 else 4, None, "back-pressure"))
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, pace=pace)
    )
    # Then it slept on its clock, asked again, and did the work in the same invocation
    assert clock.t >= 5
    assert store.counts()[S.ENQUEUED] == 20
    assert summary.idle_reason is None


def test_batch_index_ends_an_idle_invocation_after_one_refresh(store, clock, settings):
    # Given back-pressure that does not lift
    store.put_new(grid_id(i) for i in range(20))
    pace = Steady(script=lambda n: PaceDecision(0, None, "back-pressure: iterator age 90 s > 60 s"))
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, pace=pace)
    )
    # Then it gave up after about one refresh, not after the whole budget
    assert settings.loop.refresh_seconds <= clock.t <= settings.loop.refresh_seconds + 2
    assert summary.claimed == 0
    assert summary.skipped == "back-pressure: iterator age 90 s > 60 s"
    assert summary.metric_counts()[names.BACKPRESSURE_SKIPS] == 1
    assert store.counts()[S.NOT_STARTED] == 20


def test_batch_index_waits_for_a_stop_that_ends_before_the_next_keep_alive(store, clock, settings):
    # Given a pace that stops work for 40 s (thrall working through a backlog), then goes on
    store.put_new(grid_id(i) for i in range(20))

    def script(n):
        resume_in = 40.0 - clock.t
        if resume_in > 0:
            return PaceDecision(0, None, "thrall behind", resume_in_seconds=resume_in)
        return PaceDecision(4, None, "go")

    pace = Steady(script=script)
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, pace=pace)
    )
    # Then the invocation waited past one refresh instead of ending, and did the work
    assert clock.t >= 40
    assert store.counts()[S.ENQUEUED] == 20
    assert summary.idle_reason is None


def test_batch_index_ends_when_the_stop_outlasts_the_next_keep_alive(store, clock, settings):
    # Given a pace that stops work for five minutes
    store.put_new(grid_id(i) for i in range(20))
    pace = Steady(script=lambda n: PaceDecision(0, None, "thrall behind", resume_in_seconds=300.0))
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, pace=pace)
    )
    # Then it ended after one refresh: the next keep-alive comes back sooner
    assert settings.loop.refresh_seconds <= clock.t <= settings.loop.refresh_seconds + 2
    assert summary.claimed == 0


def test_batch_index_pause_stops_claiming_and_finishes_what_it_holds(store, clock, settings):
    # Given a pass paused by the operator while 4 images are in flight
    ids = [grid_id(i) for i in range(50)]
    store.put_new(ids)
    paused = threading.Event()
    release = threading.Event()

    def gate(image_id):
        paused.set()
        release.wait(5)

    def pace_script(n):
        if paused.is_set():
            release.set()
            return PaceDecision(0, None, "paused by the operator", paused=True)
        return PaceDecision(4, None, "steady")

    projector = Scripted(gate=gate)
    summary = run_batch_index(
        settings,
        index_deps(store, projector, Stream(), clock=clock, pace=Steady(script=pace_script)),
    )
    # Then what had started finished and was recorded; nothing else was claimed or is held
    counts = store.counts()
    assert summary.stopped_because == "paused by the operator" and summary.paused
    assert counts[S.ENQUEUED] == len(projector.calls) <= 4
    assert counts[S.IN_PROGRESS] == 0
    assert counts[S.NOT_STARTED] == 50 - counts[S.ENQUEUED]
    assert {store.get(i).attempts for i in ids} == {0}
    assert summary.metric_counts()[names.PAUSED] == 1


class LateStore(MemoryStore):
    """A store that takes a while to answer: the budget is gone once a wide claim returns."""

    def __init__(self, clock) -> None:
        super().__init__(clock=clock)
        self.late = False

    def claim(self, sources, to_state, limit, invocation):
        claims = super().claim(sources, to_state, limit, invocation)
        self.late = self.late or len(claims) > 1
        return claims


def test_batch_index_near_its_deadline_hands_back_unstarted_claims(clock, settings):
    # Given a budget that is gone by the time a wide claim comes back
    store = LateStore(clock.now)
    ids = [grid_id(i) for i in range(30)]
    store.put_new(ids)
    margin_ms = settings.stop_margin_seconds * 1000
    projector = Scripted()
    summary = run_batch_index(
        settings,
        index_deps(
            store,
            projector,
            Stream(),
            clock=clock,
            pace=Steady(limit=8),
            remaining=lambda: margin_ms - 1 if store.late else margin_ms + 60_000,
        ),
    )
    # Then the claims it did not start went back untouched, and nothing is held
    counts = store.counts()
    assert summary.stopped_because == "invocation running out of time"
    assert summary.claimed > len(projector.calls)
    assert summary.released == summary.claimed - len(projector.calls)
    assert counts[S.IN_PROGRESS] == 0
    assert counts[S.ENQUEUED] == len(projector.calls)
    assert {store.get(i).attempts for i in ids} == {0}


def refuse(records):
    return PublishResult(
        unsent=[i for i, _ in records],
        call_error="kinesis: KMSAccessDeniedException: no grant",
        calls=1,
        refused=True,
    )


def test_batch_index_refused_stream_gives_claims_back_and_fails_loudly(store, clock, settings):
    # Given a stream whose key refuses every call
    ids = [grid_id(i) for i in range(40)]
    store.put_new(ids)
    projector, rule = Scripted(), Rule()
    deps = index_deps(
        store, projector, Stream(answer=refuse), clock=clock, pace=Steady(16), rule=rule
    )
    # When
    with pytest.raises(StreamRefused) as caught:
        run_batch_index(settings, deps)
    # Then one image was projected to find out, every claim went back with no attempt,
    # the refusal is counted, and the schedule is still on (one refusal)
    summary = caught.value.summary
    assert len(projector.calls) == 1
    assert store.counts()[S.NOT_STARTED] == 40
    assert {store.get(i).attempts for i in ids} == {0}
    assert summary.metric_counts()[names.KINESIS_REFUSED] == 1
    assert rule.enabled


def test_batch_index_switches_its_rule_off_after_repeated_refusals(store, clock, settings):
    store.put_new(grid_id(i) for i in range(5))
    control, rule = MemoryControl(), Rule()
    for n in range(1, REFUSALS_BEFORE_STOP + 1):
        deps = index_deps(
            store, Scripted(), Stream(answer=refuse), clock=clock, rule=rule, control=control
        )
        with pytest.raises(StreamRefused):
            run_batch_index(settings, deps)
        assert rule.enabled == (n < REFUSALS_BEFORE_STOP)
    # A later invocation that publishes resets the count
    rule.enabled = True
    run_batch_index(settings, index_deps(store, Scripted(), Stream(), clock=clock, control=control))
    assert control.refused_runs == 0


class FlakyWrites(MemoryStore):
    """A store whose first `fail` apply() calls write half the transitions, then fail."""

    def __init__(self, clock, fail: int) -> None:
        super().__init__(clock=clock)
        self.fail = fail

    def apply(self, transitions):
        transitions = list(transitions)
        if self.fail and any(t.new == S.ENQUEUED for t in transitions):
            self.fail -= 1
            half = len(transitions) // 2
            done = super().apply(transitions[:half])
            raise PartialApply(done + [None] * (len(transitions) - half), OSError("timeout"))
        return super().apply(transitions)


def test_batch_index_retries_the_state_write_rather_than_releasing_published_images(
    clock, settings
):
    # Given writes of outcomes that fail twice after the stream accepted the records
    store = FlakyWrites(clock.now, fail=2)
    ids = [grid_id(i) for i in range(30)]
    store.put_new(ids)
    stream = Stream()
    summary = run_batch_index(settings, index_deps(store, Scripted(), stream, clock=clock))
    # Then every image is enqueued, published once, nothing released or lost
    assert store.counts()[S.ENQUEUED] == 30
    assert set(stream.counts().values()) == {1} and len(stream.counts()) == 30
    assert summary.released == 0 and summary.lost_claims == 0


def test_batch_index_never_releases_published_images_it_could_not_record(clock, settings):
    # Given writes that keep failing after the stream accepted the records
    store = FlakyWrites(clock.now, fail=1000)
    ids = [grid_id(i) for i in range(10)]
    store.put_new(ids)
    stream = Stream()
    with pytest.raises(RecordFailed):
        run_batch_index(settings, index_deps(store, Scripted(), stream, clock=clock))
    # Then no published image went back to 0 (to be published again at once): it stays
    # held until its lease runs out
    assert stream.counts()
    assert {store.get(i).state for i in stream.counts()} == {S.IN_PROGRESS}


def test_batch_index_repeats_a_failed_write_only_while_a_whole_try_fits(clock, settings):
    # Given writes that keep failing, and an invocation whose time left is within one record
    # budget of the end after its first try (a try can take the whole budget in botocore's
    # retries)
    store = FlakyWrites(clock.now, fail=1000)
    store.put_new([grid_id(1)])
    budget_ms = settings.loop.record_budget_seconds * 1000

    def remaining() -> int:
        return 10**7 if store.fail == 1000 else budget_ms - 1

    # When
    with pytest.raises(RecordFailed):
        run_batch_index(
            settings, index_deps(store, Scripted(), Stream(), clock=clock, remaining=remaining)
        )
    # Then the write was not tried again: a try that could not end is never started
    assert 1000 - store.fail == 1


def test_batch_index_raises_when_a_record_is_keyed_by_another_image(store, clock, settings):
    ids = [grid_id(1), grid_id(2)]
    store.put_new(ids)
    stream = Stream()
    with pytest.raises(RecordMismatch):
        run_batch_index(
            settings, index_deps(store, Scripted({ids[0]: ready(ids[1])}), stream, clock=clock)
        )
    assert stream.records == []
    assert store.counts()[S.IN_PROGRESS] == 0


def test_batch_index_reclaim_after_lease_expiry_counts_an_attempt(store, clock, settings):
    # Given images held by a worker that died, one of them on its last attempt
    ids = [grid_id(i) for i in range(3)]
    store.put_new(ids)
    store.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 3, "dead")
    store._items[ids[2]].attempts = settings.loop.max_attempts - 1
    clock.sleep(settings.loop.lease_seconds + 1)
    # When a worker runs after the lease
    projector = Scripted()
    summary = run_batch_index(
        settings,
        index_deps(store, projector, Stream(), clock=clock, remaining=lambda: 15 * 60_000),
    )
    # Then each reclaim counted an attempt, and the spent one went to 8 without projecting
    assert (summary.reclaimed, summary.expired_claims) == (3, 3)
    assert [store.get(i).state for i in ids] == [S.ENQUEUED, S.ENQUEUED, S.UNKNOWN_ERROR]
    assert store.get(ids[2]).last_error == "claim expired"
    assert store.get(ids[2]).attempts == settings.loop.max_attempts
    assert summary.metric_counts()[names.EXPIRED_CLAIMS] == 3
    assert ids[2] not in projector.calls


def test_batch_index_overload_across_many_images_costs_no_attempt(store, clock, settings):
    # Given the Lambda service throttling every projection
    ids = [grid_id(i) for i in range(60)]
    store.put_new(ids)
    throttled = {
        i: Failed(i, "image-projection", 429, "invoke failed: TooManyRequestsException")
        for i in ids
    }
    pace = Steady(limit=8)
    # When an invocation runs, it fails loudly
    with pytest.raises(SystemicFailure, match="image-projection overloaded") as failed:
        run_batch_index(
            settings, index_deps(store, Scripted(throttled), Stream(), clock=clock, pace=pace)
        )
    summary = failed.value.summary
    # Then no image was charged: every claim went back untouched, the invocation stopped, and
    # the pace heard about it
    assert sum(store.get(i).attempts for i in ids) == 0
    assert {store.get(i).overloads for i in ids} == {0}
    assert summary.released == summary.claimed
    assert summary.infra_released == summary.outcomes["failed"] > 0
    assert pace.seen.overloaded == summary.overloaded > 0
    assert summary.metric_counts()[names.INFRA_RELEASED] == summary.infra_released
    assert summary.metric_counts()[names.OVERLOAD] == summary.overloaded
    assert summary.metric_counts()[names.SYSTEMIC_FAILURES] == 1
    assert store.counts()[S.IN_PROGRESS] == 0


def test_batch_index_a_moment_of_throttles_is_the_pace_s_not_a_failed_invocation(
    store, clock, settings
):
    # Given the Lambda service throttling the first 15 projections (a limit shared out anew
    # while another invocation's images still ran), and then none: throttles come back at
    # once, successes take their time, so for a moment they are most of the latest answers
    ids = [grid_id(i) for i in range(60)]
    store.put_new(ids)
    lock, calls = threading.Lock(), []

    def answer(image_id):
        def first_throttled():
            with lock:
                calls.append(image_id)
                throttled = len(calls) <= 15
            if throttled:
                return Failed(image_id, "image-projection", 429, "TooManyRequestsException")
            return ready(image_id)

        return first_throttled

    projector = Scripted({i: answer(i) for i in ids})
    # When an invocation runs
    summary = run_batch_index(settings, index_deps(store, projector, Stream(), clock=clock))
    # Then it does not stop as the system's failure (no alarm): the throttles cost no attempt
    assert summary.systemic is None
    assert summary.overloaded == 15
    assert sum(store.get(i).attempts for i in ids) == 0


def test_batch_index_throttles_still_most_of_the_answers_a_minute_on_stop_the_invocation(
    store, clock, settings
):
    # Given the Lambda service throttling every projection, each answer a second apart
    ids = [grid_id(i) for i in range(300)]
    store.put_new(ids)

    def throttled(image_id):
        def answer():
            clock.sleep(1.0)
            return Failed(image_id, "image-projection", 429, "TooManyRequestsException")

        return answer

    projector = Scripted({i: throttled(i) for i in ids})
    # When an invocation runs
    with pytest.raises(SystemicFailure, match="image-projection overloaded"):
        run_batch_index(settings, index_deps(store, projector, Stream(), clock=clock))
    # Then it stopped as the system's failure about a minute in, long before its images ran out
    assert sum(projector.calls.values()) < 150
    assert sum(store.get(i).attempts for i in ids) == 0


def test_batch_index_a_failed_projection_s_time_is_not_the_grid_s_latency(store, clock, settings):
    # Given a loader answering 500 at once for a third of the images (an error burst, no
    # latency warning first), and taking its time over the rest
    ids = [grid_id(i) for i in range(30)]
    store.put_new(ids)
    failing = set(ids[::3])

    def answer(image_id):
        def project():
            if image_id in failing:
                return Failed(image_id, "image-loader", 500, "Internal Server Error")
            clock.sleep(2.0)
            return ready(image_id)

        return project

    pace, projector = Steady(limit=4), Scripted({i: answer(i) for i in ids})
    deps = index_deps(store, projector, Stream(), clock=clock, pace=pace)
    # When an invocation runs (it may stop: 500s are the system's once most of the answers)
    with contextlib.suppress(SystemicFailure):
        run_batch_index(settings, deps)
    # Then the pace heard of every finished image, but only the served ones' times: the
    # quick failures would read the Grid quicker than it is (a baseline too low, a queue
    # that is not there)
    failed = sum(projector.calls[i] for i in failing)
    assert failed > 0 and pace.seen.finished == sum(projector.calls.values())
    assert len(pace.seen.latencies_ms) == pace.seen.finished - failed > 0
    assert min(pace.seen.latencies_ms) >= 2_000.0


def test_batch_index_an_image_failing_alone_still_reaches_8(store, clock, settings):
    # Given one image the loader always answers 503 for, among many that succeed
    ids = [grid_id(i) for i in range(200)]
    store.put_new(ids)
    lone = ids[100]
    projector = Scripted({lone: Failed(lone, "image-loader", 503, "Service Unavailable")})
    # When invocations run until nothing is left
    runs = 0
    while store.has_any([S.NOT_STARTED]) and runs < 20:
        run_batch_index(settings, index_deps(store, projector, Stream(), clock=clock))
        runs += 1
    # Then its own overload answers cost an attempt every third time, and it stopped at 8:
    # the pass ends
    assert store.get(lone).state == S.UNKNOWN_ERROR
    assert store.get(lone).attempts == settings.loop.max_attempts
    assert runs == settings.loop.max_attempts * Rules().overloads_per_attempt
    assert store.counts()[S.ENQUEUED] == 199


def test_batch_index_throughput_rejections_across_the_stream_cost_no_attempt(
    store, clock, settings
):
    # Given a stream turning away every record for its throughput (after its own retries)
    ids = [grid_id(i) for i in range(40)]
    store.put_new(ids)

    def hot(records):
        keys = [i for i, _ in records]
        return PublishResult(
            rejected={i: "ProvisionedThroughputExceededException: slow down" for i in keys},
            overloaded=keys,
            calls=6,
        )

    # When an invocation runs, it stops once the stream refused most of the window's
    # records, and fails loudly (a hot stream costs no more projections than that)
    with pytest.raises(SystemicFailure, match="kinesis overloaded") as failed:
        run_batch_index(settings, index_deps(store, Scripted(), Stream(answer=hot), clock=clock))
    summary = failed.value.summary
    # Then nobody was charged for it
    assert summary.overloaded > 0
    assert sum(store.get(i).attempts for i in ids) == 0
    assert store.counts()[S.IN_PROGRESS] == 0


def turning_away(image_id, times):
    """A stream answer that turns `image_id`'s record away for throughput its first `times`
    offers (every offer, when None) and takes every other record."""
    offers = []

    def answer(records):
        if image_id not in dict(records):
            return None
        offers.append(image_id)
        if times is not None and len(offers) > times:
            return None
        taken = [i for i, _ in records if i != image_id]
        return PublishResult(
            accepted=taken,
            rejected={image_id: "ProvisionedThroughputExceededException: Rate exceeded"},
            overloaded=[image_id],
            calls=6,
            positions=[("shardId-000000000000", n) for n, _ in enumerate(taken)],
        )

    return answer, offers


def test_batch_index_a_record_turned_away_for_throughput_goes_again_unprojected(
    store, clock, settings
):
    # Given a stream whose busy seconds turn one record away twice (after its own rounds)
    ids = [grid_id(i) for i in range(30)]
    store.put_new(ids)
    answer, offers = turning_away(ids[7], times=2)
    projector, stream = Scripted(), Stream(answer=answer)
    # When one invocation runs
    run_batch_index(settings, index_deps(store, projector, stream, clock=clock))
    # Then the kept record went again with later calls and got in: projected once, no
    # attempt, nothing counted against it
    assert len(offers) == 3
    assert projector.calls[ids[7]] == 1
    item = store.get(ids[7])
    assert (item.state, item.attempts, item.overloads) == (S.ENQUEUED, 0, 0)
    assert store.counts()[S.ENQUEUED] == 30


def one_turned_away(store, record_bytes):
    """30 images in the store, the fourth with a record of `record_bytes` that the stream
    always turns away: (its id, the stream's answer, its offers, the projector)."""
    ids = [grid_id(i) for i in range(30)]
    store.put_new(ids)
    lone = ids[3]
    answer, offers = turning_away(lone, times=None)
    record = b"\x00" + b"r" * (record_bytes - 1)
    return lone, answer, offers, Scripted({lone: Ready(lone, record, record_bytes)})


def test_batch_index_a_record_no_shard_second_takes_ends_at_8_an_attempt_an_invocation(
    store, clock, settings
):
    # Given a stream that takes every record but one, which it always turns away for
    # throughput (a record near 1 MiB on a shard other producers keep busy)
    lone, answer, offers, projector = one_turned_away(store, record_bytes=1_000_000)
    # When invocations run until nothing is left
    runs = 0
    while store.has_any([S.NOT_STARTED]) and runs < 10:
        before = store.get(lone).attempts
        run_batch_index(settings, index_deps(store, projector, Stream(answer=answer), clock=clock))
        runs += 1
        # Then each invocation offered it again STREAM_RESENDS times before judging it,
        # waiting for those rather than ending, and charged it one attempt (a record of
        # over half a shard's second: its size, not the stream)
        assert len(offers) == runs * (1 + STREAM_RESENDS)
        assert store.get(lone).attempts - before == 1
    # and after its attempts it is at 8, with the stream's reason: the pass ends
    item = store.get(lone)
    assert runs == projector.calls[lone] == settings.loop.max_attempts
    assert item.state == S.UNKNOWN_ERROR
    assert "ProvisionedThroughputExceeded" in (item.last_error or "")
    assert store.counts()[S.ENQUEUED] == 29


def large_among_many(store, times):
    """1,000 images of 40 kB records (an invocation's calls fill a shard's second), the fourth
    with a 700 kB record the stream turns away its first `times` offers (None: always):
    (its id, the stream's answer, its offers, the projector)."""
    ids = [grid_id(i) for i in range(1000)]
    store.put_new(ids)
    lone = ids[3]
    answer, offers = turning_away(lone, times=times)
    script = {i: Ready(i, b"\x00" + b"o" * 40_000, 40_001) for i in ids}
    script[lone] = Ready(lone, b"\x00" + b"r" * 699_999, 700_000)
    return lone, answer, offers, Scripted(script)


def test_batch_index_a_large_record_turned_away_while_the_invocation_fills_the_stream_goes_alone(
    store, clock, settings
):
    # Given an invocation whose own records fill more than a shard's second in every call,
    # and a stream turning one large record away through all its resends, then taking it
    lone, answer, offers, projector = large_among_many(store, times=1 + STREAM_RESENDS)
    carried = []  # how many records each call offering it carried

    def counting(records):
        if lone in dict(records):
            carried.append(len(records))
        return answer(records)

    # When one invocation runs
    run_batch_index(settings, index_deps(store, projector, Stream(counting), clock=clock))
    # Then it went once more in a call of its own, and got in: projected once, uncharged
    item = store.get(lone)
    assert (item.state, item.attempts, projector.calls[lone]) == (S.ENQUEUED, 0, 1)
    assert len(offers) == 2 + STREAM_RESENDS
    assert carried[-1] == 1 and max(carried) > 1
    assert store.counts()[S.ENQUEUED] == 1000


def test_batch_index_a_large_record_turned_away_in_its_quiet_second_is_its_own(
    store, clock, settings
):
    # Given the same invocation, and a stream that never takes the large record
    lone, answer, offers, projector = large_among_many(store, times=None)
    # When one invocation runs
    run_batch_index(settings, index_deps(store, projector, Stream(answer=answer), clock=clock))
    # Then, turned away alone in a quiet second too, it is charged an attempt (the other
    # producers fill its shard), and the others are in
    item = store.get(lone)
    assert (item.state, item.attempts) == (S.NOT_STARTED, 1)
    assert len(offers) == 2 + STREAM_RESENDS
    assert store.counts()[S.ENQUEUED] == 999


def test_batch_index_the_last_flush_resends_only_while_the_writes_after_still_fit(
    store, clock, settings
):
    # Given a record the stream always turns away, and an invocation whose time runs short
    # once its last flush has waited to send it again
    lone, answer, offers, projector = one_turned_away(store, record_bytes=1_000_000)
    budget_ms = settings.loop.record_budget_seconds * 1000

    def remaining():
        return 15 * 60 * 1000 if clock.t < 0.5 else budget_ms

    # When the invocation runs
    run_batch_index(
        settings,
        index_deps(store, projector, Stream(answer=answer), clock=clock, remaining=remaining),
    )
    # Then it stopped resending, and gave the record back unjudged: no attempt
    assert len(offers) == 2
    item = store.get(lone)
    assert (item.state, item.attempts) == (S.NOT_STARTED, 0)
    assert store.counts()[S.ENQUEUED] == 29


def test_batch_index_a_small_record_always_turned_away_is_the_streams_failure(
    store, clock, settings
):
    # Given a stream that takes every record but one small one, which it always turns away
    # for throughput (its shard is saturated by other producers)
    lone, answer, offers, projector = one_turned_away(store, record_bytes=60_000)
    # When invocations run (those with nothing else to send fail loudly: the stream's fault)
    for _ in range(3):
        with contextlib.suppress(SystemicFailure):
            run_batch_index(
                settings, index_deps(store, projector, Stream(answer=answer), clock=clock)
            )
    # Then it was offered again and again, and never charged: back at 0, waiting
    item = store.get(lone)
    assert len(offers) == 3 * (1 + STREAM_RESENDS)
    assert (item.state, item.attempts) == (S.NOT_STARTED, 0)
    assert store.counts()[S.ENQUEUED] == 29


def test_batch_index_self_disable_re_enables_when_work_appeared(store, clock, settings):
    # Given an empty pass, and an operator uploading and starting just as the worker
    # switches its rule off
    rule = Rule(on_disable=lambda: store.put_new([grid_id(7)]))
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, rule=rule)
    )
    # Then the worker looked again and switched its rule back on
    assert rule.switches == ["off", "on"] and rule.enabled
    assert not summary.finished_pass and summary.reenabled


def test_batch_index_switches_its_rule_off_when_the_pass_is_done(store, clock, settings):
    store.put_new(grid_id(i) for i in range(10))
    rule = Rule()
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, rule=rule)
    )
    assert summary.finished_pass and not rule.enabled
    assert summary.metric_counts()[names.COMPLETED] == 1


def test_batch_index_items_held_by_a_live_worker_keep_the_rule_on(store, clock, settings):
    store.put_new([grid_id(1)])
    store.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 1, "alive")
    rule = Rule()
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, rule=rule)
    )
    assert not summary.finished_pass and rule.enabled


def test_batch_index_dry_run_publishes_nothing_and_puts_every_id_back(store, clock, settings):
    ids = [grid_id(i) for i in range(4)]
    store.put_new(ids)
    script = {ids[1]: NotFound(ids[1]), ids[2]: Failed(ids[2], "leases", 500, "x")}
    stream, rule = Stream(), Rule()
    summary = run_batch_index(
        replace(settings, dry_run=True),
        index_deps(store, Scripted(script), stream, clock=clock, rule=rule),
    )
    assert stream.records == []
    assert summary.would == {3: 2, 2: 1, 0: 1}
    assert [(store.get(i).state, store.get(i).attempts) for i in ids] == [(S.NOT_STARTED, 0)] * 4
    assert rule.enabled


def test_batch_index_a_service_down_for_every_image_stops_the_invocation_at_no_cost(
    store, clock, settings
):
    # Given a service failing every image (not an overload answer)
    ids = [grid_id(i) for i in range(100)]
    store.put_new(ids)
    down = {i: Failed(i, "cropper", 500, "crash") for i in ids}
    # When an invocation runs, with no probe (the window alone judges)
    with pytest.raises(SystemicFailure, match="cropper server error") as failed:
        run_batch_index(settings, index_deps(store, Scripted(down), Stream(), clock=clock))
    summary = failed.value.summary
    # Then it stopped starting images, and gave every claim back with no attempt
    assert summary.claimed < 100
    assert store.counts()[S.IN_PROGRESS] == 0
    assert {store.get(i).attempts for i in ids} == {0}
    assert summary.systemic is not None and summary.failures == 0


def test_batch_index_does_not_start_with_too_little_time(store, clock, settings):
    store.put_new([grid_id(1)])
    summary = run_batch_index(
        settings, index_deps(store, Scripted(), Stream(), clock=clock, remaining=lambda: 1000)
    )
    assert summary.skipped == "too little time left to start"
    assert store.counts()[S.NOT_STARTED] == 1


def test_batch_index_a_projector_that_raises_fails_only_its_image(store, clock, settings):
    ids = [grid_id(i) for i in range(3)]
    store.put_new(ids)

    def explode(image_id):
        if image_id == ids[1]:
            raise RuntimeError("unexpected")

    run_batch_index(settings, index_deps(store, Scripted(gate=explode), Stream(), clock=clock))
    assert store.get(ids[1]).attempts == 1
    assert "RuntimeError: unexpected" in store.get(ids[1]).last_error
    assert [store.get(i).state for i in (ids[0], ids[2])] == [S.ENQUEUED, S.ENQUEUED]


def test_batch_index_ready_records_not_for_dry_run_are_ready(store, clock, settings):
    assert isinstance(ready(grid_id(1)), Ready)


def test_batch_index_a_tail_of_images_failing_alone_ends_the_pass(store, clock, settings):
    # Given the end of a pass: 175 images enqueued, and 25 left that the usage service
    # answers 503 for every time (a long history timing out) — all that is left to fail
    done = [grid_id(i) for i in range(175)]
    store.put_new(done, state=S.ENQUEUED)
    tail = [grid_id(1000 + i) for i in range(25)]
    store.put_new(tail)
    projector = Scripted({i: Failed(i, "usage", 503, "Service Unavailable") for i in tail})
    # When invocations run, each probing the usage service with an image it served
    runs = 0
    while store.has_any([S.NOT_STARTED, S.IN_PROGRESS]) and runs < 30:
        deps = index_deps(store, projector, Stream(), clock=clock, probe=ProjectionProbe(projector))
        run_batch_index(settings, deps)
        runs += 1
    # Then each of them spent its attempts and stopped at 8: the pass ended, in as many
    # invocations as their own overload answers take
    assert {store.get(i).state for i in tail} == {S.UNKNOWN_ERROR}
    assert {store.get(i).attempts for i in tail} == {settings.loop.max_attempts}
    assert runs == settings.loop.max_attempts * Rules().overloads_per_attempt


def test_batch_index_a_service_down_at_the_tail_costs_nothing(store, clock, settings):
    # Given the same tail, but the usage service is down: a probe of a done image fails too
    done = [grid_id(i) for i in range(175)]
    store.put_new(done, state=S.ENQUEUED)
    tail = [grid_id(1000 + i) for i in range(25)]
    store.put_new(tail)
    down = Scripted({i: Failed(i, "usage", None, "no response") for i in [*tail, *done]})
    # When invocations run
    for _ in range(5):
        with pytest.raises(SystemicFailure, match="usage no answer"):
            run_batch_index(
                settings,
                index_deps(store, down, Stream(), clock=clock, probe=ProjectionProbe(down)),
            )
    # Then nobody was charged: they wait for the service
    assert {store.get(i).attempts for i in tail} == {0}
    assert {store.get(i).state for i in tail} == {S.NOT_STARTED}
