"""Queries of a global secondary index on moto's server that read the index, not the table.

moto answers a query on a GSI by reading every item of the table, sorting them
all by key with its own type's comparisons (in Python), keeping those under the
asked hash value, and sorting those again: on every call. The workers query the
state table's index all the time (each claim reads the heads of its shards), so
the server's time for one query grows with the table: at 3,000 items queries
took two fifths of the server's core, and at the 24,000 of a pass long enough to
measure a wide Grid they would take all of it.

This keeps, for each table and each GSI with one hash attribute, the keys of the
items under each hash value, brought up to date after every write moto makes
(Table.put_item, Table.delete_item, and the backend's update_item, which changes
an item in place; transactions, batches and PartiQL go through those). A query
on such an index hands moto's own query code only the items under the asked
value, so its filtering, sorting, paging, limits and errors are moto's as before.
Like DynamoDB's own GSIs, the index follows a write just after it, not
atomically with it. Sorting is by the values moto's comparisons compare, in C.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

Key = tuple[DynamoType, DynamoType | None]

_LOCK = threading.Lock()
_QUERY = threading.local()  # the items moto's query is to read, while it runs


class GsiIndex:
    """One table's GSIs: for each index, hash value to its items' keys and sort keys."""

    def __init__(self, table: Table) -> None:
        self.attrs: dict[str, tuple[str, str | None]] = {}  # index: (hash attr, range attr)
        for index in table.global_indexes:
            hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
            ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
            if len(hashes) == 1 and len(ranges) <= 1:
                self.attrs[index.name] = (hashes[0], ranges[0] if ranges else None)
        self.buckets: dict[str, dict[DynamoType, dict[Key, tuple]]] = {n: {} for n in self.attrs}
        self.placed: dict[Key, dict[str, DynamoType]] = {}
        for item in _every_item(table):
            self.place((item.hash_key, item.range_key), item)

    def place(self, key: Key, item: Item | None) -> None:
        """Put the item under its hash values now (None: it is gone)."""
        for name, value in self.placed.pop(key, {}).items():
            bucket = self.buckets[name].get(value)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self.buckets[name][value]
        if item is None:
            return
        values = {}
        for name, (hash_attr, range_attr) in self.attrs.items():
            value = item.attrs.get(hash_attr)
            ranged = item.attrs.get(range_attr) if range_attr else None
            # DynamoDB indexes only the items that hold the index's keys.
            if value is None or not _hashable(value) or (range_attr and ranged is None):
                continue
            self.buckets[name].setdefault(value, {})[key] = _sort_key(ranged, key)
            values[name] = value
        if values:
            self.placed[key] = values

    def page(self, table: Table, name: str, value: DynamoType, ask: Asked) -> list[Item]:
        """The items under `value` in index `name` that moto's query needs to answer `ask`: those
        after its start key that meet its range condition, in the query's order; only as
        many as its limit needs to tell whether there are more."""
        bucket = self.buckets[name].get(value, {})
        ordered = sorted(bucket.items(), key=lambda entry: entry[1], reverse=not ask.forward)
        ranged = self.attrs[name][1]
        start = ask.start_key(ranged, table)
        found: list[Item] = []
        for key, sort_key in ordered:
            if start is not None and (sort_key <= start if ask.forward else sort_key >= start):
                continue
            item = table.get_item(*key)
            # As the item is now, not as last placed: one moto is changing, or that has just
            # left, would be dropped by moto's own check, and a page short of the limit
            # would say there is no more.
            if item is None or not self.holds(item, name, value) or not ask.in_range(item, ranged):
                continue
            found.append(item)
            if ask.enough is not None and len(found) >= ask.enough:
                break
        return found

    def holds(self, item: Item, name: str, value: DynamoType) -> bool:
        """Whether `item` is under `value` in index `name` as it is now."""
        hash_attr, range_attr = self.attrs[name]
        current = item.attrs.get(hash_attr)
        if current is None or current != value:
            return False
        return range_attr is None or item.attrs.get(range_attr) is not None


class Asked:
    """What a query asks, as far as narrowing its candidates goes."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.forward = arguments.get("scan_index_forward", True) is not False
        self.start = arguments.get("exclusive_start_key")
        self.comparison = arguments.get("range_comparison")
        self.objs = arguments.get("range_objs") or []
        conditions = arguments.get("range_key_conditions") or []
        self.range_attr = conditions[-1][0] if conditions else None
        limit = arguments.get("limit")
        # One past the limit tells moto there is more (its LastEvaluatedKey). A QueryFilter
        # (legacy) is applied within moto's limit: then every candidate goes.
        plain = not arguments.get("filter_kwargs") and len(conditions) <= 1
        self.enough = limit + 1 if isinstance(limit, int) and limit > 0 and plain else None

    def start_key(self, range_attr: str | None, table: Table) -> tuple | None:
        if not self.start:
            return None
        ranged = DynamoType(self.start[range_attr]) if range_attr else None
        hash_key = DynamoType(self.start[table.hash_key_attr])
        range_key = DynamoType(self.start[table.range_key_attr]) if table.range_key_attr else None
        return _sort_key(ranged, (hash_key, range_key))

    def in_range(self, item: Item, index_range_attr: str | None) -> bool:
        if not self.comparison:
            return True
        value = item.attrs.get(self.range_attr or index_range_attr or "")
        return value is not None and bool(value.compare(self.comparison, self.objs))


