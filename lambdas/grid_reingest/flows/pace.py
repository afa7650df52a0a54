"""The Pace port over the controller: signals in, a decision out, the state in the control item.

A running invocation asks `decide()` often (before starting images); a real step
of the controller happens at most every `refresh_seconds`, so that knobs reach
a running invocation within that time and the control item is not written on
every image. Between steps the last decision stands.

The controller's limit and rate are the pass's, not one invocation's: when
invocations overlap (reserved concurrency above one, an invocation still
running when the next tick starts another), each pace marks itself in the
controller's memory at each step, and each invocation takes its share of the
limit and of the rate among the invocations that stepped lately. The shares add up
to the limit, never more: the limit's remainder goes to the first invocations in
the order of their marks' keys, and an invocation that has just joined takes
nothing until every other has stepped since (until then, they may be using
the whole limit). (The control item keeps those marks under `workers`, keys
`worker.<id>`: names kept from before, so a pass running across an upgrade
keeps its marks.)

Each invocation sees only its own records on thrall's stream: one that ends hands
what it read of thrall's progress on to the next (`handover` in the control item;
domain/thrall_handover.py).
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from grid_reingest import names
from grid_reingest.domain.control import Control, PaceState
from grid_reingest.domain.controller import Controller, Signals, Tuning
from grid_reingest.domain.thrall_handover import Handover
from grid_reingest.domain.thrall_progress import ThrallProgress
from grid_reingest.domain.thrall_state import Lag
from grid_reingest.ports import Clock, ControlStore, Observation, PaceDecision

# thrall's iterator age as the controller reads it: (latest, previous) one-minute
# maxima of the watched streams, or None without data.
AgeReading = tuple[float, float | None] | None
# thrall's checkpoints: shard id to the sequence number of the last record it processed.
Checkpoints = dict[str, int]
# Saving the controller's state loses to another invocation's save at most this
# many times in a row before this invocation goes on with what it read.
SAVE_TRIES = 3
# Overload answers step the controller before the refresh is up once there are this many
# (over its share of the answers); so does a round trip's answers while the limit is still
# doubling: at most this often.
OVERLOAD_STEP_ANSWERS = 5
EARLY_STEP_SECONDS = 2.0
# An invocation counts as running while its last step is younger than this many refreshes
# (and its images held after it stopped starting count while told as lately).
ALIVE_REFRESHES = 1.5
# A worker that starts no more tells its images held again once down to this share of what
# it last told (and every refresh): a few writes of the control item while it finishes.
HELD_RETELL_SHARE = 0.75
WORKER_KEY = "worker."
# batch-index's judgement of thrall's lag counts for batch-check while this recent
# (batch-index steps every refresh while it runs; once it has ended, the lag is unknown).
LAG_FRESH_SECONDS = 600.0


class ControlledPace:
    """The controller as a worker uses it (thread-safe)."""

    def __init__(
        self,
        controller: Controller,
        control: ControlStore,
        iterator_age: Callable[[], AgeReading],
        clock: Clock,
        *,
        refresh_seconds: float = 15.0,
        checkpoints: Callable[[], Checkpoints] | None = None,
        name: str | None = None,
    ) -> None:
        """`name` marks this worker among those sharing the pace (default: a random one;
        the pass simulator names its workers so that a run repeats exactly)."""
        self._controller = controller
        self._control = control
        self._iterator_age = iterator_age
        self._clock = clock
        self._refresh = refresh_seconds
        self._checkpoints = checkpoints
        self._progress = ThrallProgress(read_every_s=refresh_seconds)
        self._lock = threading.Lock()
        self._pending = Observation()
        self._decision: PaceDecision | None = None
        self._decided_at = 0.0
        self._key = WORKER_KEY + (name or uuid.uuid4().hex[:12])
        self._joined_at: float | None = None  # this worker's first step (epoch seconds)
        self._unread: Counter[str] = Counter()  # steps a signal could not be read, by metric
        self._slow_start_limit: float | None = None  # the limit, while it still doubles
        self._workers_seen = 1
        self._held_told: tuple[int, float] | None = None  # (images, monotonic) last told
        self._adopted: Handover | None = None  # the handover last taken up

    def decide(self, observation: Observation) -> PaceDecision:
        """Add `observation` to what is pending; step the controller when it is time."""
        with self._lock:
            self._pending.finished += observation.finished
            self._pending.overloaded += observation.overloaded
            self._pending.latencies_ms += observation.latencies_ms
            self._pending.published += observation.published
            if observation.busy_seconds is not None:
                self._pending.busy_seconds = (
                    self._pending.busy_seconds or 0.0
                ) + observation.busy_seconds
            if observation.draining:
                # What a worker finishing its last images saw: its in-flight use says nothing
                # of the pass's (it starts no more).
                self._pending.busy_seconds = None
            if self._checkpoints is not None:
                # Kept only where checkpoints are read: nothing else forgets them.
                self._progress.published(observation.published)
            since = self._clock.monotonic() - self._decided_at
            early = (
                not observation.draining
                and since >= EARLY_STEP_SECONDS
                and (self._overloaded(self._pending) or self._round_trip(self._pending))
            )
            # An invocation's last decision always steps: what it says of the pass (a pause
            # the operator asked for meanwhile) is the pace's now, not a refresh ago.
            due = since >= self._refresh or early or observation.draining
            if self._decision is None or due:
                self._decision = self._step()
                self._decided_at = self._clock.monotonic()
            return self._decision

    def _round_trip(self, pending: Observation) -> bool:
        """While the limit is still doubling (no queue seen at the Grid yet), two limits' worth
        of answers is a round trip of the images the last doubling started: the next need not
        wait for the refresh."""
        if self._slow_start_limit is None:
            return False
        return pending.finished * self._workers_seen >= 2 * max(1.0, self._slow_start_limit)

    def _overloaded(self, pending: Observation) -> bool:
        """Overload answers enough to cut now rather than at the next refresh (a full queue
        answers at once: a refresh of them is hundreds)."""
        share = self._controller.tuning.overload_share
        return (
            pending.overloaded >= OVERLOAD_STEP_ANSWERS
            and pending.overloaded > share * pending.finished
        )

    def take_unread(self) -> dict[str, int]:
        """Steps at which a signal could not be read since the last call, by metric name."""
        with self._lock:
            unread, self._unread = dict(self._unread), Counter()
            return unread

    def _step(self) -> PaceDecision:
        seen, self._pending = self._pending, Observation()
        # A signal that cannot be read degrades to the next one, counted; it never stops
        # the pass: the lease table to CloudWatch, CloudWatch to holding (the controller).
        notes: list[str] = []
        reading: AgeReading = None
        age_unread = False
        try:
            reading = self._iterator_age()
        except Exception as error:
            age_unread = True
            self._unread[names.ITERATOR_AGE_UNREAD] += 1
            notes.append(f"thrall's iterator age unreadable ({_said(error)})")
        progress, mark = None, None
        control = self._control.read()
        if self._checkpoints is not None:
            self._adopt(control.pace)
            read_at = self._clock.monotonic()
            try:
                checkpoints = self._checkpoints()
            except Exception as error:
                self._unread[names.CHECKPOINTS_UNREAD] += 1
                said = _said(error)
                notes.append(f"thrall's checkpoints unreadable ({said}): on CloudWatch's age")
            else:
                self._progress.observe(checkpoints, read_at)
                progress = self._progress.reading(read_at)
                mark = self._progress.mark()
        at = self._clock.now()
        mono = self._clock.monotonic()
        span = mono - self._decided_at if self._decision else None
        workers = self._workers(control.pace, at)
        signals = Signals(
            now=at,
            iterator_age_ms=reading[0] if reading else None,
            previous_age_ms=reading[1] if reading else None,
            finished=seen.finished,
            overloaded=seen.overloaded,
            latencies_ms=tuple(seen.latencies_ms),
            span_seconds=span,
            workers=workers,
            workers_changed=self._decision is not None and workers != self._workers_seen,
            checkpoint_age_ms=progress.age_s * 1000 if progress else None,
            checkpoint_previous_ms=(
                progress.previous_age_s * 1000
                if progress and progress.previous_age_s is not None
                else None
            ),
            checkpoint_delay_seconds=progress.sample_age_s if progress else 0.0,
            stalled_seconds=progress.stalled_s if progress else 0.0,
            checkpoint_mark=mark,
            published_ago=tuple(mono - when for _, _, when in seen.published),
            age_unread=age_unread,
            busy_seconds=seen.busy_seconds,
            worker=self._key,
        )
        if self._joined_at is None:
            self._joined_at = at.timestamp()
        for _ in range(SAVE_TRIES):
            stepped = self._controller.step(control.pace, signals, control.knobs)
            if notes:
                stepped = replace(stepped, reason=f"{stepped.reason} [{'; '.join(notes)}]")
            state, share = self._mark(stepped, signals.now)
            if self._control.save_pace(state, control.version):
                break
            control = self._control.read()  # another invocation decided first: decide on its state
        decision = _decision(control, state, share, at.timestamp())
        grid = state.grid
        self._slow_start_limit = state.limit if grid is not None and not grid.grown else None
        self._workers_seen = share.workers
        if share.waiting and not decision.paused:
            # The others step within a refresh: wait for it rather than end the invocation.
            decision = replace(decision, resume_in_seconds=self._refresh)
        return decision

    def leave(self, holding: int = 0) -> None:
        """Take this worker out of the pace's shares: the others take its share at their next
        step, not 1.5 refreshes later, less the `holding` images it still has in flight
        (told again as they finish, and 0 at the end), so that together they keep to the
        limit while the count is told within 1.5 refreshes."""
        with self._lock:
            now = self._clock.monotonic()
            told = self._held_told
            if holding and told is not None:
                count, at = told
                if holding > count * HELD_RETELL_SHARE and now - at < self._refresh:
                    return  # not enough changed to write the control item again
            at = self._clock.now().timestamp()
            for _ in range(SAVE_TRIES):
                control = self._control.read()
                if control.pace is None:
                    return
                workers = {k: v for k, v in control.pace.workers.items() if k != self._key}
                held = {k: v for k, v in control.pace.held.items() if k != self._key}
                handover = control.pace.handover
                if holding:
                    held[self._key] = (float(holding), at)
                elif self._checkpoints is not None:
                    handover = self._handover(control.pace)
                left = replace(control.pace, workers=workers, held=held, handover=handover)
                if left == control.pace:
                    return
                if self._control.save_pace(left, control.version):
                    self._held_told = (holding, now) if holding else None
                    return

    def _adopt(self, state: PaceState | None) -> None:
        """Take up what ended invocations handed over (once each handover)."""
        handover = state.handover if state is not None else None
        if handover is not None and handover != self._adopted:
            self._progress.adopt(handover, self._epoch_offset(), self._clock.monotonic())
        self._adopted = handover

    def _handover(self, state: PaceState) -> Handover:
        """What this worker read of thrall's progress, with its records thrall had not
        reached and those handed over before it: for the next invocation."""
        self._adopt(state)
        return self._progress.handover(self._epoch_offset())

    def _epoch_offset(self) -> float:
        """Epoch seconds less monotonic ones: a handover's times are epoch, a worker's not."""
        return self._clock.now().timestamp() - self._clock.monotonic()

    def _workers(self, state: PaceState | None, now: datetime) -> int:
        """The workers running now, this one included, as the marks in `state` say."""
        if state is None:
            return 1
        alive = ALIVE_REFRESHES * self._refresh
        others = {
            k for k, v in state.workers.items() if k != self._key and now.timestamp() - v <= alive
        }
        return 1 + len(others)

    def _mark(self, state: PaceState, now: datetime) -> tuple[PaceState, Share]:
        """The state with this worker's step marked (and workers gone quiet dropped, and
        images held by workers no longer told of); this worker's share of it."""
        at = now.timestamp()
        alive = ALIVE_REFRESHES * self._refresh
        workers = {k: v for k, v in state.workers.items() if at - v <= alive}
        workers[self._key] = at
        held = {k: v for k, v in state.held.items() if at - v[1] <= alive and k != self._key}
        marks = sorted(workers)
        joined = self._joined_at if self._joined_at is not None else at
        unaware = any(workers[k] < joined for k in marks if k != self._key)
        holding = sum(count for count, _ in held.values())
        share = Share(len(marks), marks.index(self._key), waiting=unaware, held=holding)
        return replace(state, workers=workers, held=held), share


