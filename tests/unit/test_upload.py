"""Uploads on the atomic in-memory store: batched INSERTs never overwrite, whoever races them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from py_partiql_parser._internal.insert_parser import InsertParser

from devtools.aws_proxy import Faults
from devtools.memory_dynamodb import memory_dynamodb
from devtools.memory_store import Item, MemoryStore
from devtools.partiql import InsertStatement
from grid_reingest.adapters.dynamodb.schema import Arming, StateTableError, fresh_item
from grid_reingest.adapters.dynamodb.tables import OperatorTable
from grid_reingest.adapters.dynamodb.write_report import WriteReport
from grid_reingest.domain.claims import Source, Transition
from grid_reingest.domain.states import ProgressState as S

TABLE = "memory-state-table"


def ids(n: int, start: int = 0) -> list[str]:
    return [f"{i:040x}" for i in range(start, start + n)]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr("grid_reingest.domain.backoff.full_jitter", lambda attempt: 0.0)


def upload_table(store: MemoryStore, **kwargs: Any) -> OperatorTable:
    return OperatorTable(TABLE, memory_dynamodb(store, TABLE, **kwargs), max_workers=8)


class OverwritingStore(MemoryStore):
    """A store whose INSERT replaces an existing item, as moto's own PartiQL does."""

    def insert(self, item: Item) -> bool:
        self.put_if(item, lambda current: True)
        return True


def before_first_insert(client: Any, race: Any) -> None:
    """Run `race` once, after the upload has read its batch and before its first INSERT."""
    fired = threading.Event()

    def hook(**kwargs: Any) -> None:
        if not fired.is_set():
            fired.set()
            race()

    client.meta.events.register("before-call.dynamodb.BatchExecuteStatement", hook)


def test_upload_statement_is_read_alike_by_an_independent_partiql_parser():
    # Given the adapter's statement with its parameters written in as literals
    sent = OperatorTable(TABLE, client=None).uploads.inserts.statement(Arming())
    statement = InsertStatement.parse(sent)
    literal = sent
    for _ in statement.names:
        literal = literal.replace("?", "'x'", 1)
    # When moto's PartiQL parser (a separate implementation) reads it
    table, item = InsertParser().parse(literal)
    # Then it names the same table and attributes, and the same constants
    assert table == statement.table == TABLE
    assert {n: v for n, v in item.items() if n not in statement.names} == dict(statement.literals)
    # And the item is a new item at state 0, as the rest of the adapter writes one
    new = fresh_item(ids(1)[0], S.NOT_STARTED, "2026-01-01T00:00:00.000Z")
    assert statement.item([new[n] for n in statement.names]) == new


@pytest.mark.parametrize("store_kind", [MemoryStore, OverwritingStore])
def test_upload_keeps_a_claim_made_between_its_read_and_its_insert(store_kind):
    # Given, between the upload's read and its INSERTs, another upload of the same ids
    # and a worker claiming them
    store = store_kind()
    table = upload_table(store)
    claims = []

    def race() -> None:
        store.put_new(ids(10))
        claims.extend(store.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 10, "worker"))

    before_first_insert(table.client, race)
    # When the upload writes
    report = table.put_new(ids(10))
    # Then every claim survives and is reported as kept, in its state (the store whose
    # INSERT overwrites, as moto's does, loses them: the test tells the two apart)
    survived = store.apply(
        [Transition(c.id, S.IN_PROGRESS, S.ENQUEUED, invocation="worker") for c in claims]
    )
    if store_kind is MemoryStore:
        assert survived == [True] * 10
        assert (report.written, report.kept) == (0, {1: 10})
    else:
        assert survived == [False] * 10


