"""thrall's progress from its checkpoints: the age at each move, the trend, a stopped consumer."""

import pytest

from grid_reingest.domain.thrall_progress import (
    CHECKPOINT_PERIOD_SECONDS,
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


def read_through_100(last):
    """Records 1..`last` published one a second (record n at n - 1 s), and a read at 100 s
    that saw thrall's checkpoint move to record 100; no read since."""
    progress = ThrallProgress()
    progress.observe({SHARD: 0}, at=0.0)
    published(progress, 1, last, start=0.0)
    moved(progress, {SHARD: 0}, {SHARD: 100}, 100.0)
    return progress


def test_thrall_progress_a_long_gap_between_reads_is_no_lag():
    # Given records one a second, a read at 100 s with thrall through them all, then none for
    # 48 s (the worker drained its last images), thrall still keeping up
    progress = read_through_100(148)
    # When the read at 148 s shows the checkpoint moved to record 102 (taken at 101 s)
    progress.observe({SHARD: 102}, at=148.0)
    reading = progress.reading(148.0)
    # Then the gap is not read as thrall's lag (the middle of it would say 21 s): at most
    # half a read's usual spacing, as with reads a refresh apart
    assert reading.age_s <= READ_EVERY_SECONDS / 2


def test_thrall_progress_a_long_gap_between_reads_is_no_stall():
    # Given a read at 100 s, then none until 148 s, which shows a move (made at 147 s)
    progress = read_through_100(300)
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
