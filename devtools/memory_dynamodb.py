"""A DynamoDB client whose table is the in-memory store: botocore up to the wire, no socket.

The upload adapter speaks DynamoDB's API; racing it against the workers (or
against another upload) needs a table whose item writes are atomic under
threads, which moto's server's are not. This is a real botocore client — its
serialising, parameter validation, error parsing and retries are botocore's —
whose requests a `before-send` hook answers from a MemoryStore, where every
item operation holds one lock. The workers claim on the same store.

Answered, as DynamoDB answers them: DescribeTable; BatchGetItem (at most 100
distinct keys, projections); BatchExecuteStatement of PartiQL `INSERT`s
(devtools/partiql.py: an existing key refuses that statement alone with
`DuplicateItem`); PutItem with a condition of `attribute_not_exists(a)` and
`a = :v` terms joined by AND, `ReturnValuesOnConditionCheckFailure`. Anything
else is refused as not modelled, never guessed at. Faults (whole calls
throttled, statements refused with `ThrottlingError`) come from the same
`Faults` as the test proxy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from devtools.aws_proxy import Faults
from devtools.memory_store import Item, MemoryStore
from devtools.partiql import InsertStatement, PartiqlError, statement_error
from grid_reingest.adapters.aws import client_config
from grid_reingest.adapters.dynamodb.schema import (
    ATTEMPTS,
    BATCH_GET_MAX,
    CHANGED_AT,
    CHECK_FIRST,
    CLAIMED_BY,
    CLAIMED_FROM,
    ID,
    INDEX_NAME,
    LAST_ERROR,
    PASS,
    REPROJECTED,
    STATE,
    STATE_NAME,
    STATE_SHARD,
    shard_of,
    state_shard,
)
from grid_reingest.domain.states import ProgressState

_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_NOT_EXISTS = re.compile(r"attribute_not_exists\((?P<name>[#\w]+)\)")
_EQUALS = re.compile(r"(?P<name>[#\w]+) = (?P<value>:\w+)")


class _Refusal(Exception):
    """An error DynamoDB answers a whole call with (HTTP 400)."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


def memory_dynamodb(
    store: MemoryStore,
    table: str = "memory-state-table",
    *,
    faults: Faults | None = None,
    max_pool_connections: int = 16,
) -> Any:
    """A botocore DynamoDB client whose table `table` is `store`."""
    client = boto3.session.Session().client(
        "dynamodb",
        region_name="eu-west-1",
        endpoint_url="http://memory.invalid",
        aws_access_key_id="memory",
        aws_secret_access_key="memory",  # noqa: S106 - never sent anywhere
        config=client_config(max_pool_connections),
    )
    client.meta.events.register("before-send.dynamodb", _Front(store, table, faults).answer)
    return client


class _Body:
    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._payload


class _Front:
    """Reads one request, answers it from the store."""

    def __init__(self, store: MemoryStore, table: str, faults: Faults | None) -> None:
        self.store = store
        self.table = table
        self.faults = faults or Faults(targets=())

    def answer(self, request: Any, **kwargs: Any) -> AWSResponse:
        target = request.headers["X-Amz-Target"].decode().split(".")[-1]
        body = json.loads(request.body or b"{}")
        fault = self.faults.draw(target)
        try:
            if fault == "throttle":
                raise _Refusal("ThrottlingException", "Rate exceeded (injected)")
            handler = getattr(self, f"_{target}", None)
            if handler is None:
                raise _Refusal("UnknownOperationException", f"{target} is not modelled")
            status, payload = 200, handler(body, fault)
        except _Refusal as refusal:
            status = 400
            payload = {"__type": _PREFIX + refusal.code, "message": str(refusal), **refusal.extra}
        return AWSResponse(
            request.url,
            status,
            {"Content-Type": "application/x-amz-json-1.0"},
            _Body(json.dumps(payload).encode()),
        )

    def _table(self, name: str) -> None:
        if name != self.table:
            raise _Refusal("ResourceNotFoundException", f"Requested resource not found: {name}")

    def _DescribeTable(self, body: dict, fault: str | None) -> dict:
        self._table(body["TableName"])
        return {
            "Table": {
                "TableName": self.table,
                "TableStatus": "ACTIVE",
                "KeySchema": [{"AttributeName": ID, "KeyType": "HASH"}],
                "GlobalSecondaryIndexes": [{"IndexName": INDEX_NAME, "IndexStatus": "ACTIVE"}],
            }
        }

    def _BatchGetItem(self, body: dict, fault: str | None) -> dict:
        ((name, wanted),) = body["RequestItems"].items()
        self._table(name)
        keys = [key[ID]["S"] for key in wanted["Keys"]]
        if len(keys) > BATCH_GET_MAX:
            raise _Refusal("ValidationException", "Too many items requested for the BatchGetItem")
        if len(set(keys)) != len(keys):
            raise _Refusal("ValidationException", "Provided list of item keys contains duplicates")
        names = wanted.get("ExpressionAttributeNames", {})
        projection = wanted.get("ProjectionExpression")
        keep = (
            None
            if projection is None
            else {names.get(p.strip(), p.strip()) for p in projection.split(",")}
        )
        found = self.store.read_items(keys)
        items = []
        for item in found.values():
            attributes = _attributes(item)
            if keep is not None:
                attributes = {k: v for k, v in attributes.items() if k in keep}
            items.append(attributes)
        return {"Responses": {name: items}, "UnprocessedKeys": {}}

    def _BatchExecuteStatement(self, body: dict, fault: str | None) -> dict:
        statements = body["Statements"]
        refused = self.faults.pick(len(statements)) if fault == "partial" else set()
        answers = []
        for n, entry in enumerate(statements):
            if n in refused:
                answers.append(statement_error("ThrottlingError", "Rate exceeded (injected)"))
                continue
            try:
                insert = InsertStatement.parse(entry["Statement"])
                item = _item(insert.item(entry.get("Parameters", [])))
            except (PartiqlError, _Refusal) as error:
                answers.append(statement_error("ValidationError", str(error)))
                continue
            if insert.table != self.table:
                answers.append(statement_error("ResourceNotFound", "Requested resource not found"))
            elif self.store.insert(item):
                answers.append({"TableName": self.table})
            else:
                answers.append(
                    statement_error("DuplicateItem", "Duplicate primary key exists in table")
                )
        return {"Responses": answers}

    def _PutItem(self, body: dict, fault: str | None) -> dict:
        self._table(body["TableName"])
        item = _item(body["Item"])
        condition = body.get("ConditionExpression")
        names = body.get("ExpressionAttributeNames", {})
        values = body.get("ExpressionAttributeValues", {})
        terms = (
            [] if condition is None else [_term(t, names, values) for t in condition.split(" AND ")]
        )

        def holds(current: Item | None) -> bool:
            attributes = {} if current is None else _attributes(current)
            return all(term(attributes) for term in terms)

        written, before = self.store.put_if(item, holds)
        if not written:
            extra = {}
            if before is not None and body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD":
                extra["Item"] = _attributes(before)
            raise _Refusal(
                "ConditionalCheckFailedException", "The conditional request failed", **extra
            )
        return {}


