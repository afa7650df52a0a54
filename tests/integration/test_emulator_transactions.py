"""The emulator's TransactWriteItems (devtools/moto_transactions.py) answers as DynamoDB does: all
of it or nothing, a cancelled one leaving no item and no stream record behind."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from devtools.local_streams import StreamPoller


def put(table: str, key: str, **condition: str) -> dict:
    return {"Put": {"TableName": table, "Item": {"id": {"S": key}, "n": {"N": "1"}}, **condition}}


def add(table: str, key: str) -> dict:
    return {
        "Update": {
            "TableName": table,
            "Key": {"id": {"S": key}},
            "UpdateExpression": "ADD #n :one",
            "ConditionExpression": "attribute_exists(#id)",
            "ExpressionAttributeNames": {"#n": "n", "#id": "id"},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def records(aws: str, table: str) -> list[dict]:
    seen: list[dict] = []
    StreamPoller(aws, table, lambda event, context: seen.extend(event["Records"])).drain()
    return seen


def test_a_transaction_writes_every_item(dynamodb, table_name, aws):
    dynamodb.put_item(TableName=table_name, Item={"id": {"S": "a"}, "n": {"N": "1"}})
    dynamodb.transact_write_items(TransactItems=[add(table_name, "a"), put(table_name, "b")])
    a = dynamodb.get_item(TableName=table_name, Key={"id": {"S": "a"}})["Item"]
    assert a["n"] == {"N": "2"}
    assert "Item" in dynamodb.get_item(TableName=table_name, Key={"id": {"S": "b"}})
    assert [r["eventName"] for r in records(aws, table_name)] == ["INSERT", "MODIFY", "INSERT"]


def test_a_failed_condition_cancels_the_whole_transaction_and_leaves_no_record(
    dynamodb, table_name, aws
):
    # Given an item, and a transaction whose second condition fails (its marker exists)
    dynamodb.put_item(TableName=table_name, Item={"id": {"S": "a"}, "n": {"N": "1"}})
    dynamodb.put_item(TableName=table_name, Item={"id": {"S": "m"}, "n": {"N": "1"}})
    before = len(records(aws, table_name))
    marker = put(
        table_name,
        "m",
        ConditionExpression="attribute_not_exists(#id)",
        ExpressionAttributeNames={"#id": "id"},
    )
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=[add(table_name, "a"), marker])
    # Then it is cancelled with a reason for each item, and nothing of it was written
    error = refused.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    codes = [reason["Code"] for reason in error["CancellationReasons"]]
    assert codes == ["None", "ConditionalCheckFailed"]
    a = dynamodb.get_item(TableName=table_name, Key={"id": {"S": "a"}})["Item"]
    assert a["n"] == {"N": "1"}
    assert len(records(aws, table_name)) == before


def test_a_transaction_naming_one_item_twice_is_refused(dynamodb, table_name):
    dynamodb.put_item(TableName=table_name, Item={"id": {"S": "a"}, "n": {"N": "1"}})
    with pytest.raises(ClientError, match="multiple operations on one item"):
        dynamodb.transact_write_items(TransactItems=[add(table_name, "a"), put(table_name, "a")])
    a = dynamodb.get_item(TableName=table_name, Key={"id": {"S": "a"}})["Item"]
    assert a["n"] == {"N": "1"}
