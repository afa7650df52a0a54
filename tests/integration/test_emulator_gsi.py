"""The emulator's index queries (devtools/moto_gsi.py) answer as a query of the whole table would:
after every kind of write the workers make, paged, in both orders, with a range condition."""

from __future__ import annotations

import random

import pytest
from botocore.exceptions import ClientError

from grid_reingest.adapters.dynamodb.schema import CHANGED_AT, ID, INDEX_NAME, STATE_SHARD

SHARDS = ["0#0", "0#1", "5#0", "6#3"]
IDS = [f"img{i:03d}" for i in range(120)]


def attrs(rng: random.Random) -> dict:
    """A shard and a time of change; now and then no time (such an item is not indexed),
    and times that tie (the table's key orders them)."""
    item = {STATE_SHARD: {"S": rng.choice(SHARDS)}}
    if rng.random() > 0.1:
        item[CHANGED_AT] = {"S": f"2026-12-08T00:00:{rng.randrange(40):02d}Z"}
    return item


def write(dynamodb, table: str, rng: random.Random) -> None:
    image = rng.choice(IDS)
    key = {ID: {"S": image}}
    kind = rng.randrange(6)
    item = attrs(rng)
    if kind == 0:
        dynamodb.put_item(TableName=table, Item={**key, **item})
        return
    if kind == 1:
        names = {f"#{i}": name for i, name in enumerate(item)}
        values = {f":{i}": value for i, value in enumerate(item.values())}
        sets = ", ".join(f"#{i} = :{i}" for i in range(len(item)))
        try:  # the condition fails for ids not written yet: nothing changes
            dynamodb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=f"SET {sets}",
                ConditionExpression="attribute_exists(#id)",
                ExpressionAttributeNames={**names, "#id": ID},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return
    if kind == 2:
        dynamodb.delete_item(TableName=table, Key=key)
        return
    if kind == 3:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": key,
                        "UpdateExpression": "SET #s = :s REMOVE #c",
                        "ExpressionAttributeNames": {"#s": STATE_SHARD, "#c": CHANGED_AT},
                        "ExpressionAttributeValues": {":s": item[STATE_SHARD]},
                    }
                }
            ]
        )
        return
    if kind == 4:
        other = {ID: {"S": rng.choice(IDS)}}
        requests = [{"PutRequest": {"Item": {**key, **item}}}]
        if other != key:
            requests.append({"DeleteRequest": {"Key": other}})
        dynamodb.batch_write_item(RequestItems={table: requests})
        return
    fields = ", ".join(f"'{name}': ?" for name in [ID, *item])
    dynamodb.batch_execute_statement(
        Statements=[
            {
                "Statement": f'INSERT INTO "{table}" VALUE {{{fields}}}',
                "Parameters": [key[ID], *item.values()],
            }
        ]
    )


def expected(dynamodb, table: str, shard: str, before: str | None, forward: bool) -> list[str]:
    """What the index holds under `shard`, from a Scan of the whole table."""
    items = [
        i
        for page in dynamodb.get_paginator("scan").paginate(TableName=table)
        for i in page["Items"]
        if i.get(STATE_SHARD) == {"S": shard}
        and CHANGED_AT in i
        and (before is None or i[CHANGED_AT]["S"] < before)
    ]
    items.sort(key=lambda i: (i[CHANGED_AT]["S"], i[ID]["S"]), reverse=not forward)
    return [i[ID]["S"] for i in items]


def queried(dynamodb, table: str, shard: str, before: str | None, forward: bool) -> list[str]:
    """The index read page by page, a few items a page."""
    condition, values = f"{STATE_SHARD} = :pk", {":pk": {"S": shard}}
    if before is not None:
        condition += f" AND {CHANGED_AT} < :before"
        values[":before"] = {"S": before}
    request = {
        "TableName": table,
        "IndexName": INDEX_NAME,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": forward,
        "Limit": 7,
    }
    found: list[str] = []
    while True:
        page = dynamodb.query(**request)
        found += [i[ID]["S"] for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return found
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def assert_index_agrees(dynamodb, table: str) -> None:
    for shard in SHARDS:
        for before in (None, "2026-12-08T00:00:20Z"):
            for forward in (True, False):
                want = expected(dynamodb, table, shard, before, forward)
                assert queried(dynamodb, table, shard, before, forward) == want, (shard, before)
        count = dynamodb.query(
            TableName=table,
            IndexName=INDEX_NAME,
            KeyConditionExpression=f"{STATE_SHARD} = :pk",
            ExpressionAttributeValues={":pk": {"S": shard}},
            Select="COUNT",
        )["Count"]
        assert count == len(expected(dynamodb, table, shard, None, True))


@pytest.mark.parametrize("seed", [1, 2])
def test_index_queries_answer_as_the_whole_table_after_every_kind_of_write(
    dynamodb, table_name, seed
):
    rng = random.Random(seed)
    # Written before the first query (the index is built then), then after it
    for _ in range(150):
        write(dynamodb, table_name, rng)
    assert_index_agrees(dynamodb, table_name)
    for _ in range(300):
        write(dynamodb, table_name, rng)
    assert_index_agrees(dynamodb, table_name)
