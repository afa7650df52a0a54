"""Claims on images and the transitions that move them between states.

A worker claims an image (a conditional move into a claim state), works on it,
and records the outcome with a transition that applies only if the image is
still where the worker left it. These rules hold for any store: DynamoDB in
Lambda, an in-memory store in tests and in the pass simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from grid_reingest.domain.states import RESET_LABEL, ProgressState


@dataclass(frozen=True)
class Claim:
    """An item a worker holds: what it needs to record the outcome later."""

    id: str
    attempts: int
    claimed_from: ProgressState
    reclaimed: bool = False  # taken over from a worker whose lease ran out
    overloads: int = 0  # the image's own overload answers since its last attempt charged
    # The pass that armed the item, and where it is in a check-first pass
    # (docs/state-table.md, "Passes"): still to be checked first, or re-projected after.
    pass_id: str | None = None
    check_first: bool = False
    reprojected: bool = False
    # When the item last changed before this claim, as the index showed it (None for a
    # reclaim: that time was the dead holder's claim).
    changed_at: datetime | None = None


@dataclass(frozen=True)
class Source:
    """Where claims come from: items in `state`, optionally only those last changed before a time.

    `reclaim` marks a claim state whose holder's lease ran out: the item is taken
    only if it has not changed since it was seen, so two reclaimers cannot both win.
    """

    state: ProgressState
    changed_before: datetime | None = None
    reclaim: bool = False


@dataclass(frozen=True)
class Transition:
    """Move one item from `expected` to `new`; applied only if it is still in `expected`.

    With `invocation`, only if that invocation still holds the claim. `attempts`,
    `overloads` and `error`, when given, replace the stored values; the claim is
    dropped when the new state is not a claim state.
    """

    id: str
    expected: ProgressState
    new: ProgressState
    invocation: str | None = None
    attempts: int | None = None
    error: str | None = None
    label: str | None = None  # the state's name on the item, when not its usual one
    overloads: int | None = None
    # A check-first item media-api lacks: `check_first` removed, `reprojected` set.
    reproject: bool = False
    # Stored as the time of the change instead of now: a claim never worked on keeps its
    # item's place in the queue (and, for batch-check, the age it waits on).
    changed_at: datetime | None = None


def release_transition(
    claim: Claim,
    held_in: ProgressState,
    invocation: str,
    error: str | None = None,
    *,
    keep_place: bool = False,
) -> Transition:
    """Give a claim back: the item returns to where it was claimed from, attempts unchanged.

    `keep_place`: the item also gets back the time it last changed before the claim (a
    claim never worked on, or one batch-check held for a later look). Otherwise (a failure
    the system caused) it goes back as changed now: the invocation that gave it back does
    not take it again at once.
    """
    changed_at = claim.changed_at if keep_place else None
    return Transition(
        claim.id,
        held_in,
        claim.claimed_from,
        invocation=invocation,
        error=error,
        changed_at=changed_at,
    )


def failure_transition(
    claim: Claim, held_in: ProgressState, invocation: str, error: str, max_attempts: int
) -> Transition:
    """One more attempt counted: back where the claim came from, or state 8 once spent."""
    attempts = claim.attempts + 1
    overloads = 0 if claim.overloads else None
    if attempts >= max_attempts:
        return Transition(
            claim.id,
            held_in,
            ProgressState.UNKNOWN_ERROR,
            invocation,
            attempts=attempts,
            error=error,
            overloads=overloads,
        )
    return Transition(
        claim.id,
        held_in,
        claim.claimed_from,
        invocation,
        attempts=attempts,
        error=error,
        label=RESET_LABEL if claim.claimed_from == ProgressState.NOT_STARTED else None,
        overloads=overloads,
    )


def overload_transition(
    claim: Claim,
    held_in: ProgressState,
    invocation: str,
    error: str,
    *,
    max_attempts: int,
    per_attempt: int,
) -> Transition:
    """An overload answer that was the image's own: counted on the item, and every
    `per_attempt`-th one costs an attempt (failure_transition), so that an image that keeps
    getting one while the service serves others still ends."""
    overloads = claim.overloads + 1
    if overloads >= per_attempt:
        return failure_transition(claim, held_in, invocation, error, max_attempts)
    return Transition(
        claim.id, held_in, claim.claimed_from, invocation, error=error, overloads=overloads
    )


def outcome_transition(
    claim: Claim,
    held_in: ProgressState,
    new: ProgressState,
    invocation: str,
    *,
    attempts: int | None = None,
    error: str | None = None,
) -> Transition:
    """The image's outcome, other than a failure: its overload count, if any, goes (an
    image's own overload answers count towards one attempt at a time)."""
    overloads = 0 if claim.overloads else None
    return Transition(claim.id, held_in, new, invocation, attempts, error, overloads=overloads)


def lease_cutoff(now: datetime, lease_seconds: int) -> datetime:
    """Claims made before this instant belong to a worker that is no longer running."""
    return now - timedelta(seconds=lease_seconds)


# The last error of an image whose claim ran out: its worker died holding it
# (a huge body, a hang), which may be the image's own doing.
CLAIM_EXPIRED = "claim expired"


def expiry_transition(
    claim: Claim, held_in: ProgressState, invocation: str, max_attempts: int
) -> Transition:
    """A claim taken over after its lease ran out counts an attempt: kept (now with one more
    attempt), or left at state 8 once the attempts are spent."""
    attempts = claim.attempts + 1
    new = ProgressState.UNKNOWN_ERROR if attempts >= max_attempts else held_in
    return Transition(claim.id, held_in, new, invocation, attempts=attempts, error=CLAIM_EXPIRED)
