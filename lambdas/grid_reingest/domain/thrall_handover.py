"""What an invocation that ends knows of thrall's progress, kept for the next one.

Each invocation sees only its own records on thrall's stream, and a checkpoint
read tells an age only once it has seen the checkpoint move. An invocation
started while another's records wait, and short-lived (a paused pass ends each
one within seconds), would never read more than "caught up". So one that ends
leaves in the control item where thrall's checkpoints stood when it last read
them, when each last moved, and the positions of its records still waiting
(thinned to at most HANDOVER_POSITIONS a shard); the next takes them up
(domain/thrall_progress.py) as if it had read and published them itself, as a
warm container's worker would.

Times are epoch seconds and sequence numbers the strings Kinesis writes (too
long for a DynamoDB number): the control item's JSON (domain/control.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A handover keeps at most this many positions a shard: the first of each of as many
# spans of their time (a few KB in the control item; the age read from them is then at
# most one span, seconds, short of the true one).
HANDOVER_POSITIONS = 120


@dataclass(frozen=True)
class ShardHandover:
    """One shard: its checkpoint as last read (None: none then), when it last moved
    (None: unknown), and the (sequence number, when published) of records still waiting."""

    checkpoint: str | None = None
    moved_at: float | None = None
    waiting: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Handover:
    """thrall's progress as the invocations that ended last read it; `read_at`: when."""

    read_at: float | None = None
    shards: Mapping[str, ShardHandover] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """As plain JSON values, each field named."""
        return {
            "readAt": self.read_at,
            "shards": {
                name: {
                    "checkpoint": shard.checkpoint,
                    "movedAt": shard.moved_at,
                    "waiting": [list(p) for p in shard.waiting],
                }
                for name, shard in self.shards.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Handover:
        """From `to_json`'s object."""
        read_at = data.get("readAt")
        return cls(
            read_at=None if read_at is None else float(read_at),
            shards={
                str(name): ShardHandover(
                    checkpoint=None if s.get("checkpoint") is None else str(s["checkpoint"]),
                    moved_at=None if s.get("movedAt") is None else float(s["movedAt"]),
                    waiting=tuple((str(q), float(at)) for q, at in s.get("waiting") or ()),
                )
                for name, s in (data.get("shards") or {}).items()
            },
        )


def thinned(queue: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """At most HANDOVER_POSITIONS of `queue` (in order of publishing): the first of each of
    as many equal spans of time from its oldest to its newest (so the oldest, which the
    age is read from, is always kept)."""
    if len(queue) <= HANDOVER_POSITIONS:
        return queue
    start, span = queue[0][1], (queue[-1][1] - queue[0][1]) / HANDOVER_POSITIONS
    kept, last = [], -1
    for sequence, when in queue:
        bucket = min(HANDOVER_POSITIONS - 1, int((when - start) / span)) if span > 0 else 0
        if bucket > last:
            kept.append((sequence, when))
            last = bucket
    return kept
