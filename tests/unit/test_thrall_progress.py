"""thrall's progress from its checkpoints: the age at each move, the trend, a stopped consumer."""

import itertools
import json

import pytest

from grid_reingest.domain.thrall_handover import HANDOVER_POSITIONS, Handover, ShardHandover
from grid_reingest.domain.thrall_progress import (
    CHECKPOINT_PERIOD_SECONDS,
    HANDED_READ_SECONDS,
    READ_EVERY_SECONDS,
    STALL_GRACE_SECONDS,
    ThrallProgress,
)

SHARD = "shardId-000000000000"


def published(progress, first, last, every=1.0, start=0.0, shard=SHARD):
    """Records first..last (sequence numbers), one every `every` seconds from `start`."""
    progress.published([(shard, n, start + (n - first) * every) for n in range(first, last + 1)])


def moved(progress, before, after, at):
    """A read just before `at` showing `before`, then one at `at` showing `after`: the
    checkpoint moved at `at` (a move is dated between the two reads that show it)."""
    progress.observe(before, at=at)
    progress.observe(after, at=at)


def test_thrall_progress_reads_nothing_before_a_checkpoint_moves():
    # Given a worker that published, and a first read of the lease table
    progress = ThrallProgress()
    published(progress, 1, 10)
    progress.observe({SHARD: 0}, at=10.0)
    # When it asks before the checkpoint moved
    # Then there is nothing to say yet (a first sight says nothing of when it moved)
    assert progress.reading(12.0) is None


def test_thrall_progress_a_caught_up_thrall_reads_no_age():
    # Given records one a second, and thrall's checkpoint moving to the newest each time
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, 60, start=0.0)
    # When the checkpoint moves to the last record published
    moved(progress, {SHARD: 0}, {SHARD: 60}, 60.0)
    reading = progress.reading(60.0)
    # Then nothing of ours waits: the age is 0
    assert reading.age_s == 0.0
    assert reading.stalled_s == 0.0


def test_thrall_progress_age_is_the_oldest_waiting_record_when_the_checkpoint_moved():
    # Given records one a second from 0 s, and thrall behind
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, 120, start=0.0)
    progress.observe({SHARD: 0}, at=55.0)
    # When the checkpoint is seen to have moved to record 21 between reads a refresh apart
    progress.observe({SHARD: 21}, at=70.0)
    reading = progress.reading(75.0)
    # Then the age is counted at the middle of the two reads (62.5 s), from record 22 (21 s)
    assert reading.age_s == pytest.approx(41.5)
    assert reading.sample_age_s == pytest.approx(12.5)


def test_thrall_progress_trend_gives_the_age_a_minute_before():
    # Given a thrall taking one record every two seconds of ours published one a second
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, 300, start=0.0)  # record n published at n - 1 s
    for at in range(60, 181, 60):
        moved(progress, {SHARD: (at - 60) // 2}, {SHARD: at // 2}, float(at))
    # When the latest and earlier samples are read
    reading = progress.reading(180.0)
    # Then the age grew by half a second a second: 30 s in the minute before
    assert reading.age_s == pytest.approx(90.0)  # record 91, published at 90 s
    assert reading.previous_age_s == pytest.approx(60.0)


def test_thrall_progress_a_checkpoint_overdue_with_records_waiting_is_a_stall():
    # Given a checkpoint that moved at 60 s, and records of ours published after it was due again
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, 200, start=0.0)  # record n published at n - 1 s
    moved(progress, {SHARD: 0}, {SHARD: 60}, 60.0)
    due = 60.0 + CHECKPOINT_PERIOD_SECONDS
    # When no move is seen long past the period
    at = due + STALL_GRACE_SECONDS + 30.0
    progress.observe({SHARD: 60}, at=at)
    reading = progress.reading(at)
    # Then thrall is taken to have stopped, at least as far behind as the record that was due
    assert reading.stalled_s == pytest.approx(30.0)
    assert reading.age_s >= at - due


def read_through(last, checkpoint=100):
    """Records 1..`last` published one a second (record n at n - 1 s), and a read at
    `checkpoint` s that saw thrall's checkpoint move to record `checkpoint`; no read since."""
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, last, start=0.0)
    moved(progress, {SHARD: 0}, {SHARD: checkpoint}, float(checkpoint))
    return progress


