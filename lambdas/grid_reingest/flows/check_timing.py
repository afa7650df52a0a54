"""When batch-check may ask media-api about an enqueued image, and when its 404 is a verdict.

media-api has an image once thrall has taken its record, and thrall takes them
behind its lag, in order per shard. So an image is first asked about
`CHECK_FIRST_LOOK_SECONDS` after what thrall is reaching; nothing is asked
while thrall is seen stalled and batch-index runs (it judges the stall again);
and a 404 is final only once the image was enqueued `CHECK_MIN_AGE_SECONDS`
before what thrall can be reaching at the latest, and media-api has shown
thrall past it (it had an image enqueued later, or batch-index has nothing
left). Both questions it needs from the table — thrall's lag on the control
item, whether batch-index has work — are asked at most every few seconds: a
404 comes for every image thrall has not reached.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from grid_reingest.domain.claims import Claim
from grid_reingest.domain.states import ProgressState
from grid_reingest.domain.thrall_state import Lag
from grid_reingest.ports import ClaimStore, Clock
from grid_reingest.settings import BatchCheckSettings

# thrall's lag and whether batch-index has work are read again after this long.
REFRESH_SECONDS = 5.0
# thrall's shards are read side by side, not in one order: an image media-api has shows that
# thrall is past the records published this much before it on every shard.
ORDER_MARGIN_SECONDS = 30.0


@dataclass
class CheckTiming:
    """The rules above, for one invocation, with what they last read."""

    settings: BatchCheckSettings
    clock: Clock
    store: ClaimStore
    thrall_lag: Callable[[], Lag | None]
    # The newest enqueue time of the images media-api had, and what it was when each image
    # in flight was asked about.
    newest_found: datetime | None = None
    asked: dict[str, datetime | None] = field(default_factory=dict)
    busy: bool = True
    busy_asked_at: float = -math.inf
    last_lag: Lag | None = None
    lag_read_at: float = -math.inf

    def first_look_age(self) -> float | None:
        """How long ago an image must have been enqueued to be asked about now; None while
        thrall is seen stalled and batch-index runs (nothing new reaches media-api: nothing
        is asked). Once batch-index has nothing left, a stall it judged is judged again by
        no one (its last records may simply be waiting for thrall's next checkpoint):
        images are asked about, and a 404 is no verdict until the judgement is stale."""
        first = min(self.settings.first_look_seconds, self.settings.min_age_seconds)
        lag = self.lag()
        if lag is None:
            return first
        if math.isinf(lag.at_most) and self.index_busy():
            return None
        return first + lag.seconds

    def final_in(self, claim: Claim) -> float | None:
        """Seconds until media-api's 404 for this image would be final by its age (infinite
        while thrall is stalled); None when it is final now, or when the image's age is
        unknown (a claim taken over from a dead invocation).

        Final once the image was enqueued CHECK_MIN_AGE_SECONDS before what thrall can
        be reaching at the latest: the lag it was judged to have plus the time since that
        judgement's moment, not the lag alone. A thrall that stopped since (a deploy, a
        pause) has not reached the image, and its 404 is no verdict on the image.
        """
        if claim.changed_at is None:
            return None
        lag = self.lag()
        final_age = self.settings.min_age_seconds + (lag.at_most if lag else 0.0)
        age = (self.clock.now() - claim.changed_at).total_seconds()
        return final_age - age if age < final_age else None

    def found(self, claim: Claim) -> None:
        """media-api had this image."""
        at = claim.changed_at
        if at is not None:
            self.newest_found = at if self.newest_found is None else max(self.newest_found, at)

    def ask(self, image_id: str) -> None:
        """Note what media-api had shown as this image is asked about (in the pool's thread,
        just before the call)."""
        self.asked[image_id] = self.newest_found

    def answered(self, image_id: str) -> datetime | None:
        """The newest enqueue time media-api had shown before this image was asked about."""
        return self.asked.pop(image_id, None)

    def thrall_passed(self, claim: Claim, found_before: datetime | None) -> bool:
        """Whether thrall is past this image's record, as far as media-api shows: before the
        image was asked about (`found_before`), it had an image enqueued
        ORDER_MARGIN_SECONDS later; or batch-index has nothing left (the pass's last
        images: their age alone says). An answer that came in while the image's own call
        was out says nothing: thrall may have taken both records in between."""
        at, found = claim.changed_at, found_before
        if at is None or not self.index_busy():
            return True
        return found is not None and found >= at + timedelta(seconds=ORDER_MARGIN_SECONDS)

    def index_busy(self) -> bool:
        """Whether batch-index has work, asked of the store at most every REFRESH_SECONDS."""
        now = self.clock.monotonic()
        if now >= self.busy_asked_at + REFRESH_SECONDS:
            states = [self.settings.index_start_state, ProgressState.IN_PROGRESS]
            self.busy = self.store.has_any(states)
            self.busy_asked_at = now
        return self.busy

    def lag(self) -> Lag | None:
        """thrall's lag, read at most every REFRESH_SECONDS; its bound grows by the time
        since the read, as it would."""
        now = self.clock.monotonic()
        if now >= self.lag_read_at + REFRESH_SECONDS:
            self.last_lag, self.lag_read_at = self.thrall_lag(), now
        if self.last_lag is None:
            return None
        return replace(self.last_lag, at_most=self.last_lag.at_most + now - self.lag_read_at)