@dataclass(frozen=True)
class Share:
    """A worker's part of the pass's pace: one of `workers`, the `rank`-th by key; `waiting`
    while some other has not stepped since this one joined (it may use the whole limit);
    `held` what workers that have stopped starting still have in flight."""

    workers: int = 1
    rank: int = 0
    waiting: bool = False
    held: float = 0.0  # images still in flight of workers that start no more

    def of_limit(self, limit: float) -> int:
        """Whole images; the shares of all the workers add up to the limit, less what workers
        that start no more still hold."""
        if self.waiting:
            return 0
        whole = max(0, math.floor(limit) - math.ceil(self.held))
        return whole // self.workers + (1 if self.rank < whole % self.workers else 0)


def _decision(
    control: Control, state: PaceState, share: Share | None = None, now: float | None = None
) -> PaceDecision:
    knobs = control.knobs
    if knobs.paused:
        return PaceDecision(0, state.rate_per_minute, "paused by the operator", paused=True)
    share = share or Share()
    workers = share.workers
    limit = share.of_limit(state.limit)
    rate = state.rate_per_minute / workers if state.rate_per_minute else state.rate_per_minute
    reason = state.reason if workers == 1 else f"{state.reason} (1 of {workers} workers)"
    if share.waiting:
        reason = f"{state.reason} (joining {workers - 1} running workers: waiting for their share)"
    resume_in = None
    resume_at = state.thrall.resume_at if state.thrall is not None else None
    if limit == 0 and now is not None and resume_at is not None and resume_at > now:
        resume_in = resume_at - now
    return PaceDecision(limit, rate, reason, resume_in_seconds=resume_in)


def grid_only(max_in_flight: int) -> Controller:
    """The controller for a worker with no thrall behind it (batch-check): the Grid loop alone,
    on the answers of the service it calls, under its deployed ceiling and the knobs."""
    return Controller(Tuning(max_limit=max_in_flight, max_iterator_age_ms=math.inf), thrall=False)


def thrall_lag(control: ControlStore, clock: Clock) -> Callable[[], Lag | None]:
    """How far behind thrall is, as batch-index's controller last judged it (from its state in
    `control`), and at most now; None when it has not judged within LAG_FRESH_SECONDS."""

    def lag() -> Lag | None:
        pace = control.read().pace
        if pace is None or pace.thrall is None:
            return None
        return pace.thrall.lag(clock.now().timestamp(), LAG_FRESH_SECONDS)

    return lag


def _said(error: Exception) -> str:
    """An error as the operator reads it: the AWS error code and message, briefly."""
    return f"{type(error).__name__}: {error}"[:300]