def test_thrall_progress_a_long_gap_between_reads_is_no_lag():
    # Given records one a second, a read at 100 s with thrall through them all, then none for
    # 48 s (the worker drained its last images), thrall still keeping up
    progress = read_through(148)
    # When the read at 148 s shows the checkpoint moved to record 102 (taken at 101 s)
    progress.observe({SHARD: 102}, at=148.0)
    reading = progress.reading(148.0)
    # Then the gap is not read as thrall's lag (the middle of it would say 21 s): at most
    # half a read's usual spacing, as with reads a refresh apart
    assert reading.age_s <= READ_EVERY_SECONDS / 2


def test_thrall_progress_a_long_gap_between_reads_is_no_stall():
    # Given a read at 100 s, then none until 148 s, which shows a move (made at 147 s)
    progress = read_through(300)
    progress.observe({SHARD: 147}, at=148.0)
    # When reads a refresh apart see no further move before the next is due (207 s)
    for at in (163.0, 178.0, 193.0, 205.0):
        progress.observe({SHARD: 147}, at=at)
    # Then no stall is read: the move is not dated early in the gap (the middle, 124 s,
    # would make the next due at 184 s and overdue by 205 s)
    assert progress.reading(205.0).stalled_s == 0.0


def test_thrall_progress_no_stall_while_nothing_new_was_due():
    # Given thrall through everything we sent, its last records taken without a checkpoint
    # (the KCL checkpoints only as it processes records, a period after the last)
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, 90, start=0.0)
    moved(progress, {SHARD: 0}, {SHARD: 60}, 60.0)
    # When the worker sent nothing more for minutes
    progress.observe({SHARD: 60}, at=400.0)
    reading = progress.reading(400.0)
    # Then nothing was due: no stall is read into the silence
    assert reading.stalled_s == 0.0


def test_thrall_progress_keeps_each_shard_apart_and_reads_the_oldest():
    # Given records on two shards, one shard far behind
    progress = ThrallProgress()
    progress.observe({"a": 0, "b": 0}, at=0.0)
    published(progress, 1, 100, shard="a")
    published(progress, 1, 100, shard="b")
    # When shard a is caught up and shard b's checkpoint reaches record 10
    moved(progress, {"a": 0, "b": 0}, {"a": 100, "b": 10}, 60.0)
    # Then the age is shard b's: its record 11, published at 10 s, waited 50 s
    assert progress.reading(60.0).age_s == pytest.approx(50.0)


def test_thrall_progress_a_lease_table_without_checkpoints_says_nothing():
    # Given a lease table with no checkpoint yet (thrall never processed a record)
    progress = ThrallProgress()
    progress.observe({}, at=0.0)
    published(progress, 1, 100, start=0.0)
    # When the worker reads it again and again
    for at in range(15, 300, 15):
        progress.observe({}, at=float(at))
    # Then there is no reading: the worker goes by CloudWatch's points
    assert progress.reading(300.0) is None


def test_thrall_progress_moves_on_shards_without_records_of_ours_say_nothing():
    # Given our records on one shard, and another consumer's (or a parent's) lease moving
    progress = ThrallProgress()
    published(progress, 1, 60, start=0.0)
    progress.observe({SHARD: 0, "other": 0}, at=1.0)
    # When only the other shard's checkpoint moves
    moved(progress, {SHARD: 0, "other": 0}, {SHARD: 0, "other": 500}, 60.0)
    # Then nothing is said of our records (never "0 s behind")
    assert progress.reading(61.0) is None


def test_thrall_progress_a_shard_with_records_of_ours_and_no_checkpoint_is_unknown():
    # Given a reshard: our records land on a child whose lease sits at TRIM_HORIZON (no
    # checkpoint), while thrall drains the parent
    progress = ThrallProgress()
    published(progress, 1, 60, start=0.0, shard="child")
    progress.observe({"parent": 0}, at=1.0)
    moved(progress, {"parent": 0}, {"parent": 900}, 60.0)
    # Then there is no reading: the worker goes by CloudWatch
    assert progress.reading(61.0) is None


