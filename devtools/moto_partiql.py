"""moto's server, with PartiQL `INSERT` in BatchExecuteStatement answered as DynamoDB answers it.

moto 5 cannot run a parameterised `INSERT` (py-partiql-parser fails on `?`:
HTTP 500), and its `INSERT` of a key that exists replaces the item, where
DynamoDB refuses that statement alone with `DuplicateItem` and carries on with
the rest. Uploads depend on exactly that refusal, so this entry point runs
moto's own server with BatchExecuteStatement's `INSERT`s done the DynamoDB way
(devtools/partiql.py reads them): each a lookup and a put under one lock,
atomic against the other INSERTs (not against moto's other writes, which are
not atomic themselves). Any other statement still goes to moto.

It also leaves a table's stream records on its stream for a poller to read
(devtools/local_streams.py, as Lambda's own poller would), where moto would
hand them to a mapped function it can only run in Docker, and then drop them;
and it numbers them under a lock, where moto's own numbering lets two writes
at once share a sequence number (a tally counting one twice under load).

And it keeps no list of every model object ever made: moto appends each one
(every item copy, stream record, shard iterator) to a list for its dashboard
and never drops it, so a server answering a long pass grew by gigabytes and
slowed with it. And its TransactWriteItems copies no table
(devtools/moto_transactions.py), and a query of a global secondary index reads
the index, not the whole table (devtools/moto_gsi.py).

    python -m devtools.moto_partiql -H 127.0.0.1 -p 5000   (moto.server's options)
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from moto.core.common_models import BaseModel
from moto.dynamodb.exceptions import DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import StreamRecord, StreamShard

from devtools import moto_gsi
from devtools.moto_transactions import transact_write_items
from devtools.partiql import InsertStatement, PartiqlError, statement_error

# moto's server answers requests on several threads; one lock makes each
# insert's check-and-put atomic against the others.
_INSERTS = threading.Lock()
# A record's sequence number is its place on the shard: two writes at once must not take
# the same one (a poller reading after it would read the next record twice, or skip it).
_RECORDS = threading.Lock()


def batch_execute_statement(
    self: DynamoDBBackend, statements: list[dict[str, Any]], *, moto_own: Any
) -> list[dict[str, Any]]:
    """DynamoDB's answer to a batch of `INSERT`s; other batches are moto's."""
    if not all(s["Statement"].lstrip()[:6].upper() == "INSERT" for s in statements):
        return moto_own(self, statements)
    return [_insert(self, s) for s in statements]


def _insert(backend: DynamoDBBackend, entry: dict[str, Any]) -> dict[str, Any]:
    try:
        insert = InsertStatement.parse(entry["Statement"])
        item = insert.item(entry.get("Parameters", []))
    except PartiqlError as error:
        return statement_error("ValidationError", str(error))
    table = backend.tables.get(insert.table)
    if table is None:
        return statement_error("ResourceNotFound", "Requested resource not found")
    try:
        with _INSERTS:
            # A lookup, not a condition expression: moto parses an expression on every put.
            if table.get_item(DynamoType(item[table.hash_key_attr])) is not None:
                return statement_error("DuplicateItem", "Duplicate primary key exists in table")
            table.put_item(item)
    except DynamodbException as error:
        return statement_error("ValidationError", getattr(error, "message", str(error)))
    return {"TableName": insert.table}


def _keep_stream_record(self: StreamShard, old: Any, new: Any) -> None:
    """moto's StreamShard.add without sending the records to a mapped function."""
    view = self.table.stream_specification["StreamViewType"]  # type: ignore[index]
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    with _RECORDS:
        sequence = len(self.items) + self.starting_sequence_number
        self.items.append(StreamRecord(self.table, view, name, old, new, sequence))


def _untracked(cls: type[BaseModel], *args: Any, **kwargs: Any) -> BaseModel:
    """moto's BaseModel.__new__ without adding the object to the dashboard's list."""
    return super(BaseModel, cls).__new__(cls)


def install() -> None:
    """Answer INSERTs the DynamoDB way, keep stream records on their stream, and keep no model
    object past its use, and query GSIs through an index, in this process's moto backends."""
    moto_gsi.install()
    StreamShard.add = _keep_stream_record  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    BaseModel.__new__ = _untracked  # type: ignore[method-assign, assignment]
    moto_own = DynamoDBBackend.batch_execute_statement
    if getattr(moto_own, "answers_inserts", False):
        return

    def patched(self: DynamoDBBackend, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_execute_statement(self, statements, moto_own=moto_own)

    patched.answers_inserts = True  # type: ignore[attr-defined]
    DynamoDBBackend.batch_execute_statement = patched  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    install()
    # A line logged for each request took 7% of the server's sampled time in a pass; its
    # warnings and errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