def test_upload_reset_existing_keeps_a_claim_made_between_its_read_and_its_write():
    # Given verified items, and a worker that takes them back into a claim between the
    # upload's read and its conditional put
    store = MemoryStore()
    store.put_new(ids(5), S.VERIFIED)
    table = upload_table(store)
    fired = threading.Event()

    def race(**kwargs: Any) -> None:
        if not fired.is_set():
            fired.set()
            store.apply(
                [Transition(i, S.VERIFIED, S.LOOKING_FOR_IMAGE, invocation=None) for i in ids(5)]
            )

    table.client.meta.events.register("before-call.dynamodb.PutItem", race)
    # When they are uploaded with reset_existing
    report = table.put_new(ids(5), reset_existing=True, lease_seconds=3600)
    # Then the claims are held, not reset
    assert report.held == 5
    assert store.counts()[S.LOOKING_FOR_IMAGE] == 5


@pytest.mark.parametrize("store_kind", [MemoryStore, OverwritingStore])
def test_upload_racing_another_upload_and_workers_writes_each_id_once_and_loses_no_claim(
    store_kind,
):
    # Given two uploads of nearly the same file at once, and two workers claiming and
    # moving on each id as soon as it appears
    store = store_kind()
    first, second = upload_table(store), upload_table(store)
    refused = []
    lost: list[str] = []
    done = threading.Event()

    def count_refusals(parsed: dict, **kwargs: Any) -> None:
        refused.extend(r for r in parsed.get("Responses", []) if "Error" in r)

    def work(name: str) -> None:
        while not done.is_set() or store.has_any([S.NOT_STARTED]):
            claims = store.claim([Source(S.NOT_STARTED)], S.IN_PROGRESS, 20, name)
            moved = store.apply(
                [Transition(c.id, S.IN_PROGRESS, S.ENQUEUED, invocation=name) for c in claims]
            )
            lost.extend(c.id for c, ok in zip(claims, moved, strict=True) if not ok)

    for table in (first, second):
        table.client.meta.events.register(
            "after-call.dynamodb.BatchExecuteStatement", count_refusals
        )
    workers = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    reports: dict[int, Any] = {}
    uploads = [
        threading.Thread(target=lambda: reports.setdefault(1, first.put_new(ids(3000)))),
        threading.Thread(target=lambda: reports.setdefault(2, second.put_new(ids(3000, 20)))),
    ]
    for thread in workers + uploads:
        thread.start()
    for thread in uploads:
        thread.join()
    done.set()
    for thread in workers:
        thread.join()
    written = reports[1].written + reports[2].written
    # Then the uploads really raced (INSERTs of ids the other had just written)...
    assert reports[1].done == reports[2].done == 3000
    if store_kind is OverwritingStore:
        # ...and where an INSERT overwrites, as moto's does, ids are written twice
        assert written > 3020
        return
    assert len(refused) > 0
    # ...and each of the 3,020 ids was written exactly once, by one upload or the other,
    # and no worker lost a claim to an upload
    assert written == 3020
    assert lost == []
    assert store.counts()[S.ENQUEUED] == 3020


def test_upload_sends_statements_dynamodb_had_no_capacity_for_again():
    # Given a table that refuses some statements of almost a third of the calls (the
    # throttling of whole calls is botocore's to retry: tests/integration)
    store = MemoryStore()
    faults = Faults(targets=("BatchExecuteStatement",), partial_rate=0.3, seed=3)
    table = upload_table(store, faults=faults)
    # When
    report = table.put_new(ids(2000))
    # Then every id is stored once, and the faults really happened
    assert report.written == 2000 == store.counts()[S.NOT_STARTED]
    assert faults.counts["partial"] > 5


def test_upload_gives_up_with_a_clear_error_when_no_statement_gets_through():
    store = MemoryStore()
    faults = Faults(targets=("BatchExecuteStatement",), partial_rate=1.0)
    faults.pick = lambda n: set(range(n))  # every statement refused, every time
    table = upload_table(store, faults=faults)
    with pytest.raises(StateTableError, match=r"BatchExecuteStatement .* made no progress"):
        table.put_new(ids(30))