def test_thrall_progress_a_worker_goes_on_from_what_an_ended_one_handed_over():
    # Given a worker that published records one a second, read thrall's checkpoint move
    # to record 20 at 20 s and ended at 75 s with thrall behind
    ended = read_through(75, checkpoint=20)
    ended.observe({SHARD: 20}, at=75.0)
    handover = ended.handover(offset=1000.0)  # another clock: epoch = this + 1000
    # When a worker with another clock and nothing of its own takes it up, and its first
    # read (a refresh after the other's last) shows the checkpoint moved to 40
    successor = ThrallProgress()
    successor.adopt(handover, offset=500.0, at=590.0)  # its 590 is the other's 90
    successor.observe({SHARD: 40}, at=590.0)
    # Then it reads the age of the oldest record still waiting (41, published at 40 s)
    # at the move (between the reads, 82.5 s), not "caught up"
    assert successor.reading(590.0).age_s == pytest.approx(42.5)


def test_thrall_progress_without_a_handover_a_new_worker_reads_0():
    # (What the handover is for: the same reads, nothing handed over.)
    successor = ThrallProgress()
    successor.observe({SHARD: 40}, at=90.0)
    moved(successor, {SHARD: 40}, {SHARD: 50}, 150.0)
    assert successor.reading(150.0).age_s == 0.0


def test_thrall_progress_a_stale_handover_gives_its_records_but_not_its_read():
    # Given a handover whose last read is long past (the pass stopped a while)
    ended = read_through(120, checkpoint=20)
    successor = ThrallProgress()
    successor.adopt(ended.handover(offset=0.0), offset=0.0, at=60.0 + HANDED_READ_SECONDS + 1)
    # When it first reads the checkpoints: a first sight (when they moved is unknown)
    successor.observe({SHARD: 40}, at=60.0 + HANDED_READ_SECONDS + 1)
    assert successor.reading(60.0 + HANDED_READ_SECONDS + 1) is None
    # Then the next move reads the age of the records handed over still waiting (41 on)
    later = 60.0 + HANDED_READ_SECONDS + 60
    moved(successor, {SHARD: 40}, {SHARD: 50}, later)
    assert successor.reading(later).age_s == pytest.approx(later - 50.0)


def test_thrall_progress_a_handover_is_thinned_and_keeps_the_oldest_waiting():
    # Given ten times more records waiting than a handover keeps
    progress = ThrallProgress()
    count = 10 * HANDOVER_POSITIONS
    published(progress, 1, count, every=0.5, start=100.0)
    published(progress, 1, 3, start=100.0, shard="other")
    progress.observe({SHARD: 5, "other": 0}, at=200.0)
    # When it hands them over
    handed = progress.handover(offset=0.0).shards
    # Then each shard keeps at most HANDOVER_POSITIONS, in order, from the oldest
    kept = [(int(q), at) for q, at in handed[SHARD].waiting]
    assert len(kept) == HANDOVER_POSITIONS
    assert kept[0] == (6, 102.5)  # the oldest not yet processed
    assert [q for q, _ in kept] == sorted(q for q, _ in kept)
    assert max(b[1] - a[1] for a, b in itertools.pairwise(kept)) <= 5.0
    assert handed["other"].waiting == (("1", 100.0), ("2", 101.0), ("3", 102.0))
    assert handed[SHARD].checkpoint == "5" and handed["other"].checkpoint == "0"


def test_thrall_progress_adopting_twice_or_its_own_positions_keeps_each_once():
    # Given a worker that takes up what it handed over itself, then another's and an old one
    progress = ThrallProgress()
    published(progress, 1, 10, start=0.0)
    progress.adopt(progress.handover(offset=0.0), offset=0.0, at=20.0)
    other = Handover(shards={SHARD: ShardHandover(waiting=(("5", 4.0), ("11", 10.0)))})
    progress.adopt(other, offset=0.0, at=20.0)
    stale = Handover(shards={SHARD: ShardHandover(waiting=(("12", -3600.0),))})
    progress.adopt(stale, offset=0.0, at=20.0)  # older than anything kept
    # Then each record is there once, in order, and the stale one is not
    waiting = progress.handover(offset=0.0).shards[SHARD].waiting
    assert waiting == (*((str(n), n - 1.0) for n in range(1, 11)), ("11", 10.0))


def test_thrall_progress_a_handover_reads_back_from_its_json():
    progress = ThrallProgress()
    published(progress, 10**40, 10**40 + 2, start=5.0)  # Kinesis's numbers are that long
    progress.observe({SHARD: 10**40}, at=10.0)
    handover = progress.handover(offset=1.7e9)
    assert Handover.from_json(json.loads(json.dumps(handover.to_json()))) == handover
    assert Handover.from_json({}) == Handover()
