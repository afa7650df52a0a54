"""Failures wait here until whose they are is known; both workers use this one rule.

The rule is domain/systemic.py's. This is the part of it that does I/O through
ports: the probe, run in the background (a projection can take seconds; the
loop keeps starting images meanwhile), on an image the service served lately —
one of this invocation's, else one the table holds as done — or, with none,
on the service's health route. A probe's verdict stands `probe_seconds`.

A health route that answers says the service runs, not that it has room: a
loader whose queue is full answers its health route and 503 to every image. So
for overload answers only a known-good image's projection counts; with none
(nothing has succeeded in the whole pass yet), the window decides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from grid_reingest.domain.claims import (
    Claim,
    Transition,
    failure_transition,
    overload_transition,
    release_transition,
)
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.systemic import Cause, Judge, Symptom, Verdict
from grid_reingest.flows.summary import Summary
from grid_reingest.ports import Clock, Probe

# Overload that has been most of a service's window this long stops the invocation: the pace
# cuts on overload answers every couple of seconds, to a tenth of its limit within 15 s.
OVERLOAD_STOP_SECONDS = 60.0


@dataclass(frozen=True)
class Decided:
    """One failure and whose it is (OWN or SYSTEMIC)."""

    claim: Claim
    error: str
    symptom: Symptom
    verdict: Verdict
    per_attempt: int  # the image's own overload answers that cost one attempt


def verdict_transition(
    decided: Decided, held: ProgressState, invocation: str, max_attempts: int, summary: Summary
) -> Transition:
    """What a decided failure does to its image, counted in `summary`: the system's goes back
    with no attempt; the image's own costs one (an overload answer, every few times)."""
    claim, error = decided.claim, decided.error
    if decided.verdict is Verdict.SYSTEMIC:
        summary.released += 1
        summary.infra_released += 1
        return release_transition(claim, held, invocation, error)
    if decided.symptom.cause is Cause.OVERLOAD:
        per_attempt = decided.per_attempt
        transition = overload_transition(
            claim, held, invocation, error, max_attempts=max_attempts, per_attempt=per_attempt
        )
    else:
        transition = failure_transition(claim, held, invocation, error, max_attempts)
    if transition.attempts is None:
        summary.own_overloads += 1
    else:
        summary.failures += 1
    return transition


