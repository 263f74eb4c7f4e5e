"""DynamoDB transactions in the local stack's moto at the cost of the items they touch.

moto backs up every table a TransactWriteItems names with a deep copy, once per item of the
transaction, so that it can roll back a cancelled one. A warm execute ends with a three-item
transaction (docs/decisions/0011-round-trips.md), so each execute copied the whole sessions table
three times: executes slowed as `make dev`'s table grew (each one adds an execution record).

Installed in the moto server (one request at a time, so nothing else changes the table meanwhile):
the transaction copies only the items it touches, and a failed one puts exactly those back. moto
still decides everything else: conditions, cancellation reasons, validation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

TouchedKey = tuple[str, DynamoType, DynamoType | None]
Transact = Callable[[DynamoDBBackend, list[dict[str, Any]]], None]


class TablesUncopied:
    """Stands in for the `copy` module inside moto's DynamoDB backend, whose only deep copies are
    a transaction's table backups (returned as they are: the undo log below replaces them) and
    an item's before-image (copied as before)."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def with_undo_log(transact: Transact) -> Transact:
    """`transact` (moto's transact_write_items) that saves the items it will touch and, if it
    raises, puts them back as they were (an item it created is removed)."""

    def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        saved = {key: copy.deepcopy(_item(backend, key)) for key in _touched_keys(backend, transact_items)}
        try:
            transact(backend, transact_items)
        except Exception:
            for key, item in saved.items():
                _put_back(backend, key, item)
            raise

    return transact_write_items


def install() -> None:
    dynamodb_models.copy = TablesUncopied  # type: ignore[assignment]
    DynamoDBBackend.transact_write_items = with_undo_log(DynamoDBBackend.transact_write_items)  # type: ignore[method-assign]


def _touched_keys(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[TouchedKey]:
    keys: list[TouchedKey] = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        attributes = operation.get("Key") or operation.get("Item") or {}
        if table is None or table.hash_key_attr not in attributes:
            continue  # moto refuses it before changing anything
        range_value = attributes.get(table.range_key_attr) if table.range_key_attr else None
        if table.range_key_attr and range_value is None:
            continue
        keys.append(
            (
                table.name,
                DynamoType(attributes[table.hash_key_attr]),
                DynamoType(range_value) if range_value is not None else None,
            )
        )
    return keys


def _item(backend: DynamoDBBackend, key: TouchedKey) -> Any:
    table_name, hash_value, range_value = key
    return backend.tables[table_name].get_item(hash_value, range_value)


def _put_back(backend: DynamoDBBackend, key: TouchedKey, item: Any) -> None:
    table_name, hash_value, range_value = key
    items = backend.tables[table_name].items
    if range_value is None:
        if item is None:
            items.pop(hash_value, None)
        else:
            items[hash_value] = item
        return
    if item is not None:
        items[hash_value][range_value] = item
        return
    ranged = items.get(hash_value)
    if ranged is not None:
        ranged.pop(range_value, None)
        if not ranged:
            items.pop(hash_value, None)
