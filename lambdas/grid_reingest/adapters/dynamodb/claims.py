"""The workers' writes to the state table: conditional claims and transitions.

Each take and each transition is one conditional UpdateItem, so an image is
never held by two workers and an outcome is written only while its claim holds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.reads import StateReads
from grid_reingest.adapters.dynamodb.schema import (
    ATTEMPTS,
    BATCH_GET_MAX,
    CHANGED_AT,
    CHECK_FIRST,
    CLAIM_PAGE_MIN,
    CLAIMED_BY,
    CLAIMED_FROM,
    ID,
    LAST_ERROR,
    MAX_ERROR_CHARS,
    OVERLOADS,
    PASS,
    REPROJECTED,
    SHARD_COUNT,
    STATE,
    STATE_NAME,
    STATE_SHARD,
    condition_failed,
    shard_of,
    state_shard,
    updated_if,
)
from grid_reingest.domain.claims import Claim, Source, Transition
from grid_reingest.domain.isotime import format_instant, parse_instant
from grid_reingest.domain.states import ProgressState
from grid_reingest.ports import PartialApply

# One index page of one shard: (shard, [(id, state_changed_at)], where the next page starts)
ShardPage = tuple[int, list[tuple[str, str]], dict[str, Any] | None]


class Claims:
    """Takes items into a claim state and moves them on, each write conditional (the
    ClaimStore port's writes; its reads are `reads`')."""

    def __init__(self, handle: TableHandle, reads: StateReads) -> None:
        self.handle = handle
        self.reads = reads

    def claim(
        self, sources: Sequence[Source], to_state: ProgressState, limit: int, invocation: str
    ) -> list[Claim]:
        """Take up to `limit` items from `sources` (in order) into `to_state` for `invocation`.

        Each take is a conditional write, so an item is never held by two workers.
        """
        return list(self.claim_stream(sources, to_state, limit, invocation))

    def claim_stream(
        self,
        sources: Sequence[Source],
        to_state: ProgressState,
        limit: int,
        invocation: str,
        stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[Claim]:
        """Like `claim`, yielding each claim as soon as it is taken.

        Every shard is read at once (the first pages of every source together)
        and the takes run in parallel: a claim costs about two round trips, not
        one per shard or per source. Once `stop()` is true no new round starts;
        what the current round takes is still yielded, and must be given back
        by the caller.
        """
        taken = 0
        # Usually nothing waits to be reclaimed: finding that out should not
        # cost a round trip before the first real candidates are read.
        first_rounds = self._first_rounds(sources, limit)
        for n, source in enumerate(sources):
            # shard -> where its next page starts (None: at the beginning)
            cursors: dict[int, dict[str, Any] | None] = dict.fromkeys(range(SHARD_COUNT))
            pages: list[ShardPage] | None = first_rounds[n]
            while cursors and taken < limit and not stop():
                if pages is None:
                    share = _share(limit - taken, len(cursors))
                    shards, starts = list(cursors), list(cursors.values())
                    pages = list(
                        self.handle.pool.map(
                            self._shard_page, repeat(source), shards, starts, repeat(share)
                        )
                    )
                candidates: list[tuple[str, str]] = []
                for shard, items, next_key in pages:
                    candidates += items
                    if next_key is None:
                        del cursors[shard]
                    else:
                        cursors[shard] = next_key
                pages = None
                # Racing workers read the same shard heads; trying them in a
                # random order makes them collide less.
                random.shuffle(candidates)
                while candidates and taken < limit:
                    # A round of takes at most as wide as the pool: the first
                    # claims come back before the rest are even sent.
                    attempt = candidates[: min(limit - taken, self.handle.max_workers)]
                    candidates = candidates[len(attempt) :]
                    for claim in self.handle.pool.map(
                        lambda seen, s=source: self._take(seen, s, to_state, invocation), attempt
                    ):
                        if claim is not None:
                            taken += 1
                            yield claim
                    if stop():
                        break

    def _first_rounds(self, sources: Sequence[Source], limit: int) -> list[list[ShardPage]]:
        """The first page of every shard of every source, read in one parallel round."""
        share = _share(limit, SHARD_COUNT)
        wanted = [(n, shard) for n in range(len(sources)) for shard in range(SHARD_COUNT)]
        rounds: list[list[ShardPage]] = [[] for _ in sources]
        pages = self.handle.pool.map(
            lambda want: (want[0], self._shard_page(sources[want[0]], want[1], None, share)),
            wanted,
        )
        for n, page in pages:
            rounds[n].append(page)
        return rounds

    def _shard_page(
        self, source: Source, shard: int, start: dict[str, Any] | None, limit: int
    ) -> ShardPage:
        return (shard, *self.reads.candidate_page(source, shard, start, limit))

    def _take(
        self, seen: tuple[str, str], source: Source, to_state: ProgressState, invocation: str
    ) -> Claim | None:
        image_id, seen_changed_at = seen
        names = {"#state": STATE}
        values: dict[str, Any] = {
            ":from": {"N": str(int(source.state))},
            ":to": {"N": str(int(to_state))},
            ":name": {"S": to_state.label},
            ":shard": {"S": state_shard(to_state, shard_of(image_id))},
            ":now": {"S": self.handle.now()},
            ":invocation": {"S": invocation},
        }
        update = (
            f"SET #state = :to, {STATE_NAME} = :name, {STATE_SHARD} = :shard, "
            f"{CHANGED_AT} = :now, {CLAIMED_BY} = :invocation"
        )
        condition = "#state = :from"
        if source.reclaim:
            # The original source state is kept: it is where a release sends the item.
            condition += f" AND {CHANGED_AT} = :seen"
            values[":seen"] = {"S": seen_changed_at}
        else:
            update += f", {CLAIMED_FROM} = :from"
        try:
            item = self.handle.client.update_item(
                TableName=self.handle.name,
                Key={ID: {"S": image_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if condition_failed(error):
                return None  # another invocation was faster, or the index was behind
            raise
        return Claim(
            id=image_id,
            attempts=int(item.get(ATTEMPTS, {"N": "0"})["N"]),
            claimed_from=ProgressState(int(item.get(CLAIMED_FROM, {"N": "0"})["N"])),
            reclaimed=source.reclaim,
            overloads=int(item.get(OVERLOADS, {"N": "0"})["N"]),
            pass_id=item.get(PASS, {}).get("S"),
            check_first=CHECK_FIRST in item,
            reprojected=REPROJECTED in item,
            changed_at=None if source.reclaim else _instant(seen_changed_at),
        )

    def apply(self, transitions: Iterable[Transition]) -> list[bool]:
        """Apply transitions in parallel: True where applied, False where the item moved on.

        PartialApply when some writes failed (after botocore's retries), saying
        which were written, so that only the others are repeated.
        """
        answers = list(self.handle.pool.map(self._apply_or_error, transitions))
        errors = [a for a in answers if isinstance(a, Exception)]
        if errors:
            raise PartialApply(
                [None if isinstance(a, Exception) else a for a in answers], errors[0]
            )
        return [bool(a) for a in answers]

    def _apply_or_error(self, t: Transition) -> bool | Exception:
        try:
            return self._apply_one(t)
        except (ClientError, BotoCoreError) as error:
            failure: Exception = error
            return failure

    def _apply_one(self, t: Transition) -> bool:
        names = {"#state": STATE}
        values: dict[str, Any] = {
            ":expected": {"N": str(int(t.expected))},
            ":new": {"N": str(int(t.new))},
            ":name": {"S": t.label or t.new.label},
            ":shard": {"S": state_shard(t.new, shard_of(t.id))},
            ":now": {
                "S": self.handle.now() if t.changed_at is None else format_instant(t.changed_at)
            },
        }
        sets = [
            "#state = :new",
            f"{STATE_NAME} = :name",
            f"{STATE_SHARD} = :shard",
            f"{CHANGED_AT} = :now",
        ]
        removes = [] if t.new.is_claim else [CLAIMED_BY, CLAIMED_FROM]
        if t.attempts is not None:
            sets.append(f"{ATTEMPTS} = :attempts")
            values[":attempts"] = {"N": str(t.attempts)}
        if t.overloads:
            sets.append(f"{OVERLOADS} = :overloads")
            values[":overloads"] = {"N": str(t.overloads)}
        elif t.overloads == 0:
            removes.append(OVERLOADS)
        if t.reproject:
            sets.append(f"{REPROJECTED} = :one")
            values[":one"] = {"N": "1"}
            removes.append(CHECK_FIRST)
        if t.error is not None:
            sets.append(f"{LAST_ERROR} = :error")
            values[":error"] = {"S": t.error[:MAX_ERROR_CHARS] or "-"}
        condition = "#state = :expected"
        if t.invocation is not None:
            condition += f" AND {CLAIMED_BY} = :invocation"
            values[":invocation"] = {"S": t.invocation}
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return updated_if(
            self.handle.client,
            TableName=self.handle.name,
            Key={ID: {"S": t.id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


def _instant(text: str) -> datetime | None:
    """The index's time of change, or None where it is not one of ours (a release of the
    claim then stores now, as any other write does)."""
    try:
        return parse_instant(text)
    except ValueError:
        return None


def _share(need: int, shards: int) -> int:
    """How many candidates to read from each shard: a little more than a fair
    share of what is needed, for takes that lose a race."""
    return min(BATCH_GET_MAX, max(CLAIM_PAGE_MIN, math.ceil(need * 1.25 / shards)))