def _sort_key(ranged: DynamoType | None, key: Key) -> tuple:
    """moto's order within one hash value: the index's range key, then the table's keys."""
    hash_key, range_key = key
    return (
        () if ranged is None else (ranged.cast_value,),
        hash_key.cast_value,
        () if range_key is None else (range_key.cast_value,),
    )


def _hashable(value: DynamoType) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _index(table: Table) -> GsiIndex:
    with _LOCK:
        index = table.__dict__.get("_gsi_index")
        if index is None:
            index = GsiIndex(table)
            table.__dict__["_gsi_index"] = index
    return index


def _placed(table: Table, key: Key) -> None:
    """Bring the item of `key` up to date in the table's index, if it has one yet. Under the
    lock that building one holds: a write the build did not see is placed after it."""
    if table.range_key_attr and key[1] is None:
        return
    with _LOCK:
        index = table.__dict__.get("_gsi_index")
        if index is not None:
            index.place(key, table.get_item(*key))


def _key(table: Table, key: dict[str, Any]) -> Key | None:
    """An item's key from an API key map, as the backend's update_item reads it."""
    if table.hash_key_attr not in key:
        return None
    range_attr = table.range_key_attr
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[range_attr]) if range_attr and range_attr in key else None
    return hash_key, range_key


def _query(moto_query: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(moto_query)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        name = arguments.get("index_name")
        conditions = arguments.get("hash_key_conditions") or []
        index = _index(self) if name else None
        attrs = index.attrs.get(name) if index is not None and name else None
        if index is None or attrs is None or len(conditions) != 1 or conditions[0][0] != attrs[0]:
            return moto_query(self, *args, **kwargs)
        with _LOCK:
            candidates = index.page(self, name, conditions[0][1], Asked(arguments))
        _QUERY.reading = (self, candidates)
        try:
            return moto_query(self, *args, **kwargs)
        finally:
            _QUERY.reading = None

    return query


def _all_items(self: Table) -> list[Item]:
    """moto's Table.all_items (the asked index's items while a query of it runs), sorted by
    the values its comparisons compare."""
    reading = getattr(_QUERY, "reading", None)
    if reading is not None and reading[0] is self:
        return list(reading[1])
    return sorted(
        _every_item(self),
        key=lambda x: (
            (x.hash_key.cast_value, x.range_key.cast_value)
            if x.range_key
            else x.hash_key.cast_value
        ),
    )


def _every_item(table: Table) -> list[Item]:
    items: list[Item] = []
    for held in table.items.values():
        if table.range_key_attr:
            items.extend(held.values())  # type: ignore[union-attr]
        else:
            items.append(held)  # type: ignore[arg-type]
    return items


def _sorted_items(
    self: Table, hash_key_attrs: list[str], range_key_attrs: list[str | None], items: list[Item]
) -> list[Item]:
    """moto's Table.sorted_items, on the values its comparisons compare."""
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    items.sort(key=lambda x: tuple(x.attrs[attr].cast_value for attr in attrs))
    return items


def _table_put(moto_put: Callable[..., Item]) -> Callable[..., Item]:
    def put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
        item = moto_put(self, *args, **kwargs)
        _placed(self, (item.hash_key, item.range_key))
        return item

    return put_item


def _table_delete(moto_delete: Callable[..., Item | None]) -> Callable[..., Item | None]:
    def delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Any:
        item = moto_delete(self, hash_key, range_key)
        if item is not None:
            _placed(self, (item.hash_key, item.range_key))
        return item

    return delete_item


def _backend_update(moto_update: Callable[..., Item]) -> Callable[..., Item]:
    def update_item(self: DynamoDBBackend, table_name: str, key: Any, *args: Any, **kw: Any):
        try:
            return moto_update(self, table_name, key, *args, **kw)
        finally:
            # In place, condition failed or not: an update can fail half done.
            table = self.tables.get(table_name)
            at = _key(table, key) if table is not None and isinstance(key, dict) else None
            if table is not None and at is not None:
                _placed(table, at)

    return update_item


def install() -> None:
    """Index the GSIs of this process's moto tables (once)."""
    if getattr(Table.query, "reads_the_index", False):
        return
    query = _query(Table.query)
    query.reads_the_index = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
    Table.sorted_items = _sorted_items  # type: ignore[method-assign]
    Table.put_item = _table_put(Table.put_item)  # type: ignore[method-assign]
    Table.delete_item = _table_delete(Table.delete_item)  # type: ignore[method-assign]
    DynamoDBBackend.update_item = _backend_update(DynamoDBBackend.update_item)  # type: ignore[method-assign]
