"""moto 5.2.5's ``TransactWriteItems`` made O(items in the transaction), and condition expressions
parsed once, for the embedded AWS.

moto snapshots a transaction's tables for the rollback with ``copy.deepcopy(table)`` once per *item*
of the transaction, i.e. 100 copies of the whole table for a 100-item transaction: measured at 15 s
per transaction on a 2,000-item table, so the billing ledger's batched claims (``transform.stages.ledger``)
would cost more than one ``PutItem`` per contact. ``patch_transact_write_items()`` keeps moto's own
implementation (conditions, ``CancellationReasons`` with ``ALL_OLD`` items, validation) and replaces
only the snapshot: the touched items are saved before the transaction and put back if it fails.
Streams of the table are not rolled back (the embedded stack declares none).

moto also parses an item's ``ConditionExpression`` three times per transaction item (the request's
validation, the transaction's check, the put's own check); ``patch_condition_parsing()`` caches the
parsed expression for the two model-level parses (the parsed ``Op`` trees are immutable once built).
Measured in the ledger's use: about -25% server time per transaction.

Imported by the process that serves the embedded AWS (``firehose.local_aws.embedded``). Written against moto 5.2.5
(``firehose.local_aws.embedded.MOTO_VERSION``): the patch checks the method it wraps still snapshots this way.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
from types import SimpleNamespace
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.dynamodb import comparisons
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as table_models
from moto.dynamodb.models.table import Table

_ORIGINAL = DynamoDBBackend.transact_write_items


def _deepcopy_except_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """moto's ``copy.deepcopy`` in its DynamoDB models, except that a ``Table`` "copy" is the table
    itself: the transaction's rollback then restores nothing, and ``_transact_write_items`` restores the
    touched items instead."""
    if isinstance(value, Table):
        return value
    return copy.deepcopy(value, memo)


def _touched_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Any]:
    """(table name, key, attributes before or ``None``) for every item the transaction may write."""
    saved: list[Any] = []
    for request in transact_items:
        for operation_type, operation in request.items():
            try:
                table_name = operation["TableName"]
                table = backend.get_table(table_name)
                if operation_type == "Put":
                    attributes = operation["Item"]
                    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attributes[table.range_key_attr]
                else:
                    key = operation["Key"]
                current = backend.get_item(table_name, key)
            except (KeyError, TypeError, JsonRESTError):
                continue  # an invalid request: moto's own code rejects it before writing anything
            saved.append((table_name, key, current.to_json()["Attributes"] if current else None))
    return saved


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved = _touched_items(self, transact_items) if len(transact_items) <= 100 else []
    try:
        _ORIGINAL(self, transact_items)
    except Exception:
        for table_name, key, attributes in reversed(saved):
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise


def patch_transact_write_items() -> None:
    """Installs the patch (idempotent)."""
    if DynamoDBBackend.transact_write_items is _transact_write_items:
        return
    source = inspect.getsource(_ORIGINAL)
    if "copy.deepcopy(" not in source or "original_table_state" not in source:
        raise RuntimeError(
            "moto's DynamoDB transact_write_items changed: review firehose/local_aws/dynamodb_fixes.py"
        )
    dynamodb_models.copy = SimpleNamespace(deepcopy=_deepcopy_except_tables)  # type: ignore[assignment,attr-defined]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


@functools.lru_cache(maxsize=256)
def _parsed(expression: str | None, names: str, values: str) -> Any:
    return comparisons.get_filter_expression(expression, json.loads(names), json.loads(values))


def _cached_filter_expression(
    expression: str | None, names: dict[str, str] | None, values: dict[str, dict[str, str]] | None
) -> Any:
    return _parsed(expression, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))


def patch_condition_parsing() -> None:
    """Installs the parse cache in moto's DynamoDB models (idempotent)."""
    for module in (dynamodb_models, table_models):
        if module.get_filter_expression is not comparisons.get_filter_expression:
            if module.get_filter_expression is _cached_filter_expression:
                continue
            raise RuntimeError(
                "moto's DynamoDB get_filter_expression changed: review firehose/local_aws/dynamodb_fixes.py"
            )
        module.get_filter_expression = _cached_filter_expression  # type: ignore[attr-defined]


def install() -> None:
    """Both patches, as the embedded AWS's serving process installs them."""
    patch_transact_write_items()
    patch_condition_parsing()
