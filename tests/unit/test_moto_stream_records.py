"""The emulator's stream records (devtools/moto_partiql.py): writes answered at once on moto's
threads each take a sequence number of their own, as on DynamoDB."""

from __future__ import annotations

import sys
import threading
from types import SimpleNamespace

import pytest
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from devtools.moto_partiql import _keep_stream_record, _untracked

WRITERS = 8
WRITES = 300


@pytest.fixture
def busy_switching():
    """Threads swapped as often as the interpreter allows: a race shows at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_writes_at_once_never_share_a_sequence_number(busy_switching):
    table = SimpleNamespace(
        stream_specification={"StreamViewType": "NEW_AND_OLD_IMAGES"},
        hash_key_attr="id",
        range_key_attr=None,
    )
    shard = SimpleNamespace(table=table, items=[], starting_sequence_number=1000)
    start = threading.Barrier(WRITERS)

    def write(writer: int) -> None:
        start.wait()
        for n in range(WRITES):
            key = DynamoType({"S": f"{writer}-{n}"})
            _keep_stream_record(shard, None, Item(key, None, {"id": {"S": f"{writer}-{n}"}}))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [int(r.record["dynamodb"]["SequenceNumber"]) for r in shard.items]
    # Each record's number is its place on the shard (what reading after one relies on)
    assert numbers == list(range(1000, 1000 + WRITERS * WRITES))


def test_model_objects_are_made_without_being_kept_for_moto_dashboard():
    # moto keeps every model object it makes in a list, for ever: a long local pass grew by
    # gigabytes. The emulator's entry point makes them without that.
    kept = len(Item.instances_tracked)
    made = _untracked(Item)
    assert isinstance(made, Item)
    assert len(Item.instances_tracked) == kept
    Item.__new__(Item)  # moto's own: kept
    assert len(Item.instances_tracked) == kept + 1
