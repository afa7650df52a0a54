"""The tally of items per state (`~counts`), kept by state-counts from the table's stream,
against moto's server: every write path counted once, whatever the batches."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.local_lambda import FakeContext, environment
from devtools.local_streams import StreamPoller
from grid_reingest.adapters.dynamodb.tally import COUNTS_ID, MARKER_PREFIX, TallyTable
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.states import ProgressState as S
from grid_reingest.handlers import state_counts


def grid_ids(n: int) -> list[str]:
    return [f"{i:040x}" for i in range(n)]


@pytest.fixture
def handler(table, aws):
    """state-counts' handler as a new container, configured for the test's table."""
    with environment(
        {
            "STATE_TABLE_NAME": table.name,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    ):
        state_counts.runtime.reset()
        state_counts.runtime()
        yield state_counts.handler
    state_counts.runtime.reset()


def exact(table) -> dict[int, int]:
    found: Counter[int] = Counter()
    for page in table.scan(segments=2):
        found.update(state for _, state in page)
    return dict(found)


def test_tally_counts_uploads_claims_transitions_and_resets_exactly(table, handler, aws):
    # Given every kind of write the pass makes: an upload (PartiQL INSERT), claims,
    # outcomes, a reset and an upload that keeps what is there
    poller = StreamPoller(aws, table.name, handler, batch_size=7)
    table.put_new(grid_ids(60))
    claims = table.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 20, "worker")
    table.apply(
        [Transition(c.id, S.IN_PROGRESS, S.ENQUEUED, invocation="worker") for c in claims[:15]]
    )
    table.apply([Transition(c.id, S.IN_PROGRESS, S.UNKNOWN_ERROR) for c in claims[15:]])
    table.reset([S.UNKNOWN_ERROR])
    table.put_new(grid_ids(70))
    # When the stream is drained into the tally, in batches of 7
    poller.drain()
    # Then the tally is the table's exact count per state, and its total the table's size
    tally = TallyTable(table.name, table.client).read()
    assert tally is not None
    assert tally.held() == exact(table) == {0: 55, 3: 15}
    assert tally.total == 70
    assert tally.complete


def test_a_batch_delivered_twice_is_counted_once(table, handler, aws):
    # Given a batch already counted
    table.put_new(grid_ids(5))
    records = []
    poller = StreamPoller(aws, table.name, lambda event, _: records.extend(event["Records"]))
    poller.drain()
    handler({"Records": records}, FakeContext())
    # When Lambda delivers the same batch again (a retry after a timeout)
    answer = handler({"Records": records}, FakeContext())
    # Then it adds nothing, and says so
    assert answer["alreadyCounted"] is True
    assert TallyTable(table.name, table.client).read().held() == {0: 5}


def test_the_tally_items_are_never_images(table, handler, aws):
    # Given a counted table
    table.put_new(grid_ids(3))
    StreamPoller(aws, table.name, handler).drain()
    # When the table is scanned and counted as the commands do
    # Then neither the tally nor its batch marker is read as an image
    assert exact(table) == {0: 3}
    assert table.get(COUNTS_ID) is not None
    markers = [
        i["id"]["S"]
        for i in table.client.scan(TableName=table.name)["Items"]
        if i["id"]["S"].startswith(MARKER_PREFIX)
    ]
    assert len(markers) == 1
    # and the records of the tally's own writes, drained in turn, move nothing
    assert StreamPoller(aws, table.name, handler).drain() > 0
    assert TallyTable(table.name, table.client).read().held() == {0: 3}


def test_a_table_with_items_from_before_its_tally_shows_incomplete(table, aws):
    # Given a tally that began after some items were there (a state below 0)
    tally = TallyTable(table.name, table.client)
    tally.add("first", {0: -2, 1: 2})
    # Then it says it is incomplete rather than showing a wrong total as right
    assert tally.read().complete is False


def test_writes_at_once_each_get_a_stream_record_of_their_own(table, handler, aws):
    # Given many writes at once (moto's server answers them on several threads)
    poller = StreamPoller(aws, table.name, handler, batch_size=9)
    ids = grid_ids(40)
    table.put_new(ids)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: table.apply([Transition(i, S.NOT_STARTED, S.VERIFIED)]), ids))
    # When the stream is drained
    poller.drain()
    # Then every write was counted once: the tally is exact
    tally = TallyTable(table.name, table.client).read()
    assert tally is not None
    assert tally.held() == exact(table) == {6: 40}
