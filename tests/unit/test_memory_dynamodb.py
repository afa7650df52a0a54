"""The DynamoDB fakes answer PartiQL INSERTs as DynamoDB documents them, in its response shapes."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

from devtools.memory_dynamodb import memory_dynamodb
from devtools.memory_store import MemoryStore
from devtools.partiql import InsertStatement, PartiqlError
from grid_reingest.adapters.dynamodb.schema import fresh_item
from grid_reingest.domain.states import ProgressState as S

TABLE = "memory-state-table"
MODEL = botocore.session.get_session().get_service_model("dynamodb")


def insert_statement() -> str:
    """A statement of the shape the upload adapter sends."""
    item = ", ".join(f"'{a}': ?" for a in fresh_item("-", S.NOT_STARTED, "-"))
    return f'INSERT INTO "{TABLE}" VALUE {{{item}}}'


def inserts(*image_ids: str) -> list[dict]:
    statement = InsertStatement.parse(insert_statement())
    return [
        {
            "Statement": insert_statement(),
            "Parameters": [
                fresh_item(i, S.NOT_STARTED, "2026-01-01T00:00:00.000Z")[n] for n in statement.names
            ],
        }
        for i in image_ids
    ]


@pytest.mark.parametrize(
    "statement",
    [
        'SELECT * FROM "memory-state-table" WHERE id = ?',
        "INSERT INTO \"memory-state-table\" VALUE {'progress_state': ?}",
        "INSERT INTO \"memory-state-table\" VALUE {'id': 'abc'}",
        "INSERT INTO \"ab\" VALUE {'id': ?}",
        "INSERT INTO \"memory-state-table\" VALUE {'id': ?, 'id': ?}",
    ],
)
def test_insert_statement_refuses_what_it_does_not_model(statement):
    with pytest.raises(PartiqlError):
        InsertStatement.parse(statement)


def test_insert_statement_reads_literals_and_parameters():
    statement = InsertStatement.parse(
        "insert into \"memory-state-table\" value {'id': ?, 'n': -1.5, 's': 'it''s, here'}"
    )
    assert statement.item([{"S": "a"}]) == {
        "id": {"S": "a"},
        "n": {"N": "-1.5"},
        "s": {"S": "it's, here"},
    }
    with pytest.raises(PartiqlError, match="don't match"):
        statement.item([{"S": "a"}, {"S": "b"}])


def test_memory_dynamodb_refuses_an_existing_key_in_that_statement_alone():
    # Given an item that a worker has moved on
    store = MemoryStore()
    store.put_new(["a" * 40], S.VERIFIED)
    client = memory_dynamodb(store, TABLE)
    # When a batch inserts it among new ids, and names a table that is not there
    answer = client.batch_execute_statement(
        Statements=[
            *inserts("b" * 40, "a" * 40, "c" * 40),
            {**inserts("d" * 40)[0], "Statement": insert_statement().replace(TABLE, "elsewhere")},
        ]
    )
    # Then that statement alone is refused, in the service's response shape and codes
    responses = answer.pop("Responses")
    answer.pop("ResponseMetadata")
    shape = MODEL.operation_model("BatchExecuteStatement").output_shape
    validate_parameters({"Responses": responses, **answer}, shape)
    codes = shape.members["Responses"].member.members["Error"].members["Code"].enum
    assert [r.get("Error", {}).get("Code") for r in responses] == [
        None,
        "DuplicateItem",
        None,
        "ResourceNotFound",
    ]
    assert all(r["Error"]["Code"] in codes for r in responses if "Error" in r)
    # And the existing item is as it was
    assert store.get("a" * 40).state == S.VERIFIED
    assert store.get("b" * 40).state == S.NOT_STARTED


def test_memory_dynamodb_conditional_put_returns_the_item_it_did_not_replace():
    store = MemoryStore()
    store.put_new(["a" * 40], S.VERIFIED)
    client = memory_dynamodb(store, TABLE)
    with pytest.raises(ClientError) as refused:
        client.put_item(
            TableName=TABLE,
            Item=fresh_item("a" * 40, S.NOT_STARTED, "now"),
            ConditionExpression="attribute_not_exists(#id)",
            ExpressionAttributeNames={"#id": "id"},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert refused.value.response["Item"]["progress_state"] == {"N": "6"}
    assert store.get("a" * 40).state == S.VERIFIED


def test_memory_dynamodb_batch_get_refuses_repeated_keys_as_dynamodb_does():
    client = memory_dynamodb(MemoryStore(), TABLE)
    with pytest.raises(ClientError, match="duplicates"):
        client.batch_get_item(RequestItems={TABLE: {"Keys": [{"id": {"S": "a"}}] * 2}})


def test_memory_dynamodb_refuses_an_operation_it_does_not_model():
    client = memory_dynamodb(MemoryStore(), TABLE)
    with pytest.raises(ClientError, match="not modelled"):
        client.delete_item(TableName=TABLE, Key={"id": {"S": "a"}})