class FailureTriage:
    """Holds failures until the judge (and, where needed, a probe) says whose they are.

    `known_good` gives an id of an image the table holds as done (read once, when a probe
    first needs one and this invocation has served none); services in `unprobed` (thrall's
    stream) are judged on the window alone, and their overload is the system's: a shard's
    bytes a second are shared by every producer. A record that needs most of them to itself
    is the caller's to judge (`own`).
    """

    def __init__(
        self,
        judge: Judge,
        probe: Probe | None,
        clock: Clock,
        known_good: Callable[[], str | None],
        unprobed: Iterable[str] = (),
    ) -> None:
        self.judge = judge
        self._probe = probe
        self._clock = clock
        self._known_good = known_good
        self._unprobed = frozenset(unprobed)
        self._undecided: list[tuple[Claim, str, Symptom]] = []
        self._own: list[Decided] = []
        # service: (when, healthy, asked about an image rather than the health route)
        self._verdicts: dict[str, tuple[float, bool | None, bool]] = {}
        self._probing: dict[str, Future[tuple[bool | None, bool]]] = {}
        self._served: str | None = None
        self._stored: list[str | None] = []  # the table's known-good id, once read
        # service: (since when overload has been most of its window, its latest error)
        self._overloaded_since: dict[str, tuple[float, str]] = {}
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="probe")
        self.stop_reason: str | None = None
        self.probes = 0

    def served(self, image_id: str | None = None, channel: str = "") -> None:
        """One image (or record) every service of `channel` answered; `image_id`: it may serve
        as a probe."""
        self.judge.served(channel)
        if image_id is not None:
            self._served = image_id

    def failed(self, claim: Claim, symptom: Symptom, error: str, channel: str = "") -> None:
        """One failure, to be decided."""
        self.judge.failed(symptom, channel)
        self._undecided.append((claim, error, symptom))

    def own(self, claim: Claim, symptom: Symptom, error: str, channel: str = "") -> None:
        """A failure the caller knows is the image's own: counted, and decided as such (one
        attempt) at the next `decide`."""
        self.judge.failed(symptom, channel)
        self._own.append(Decided(claim, error, symptom, Verdict.OWN, per_attempt=1))

    def counted(self, symptom: Symptom, channel: str = "") -> None:
        """One failure counted in the window, with no verdict asked (it is tried again)."""
        self.judge.failed(symptom, channel)

    @property
    def waiting(self) -> int:
        """Failures not decided yet."""
        return len(self._undecided)

    def decide(self, *, final: bool = False) -> list[Decided]:
        """The failures whose verdict is known now; with `final`, all of them (waiting for the
        probes). A system's failure that stops the invocation sets `stop_reason`."""
        decided, self._own = self._own, []
        waiting = []
        for claim, error, symptom in self._undecided:
            verdict = self._verdict(symptom, final)
            if verdict is Verdict.OPEN:
                waiting.append((claim, error, symptom))
                continue
            per_attempt = self.judge.rules.overloads_per_attempt
            decided.append(Decided(claim, error, symptom, verdict, per_attempt))
            if (
                verdict is Verdict.SYSTEMIC
                and self.stop_reason is None
                and self.judge.stops(symptom)
                and self._overloaded_for_long(symptom, error, final=final)
            ):
                self.stop_reason = f"the system's failure: {symptom} ({error})"
        self._undecided = waiting
        for service, (_, error) in list(self._overloaded_since.items()):
            if not self.judge.stops(Symptom(service, Cause.OVERLOAD)):
                del self._overloaded_since[service]
            elif final and self.stop_reason is None:
                # Ending with overload most of the answers still: loudly, as any other.
                symptom = Symptom(service, Cause.OVERLOAD)
                self.stop_reason = f"the system's failure: {symptom} ({error})"
        return decided

    def _overloaded_for_long(self, symptom: Symptom, error: str, *, final: bool) -> bool:
        """Whether overload has been most of `symptom.service`'s window for
        `OVERLOAD_STOP_SECONDS`, or the invocation ends (`final`) with it so (any other cause,
        and thrall's stream: at once).

        Overload answers come back at once and successes take seconds, so a burst of them
        (a slow start past a short queue, a limit shared out anew) fills a window of the
        latest answers for a moment while the pace backs off; that is the pace's to fix.
        Still most of them a minute on, with the pace cut to a fraction, it is not."""
        if symptom.cause is not Cause.OVERLOAD or symptom.service in self._unprobed:
            return True  # a stream's answers come for a call's records together: no such burst
        now = self._clock.monotonic()
        since, _ = self._overloaded_since.get(symptom.service, (now, error))
        self._overloaded_since[symptom.service] = (since, error)
        return final or now - since >= OVERLOAD_STOP_SECONDS

    def close(self) -> None:
        """Wait for probes in flight (they hold nothing of the loop)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- inside ---------------------------------------------------------------------------

    def _verdict(self, symptom: Symptom, final: bool) -> Verdict:
        if symptom.service in self._unprobed and symptom.cause is Cause.OVERLOAD:
            return Verdict.SYSTEMIC
        if symptom.service in self._unprobed or self._probe is None:
            return self.judge.without_probe(symptom, final=final)
        verdict = self.judge.verdict(symptom, None)
        if verdict is not Verdict.OPEN:
            return verdict
        healthy, by_image = self._healthy(symptom.service, wait=final)
        if symptom.cause is Cause.OVERLOAD and not by_image:
            healthy = None  # a health route says nothing of room
        verdict = self.judge.verdict(symptom, healthy)
        if verdict is Verdict.OPEN and final:
            # The probe could not tell (nothing served, no health route): the window decides.
            return self.judge.without_probe(symptom, final=True)
        return verdict

    def _healthy(self, service: str, *, wait: bool) -> tuple[bool | None, bool]:
        """(healthy or None, whether a known-good image was asked about)."""
        now = self._clock.monotonic()
        known = self._verdicts.get(service)
        if known is not None and now - known[0] < self.judge.rules.probe_seconds:
            return known[1], known[2]
        probing = self._probing.get(service)
        if probing is None:
            probing = self._probing[service] = self._pool.submit(self._ask, service)
        if not (wait or probing.done()):
            return None, False
        del self._probing[service]
        answer: tuple[bool | None, bool] = (None, False)
        with contextlib.suppress(Exception):  # a probe that fails to run tells nothing
            answer = probing.result()
        self._verdicts[service] = (self._clock.monotonic(), *answer)
        return answer

    def _ask(self, service: str) -> tuple[bool | None, bool]:
        assert self._probe is not None
        self.probes += 1
        image = self._served or self._table_known_good()
        return self._probe.healthy(service, image), image is not None

    def _table_known_good(self) -> str | None:
        if not self._stored:
            self._stored.append(self._known_good())
        return self._stored[0]
