"""TransactWriteItems on moto's server without a copy of every table it touches.

moto backs up each table a transaction names with `copy.deepcopy` before writing,
to roll back if a condition fails: the whole table, its items and every stream
record it ever made. That grows with the pass: at 1,200 images the tally's
transactions (adapters/dynamodb/tally.py) took 300 ms of the server's core each,
two thirds of all it did, and set the pace of a local pass. DynamoDB checks a
transaction's conditions before it writes anything, so a cancelled one leaves
no item and no stream record behind; this does the same: every condition first,
then the writes, under one lock (atomic against other transactions, not against
moto's other writes, which are not atomic themselves). No copy, no rollback.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend

OPERATIONS = ("ConditionCheck", "Put", "Delete", "Update")
MAX_ITEMS = 100
_TRANSACTIONS = threading.Lock()

Reason = tuple[str | None, str | None, dict[str, Any] | None]


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """All of the transaction's writes, or none when a condition fails (TransactionCanceled,
    a reason for each item, as DynamoDB answers)."""
    if len(transact_items) > MAX_ITEMS:
        raise TooManyTransactionsException()
    operations = [_operation(item) for item in transact_items]
    _check_unique(self, operations)
    with _TRANSACTIONS:
        reasons = [_condition(self, op_type, op) for op_type, op in operations]
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
        for op_type, op in operations:
            _write(self, op_type, op)


def _operation(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if len(item) != 1:
        raise TransactWriteSingleOpException
    op_type, op = next(iter(item.items()))
    if op_type not in OPERATIONS:
        raise ValueError(f"Unsupported transaction operation: {op_type}")
    return op_type, op


def _key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    attributes = op["Item"]
    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attributes[table.range_key_attr]
    return key


def _condition(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> Reason:
    """Why this item cancels the transaction, or (None, None, None)."""
    expression = op.get("ConditionExpression")
    if expression is None:
        return None, None, None
    current = backend.get_item(op["TableName"], _key(backend, op_type, op))
    condition = get_filter_expression(
        expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    )
    if condition.expr(current):
        return None, None, None
    old = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old = current.to_json()["Attributes"]
    return "ConditionalCheckFailed", "The conditional request failed", old


def _write(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> None:
    # The condition goes along (already met): moto refuses expression values it sees unused.
    common = {
        "expression_attribute_names": op.get("ExpressionAttributeNames"),
        "expression_attribute_values": op.get("ExpressionAttributeValues"),
        "condition_expression": op.get("ConditionExpression"),
    }
    if op_type == "Put":
        backend.put_item(op["TableName"], op["Item"], **common)
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], op["Key"], **common)
    elif op_type == "Update":
        backend.update_item(
            op["TableName"], op["Key"], update_expression=op["UpdateExpression"], **common
        )


def _check_unique(backend: DynamoDBBackend, operations: list[tuple[str, dict[str, Any]]]) -> None:
    """DynamoDB refuses a transaction that names one item twice."""
    seen = set()
    for op_type, op in operations:
        key = (op["TableName"], str(sorted(_key(backend, op_type, op).items())))
        if key in seen:
            raise MultipleTransactionsException()
        seen.add(key)
