"""An in-memory DynamoDB client with the service's key rules, for fuzzing the ledger and directory stages.

Only what the transform's stages call (``batch_get_item``, ``transact_write_items``), and only the rules
record content can break: a string key must be non-empty and at most 2,048 bytes of UTF-8, or the call
fails with ``ValidationException`` — as DynamoDB fails it, for the whole call. Conditional puts honour
``attribute_not_exists`` of the key, with ``CancellationReasons`` like the service's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

MAX_KEY_BYTES = 2048
KEYS = {"contactId", "agentId"}


class KeyLimitedDynamoDB:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}

    def batch_get_item(self, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        responses: dict[str, list[dict[str, Any]]] = {}
        for table, request in RequestItems.items():
            items = self.tables.get(table, {})
            found = []
            for key in request["Keys"]:
                value = _key(key, "BatchGetItem")
                if value in items:
                    found.append(items[value])
            responses[table] = found
        return {"Responses": responses, "UnprocessedKeys": {}}

    def transact_write_items(self, TransactItems: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        puts = [(item["Put"]["TableName"], item["Put"]["Item"]) for item in TransactItems]
        keys = [_key(entry, "TransactWriteItems") for _, entry in puts]
        reasons = [
            {"Code": "ConditionalCheckFailed", "Item": self.tables.get(table, {})[key]}
            if key in self.tables.get(table, {})
            else {"Code": "None"}
            for (table, _), key in zip(puts, keys, strict=True)
        ]
        if any(reason["Code"] != "None" for reason in reasons):
            error = ClientError(
                {"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}},
                "TransactWriteItems",
            )
            error.response["CancellationReasons"] = reasons  # type: ignore[typeddict-unknown-key]
            raise error
        for (table, entry), key in zip(puts, keys, strict=True):
            self.tables.setdefault(table, {})[key] = dict(entry)
        return {}


def _key(item: Mapping[str, Any], operation: str) -> str:
    name = next(name for name in item if name in KEYS)
    value = item[name]["S"]
    if not value or len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ClientError(
            {
                "Error": {
                    "Code": "ValidationException",
                    "Message": "One or more parameter values were invalid: key size out of range",
                }
            },
            operation,
        )
    return str(value)