def _term(text: str, names: dict[str, str], values: dict[str, Any]) -> Any:
    """One term of a condition, as a test of an item's attributes."""
    text = text.strip()
    if match := _NOT_EXISTS.fullmatch(text):
        name = names.get(match["name"], match["name"])
        return lambda attributes: name not in attributes
    if match := _EQUALS.fullmatch(text):
        name = names.get(match["name"], match["name"])
        value = values[match["value"]]
        return lambda attributes: attributes.get(name) == value
    raise _Refusal("ValidationException", f"condition term not modelled: {text!r}")


def _attributes(item: Item) -> dict[str, Any]:
    """The DynamoDB item of a stored Item."""
    attributes: dict[str, Any] = {
        ID: {"S": item.id},
        STATE: {"N": str(int(item.state))},
        STATE_NAME: {"S": item.state_name},
        STATE_SHARD: {"S": state_shard(item.state, shard_of(item.id))},
        CHANGED_AT: {"S": item.changed_at},
        ATTEMPTS: {"N": str(item.attempts)},
    }
    if item.last_error is not None:
        attributes[LAST_ERROR] = {"S": item.last_error}
    if item.claimed_by is not None:
        attributes[CLAIMED_BY] = {"S": item.claimed_by}
    if item.claimed_from is not None:
        attributes[CLAIMED_FROM] = {"N": str(int(item.claimed_from))}
    if item.pass_id is not None:
        attributes[PASS] = {"S": item.pass_id}
    if item.check_first:
        attributes[CHECK_FIRST] = {"N": "1"}
    if item.reprojected:
        attributes[REPROJECTED] = {"N": "1"}
    return attributes


def _item(attributes: dict[str, Any]) -> Item:
    """A DynamoDB item as the store holds it; refused if the store cannot hold it as it is."""
    required = (ID, STATE, STATE_NAME, CHANGED_AT, ATTEMPTS)
    known = {*required, STATE_SHARD, LAST_ERROR, CLAIMED_BY, CLAIMED_FROM}
    known |= {PASS, CHECK_FIRST, REPROJECTED}
    if missing := [a for a in required if a not in attributes]:
        raise _Refusal("ValidationException", f"not modelled: an item without {missing}")
    if unknown := set(attributes) - known:
        raise _Refusal("ValidationException", f"not modelled: attributes {sorted(unknown)}")
    try:
        state = ProgressState(int(attributes[STATE]["N"]))
        claimed_from = attributes.get(CLAIMED_FROM)
        item = Item(
            id=attributes[ID]["S"],
            state=state,
            state_name=attributes[STATE_NAME]["S"],
            changed_at=attributes[CHANGED_AT]["S"],
            attempts=int(attributes[ATTEMPTS]["N"]),
            last_error=attributes.get(LAST_ERROR, {}).get("S"),
            claimed_by=attributes.get(CLAIMED_BY, {}).get("S"),
            claimed_from=None if claimed_from is None else ProgressState(int(claimed_from["N"])),
            pass_id=attributes.get(PASS, {}).get("S"),
            check_first=CHECK_FIRST in attributes,
            reprojected=REPROJECTED in attributes,
        )
    except (KeyError, ValueError) as error:
        raise _Refusal("ValidationException", f"not modelled: {error}") from None
    shard = attributes.get(STATE_SHARD, {}).get("S")
    if shard is not None and shard != state_shard(state, shard_of(item.id)):
        raise _Refusal("ValidationException", f"state_shard {shard!r} is not the id's shard")
    return item
