"""The operators' resets: items moved back to a start state, each only if it is still exactly
as it was found (state and time of change), so an item a worker takes meanwhile is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from grid_reingest.adapters.dynamodb.handle import TableHandle
from grid_reingest.adapters.dynamodb.reads import StateReads
from grid_reingest.adapters.dynamodb.schema import (
    ATTEMPTS,
    CHANGED_AT,
    CLAIMED_BY,
    CLAIMED_FROM,
    ID,
    OVERLOADS,
    SHARD_COUNT,
    STATE,
    STATE_NAME,
    STATE_SHARD,
    shard_of,
    state_shard,
    updated_if,
)
from grid_reingest.domain.claims import Source
from grid_reingest.domain.ids import RESERVED_PREFIX
from grid_reingest.domain.states import ProgressState


class Resets:
    """Moves items back through one handle; finds them on the index through `reads`."""

    def __init__(self, handle: TableHandle, reads: StateReads) -> None:
        self.handle = handle
        self.reads = reads

    def reset(
        self,
        from_states: Iterable[ProgressState],
        to_state: ProgressState = ProgressState.NOT_STARTED,
        on_progress: Callable[[int], None] = lambda n: None,
        *,
        changed_before: datetime | None = None,
        on_moved: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Move every item in `from_states` to `to_state`, attempts (and overload answers) back to
        0; returns the count.

        Items are found on the index; with `changed_before`, only those whose
        state is older (claims whose lease ran out). Each move is conditional on
        the item being exactly as it was found (state and time of change), so an
        item a worker takes meanwhile is left alone. `on_progress` gets items
        looked at, `on_moved` items moved, as they happen (also before an error).
        """
        candidates = (
            (image_id, state, changed_at)
            for state in from_states
            if state != to_state
            for shard in range(SHARD_COUNT)
            for page in self.reads.candidate_pages(Source(state, changed_before), shard)
            for image_id, changed_at in page
            # The table's own items (`~control`) are never an image to move.
            if not image_id.startswith(RESERVED_PREFIX)
        )
        return self.reset_items(candidates, to_state, on_progress, on_moved=on_moved)

    def reset_items(
        self,
        items: Iterable[tuple[str, int, str]],
        to_state: ProgressState = ProgressState.NOT_STARTED,
        on_progress: Callable[[int], None] = lambda n: None,
        *,
        on_moved: Callable[[int], None] = lambda n: None,
    ) -> int:
        """Move each (id, state, state_changed_at) to `to_state` if it is still so; the count."""
        moved = 0

        def record(done: bool) -> None:
            nonlocal moved
            moved += done
            if done:
                on_moved(1)
            on_progress(1)

        self.handle.run_bounded(
            lambda item: self._reset_one(item[0], item[1], item[2], to_state), items, record
        )
        return moved

    def _reset_one(self, image_id: str, state: int, changed_at: str, to: ProgressState) -> bool:
        """Whether the item moved: False when it moved on since it was found (not ours)."""
        return updated_if(
            self.handle.client,
            TableName=self.handle.name,
            Key={ID: {"S": image_id}},
            UpdateExpression=(
                f"SET #state = :to, {STATE_NAME} = :name, {STATE_SHARD} = :shard, "
                f"#changed = :now, {ATTEMPTS} = :zero "
                f"REMOVE {CLAIMED_BY}, {CLAIMED_FROM}, {OVERLOADS}"
            ),
            ConditionExpression="#state = :from AND #changed = :seen",
            ExpressionAttributeNames={"#state": STATE, "#changed": CHANGED_AT},
            ExpressionAttributeValues={
                ":from": {"N": str(int(state))},
                ":seen": {"S": changed_at},
                ":to": {"N": str(int(to))},
                ":name": {"S": to.label},
                ":shard": {"S": state_shard(to, shard_of(image_id))},
                ":now": {"S": self.handle.now()},
                ":zero": {"N": "0"},
            },
        )