class Refusing:
    """A client whose INSERT of one id is refused with `code`."""

    def __init__(self, client: Any, refused: str, code: str) -> None:
        self._client, self._refused, self._code = client, refused, code

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_execute_statement(self, Statements: list[dict]) -> dict:
        mine = [s["Parameters"][0]["S"] == self._refused for s in Statements]
        answer = (
            self._client.batch_execute_statement(
                Statements=[s for s, m in zip(Statements, mine, strict=True) if not m]
            )
            if not all(mine)
            else {"Responses": []}
        )
        responses = iter(answer["Responses"])
        refusal = {"Error": {"Code": self._code, "Message": "User: x is not authorized"}}
        return {"Responses": [refusal if m else next(responses) for m in mine]}


def test_upload_refused_names_the_id_the_table_and_the_permission():
    # Given a table that refuses the INSERT of one id of ten, all in one call
    store = MemoryStore()
    client = Refusing(memory_dynamodb(store, TABLE), ids(1, 7)[0], "AccessDenied")
    report = WriteReport()
    # When
    with OperatorTable(TABLE, client) as table, pytest.raises(StateTableError) as refused:
        table.put_new(ids(10), report=report)
    # Then the error says which id, which table, which permission
    message = str(refused.value)
    assert ids(1, 7)[0] in message and TABLE in message
    assert "dynamodb:PartiQLInsert" in message
    # And the report counts every id written, those after the refused one too
    assert report.written == 9 == store.counts()[S.NOT_STARTED]


def test_upload_counts_its_own_insert_whose_answer_was_lost_as_written():
    # Given a call that DynamoDB applied but whose answer was lost, so botocore sent it again
    store = MemoryStore()
    client = memory_dynamodb(store, TABLE)

    class LostAnswer:
        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def batch_execute_statement(self, **kwargs: Any) -> dict:
            client.batch_execute_statement(**kwargs)
            answer = client.batch_execute_statement(**kwargs)
            answer["ResponseMetadata"]["RetryAttempts"] = 1  # as botocore says of a resent call
            return answer

    # When
    with OperatorTable(TABLE, LostAnswer()) as table:
        report = table.put_new(ids(60))
    # Then each id counts as written by this run, not as found there
    assert (report.written, report.already_present, report.repeated) == (60, 0, 0)


def test_upload_counts_no_write_for_an_equal_item_another_upload_inserted_first():
    # Given another upload inserting the same ids between this one's read and its INSERTs,
    # in the same millisecond: its items are equal to those this upload sends
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    store = MemoryStore(clock=lambda: instant)
    table = upload_table(store)
    table.handle.clock = lambda: instant
    before_first_insert(table.client, lambda: store.put_new(ids(30)))
    # When
    report = table.put_new(ids(30))
    # Then none counts as written by this upload: the other one wrote them
    assert report.written == 0
    assert report.done == 30 == store.counts()[S.NOT_STARTED]


def test_upload_repeats_far_apart_are_told_apart_from_items_found_there():
    # Given an id already there, and the file repeating ids beyond one batch
    store = MemoryStore()
    store.put_new(ids(1, 500), S.VERIFIED)
    table = upload_table(store)
    # When
    report = table.put_new(ids(250) + ids(1, 500) + ids(50))
    # Then
    assert (report.written, report.repeated, report.kept) == (250, 50, {6: 1})


def test_upload_reads_first_only_while_ids_are_found_there():
    # Given a table holding 100 finished ids, in the middle of the file
    store = MemoryStore()
    store.put_new(ids(100, 500), S.VERIFIED)
    table = OperatorTable(TABLE, memory_dynamodb(store, TABLE), max_workers=1)
    reads = []
    table.client.meta.events.register(
        "before-call.dynamodb.BatchGetItem", lambda **kwargs: reads.append(1)
    )
    # When 700 ids are uploaded one batch of 100 at a time
    report = table.put_new(ids(700))
    # Then the first batch is read, the new ones after it are not; the batch of finished
    # ids is found by its refused INSERTs and read, and so is the batch after it
    assert len(reads) == 3
    assert (report.written, report.kept) == (600, {6: 100})
    assert store.counts()[S.VERIFIED] == 100
