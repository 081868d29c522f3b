"""The provider directory: data access to the DynamoDB table, and its cached read view.

The table has the voicemail solution's shape, so an existing voicemail deployment's table works
unchanged: key ``agentId`` (S), attribute ``extension`` (S), GSI ``AgentExtensionIndex`` on
``extension``, optional ``username``. Other attributes on an item (the voicemail solution keeps its
delivery settings there) are left untouched by every write.

The adapter takes a boto3 DynamoDB *client*; boto3 itself is never imported here, so importing this
module stays cheap for the transform Lambda. Errors carry the operation and AWS error code only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lookup.cache import TTLCache

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AGENT_ID_ATTRIBUTE = "agentId"
EXTENSION_ATTRIBUTE = "extension"
USERNAME_ATTRIBUTE = "username"
EXTENSION_INDEX = "AgentExtensionIndex"
# BatchGetItem reads at most 100 keys per call; TransactWriteItems writes at most 100 items.
BATCH_GET_LIMIT = 100
TRANSACTION_LIMIT = 100

_PROJECTION = {"#a": AGENT_ID_ATTRIBUTE, "#e": EXTENSION_ATTRIBUTE, "#u": USERNAME_ATTRIBUTE}


class DirectoryError(RuntimeError):
    """A DynamoDB call on the directory failed. The message names the operation and error code only."""


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    agent_id: str
    extension: str = ""
    username: str = ""


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, dict):
        return ""
    # The voicemail solution writes strings; a number-typed extension is read as its digits.
    text = value.get("S", value.get("N", ""))
    return text if isinstance(text, str) else ""


def entry_from_item(item: Mapping[str, Any]) -> DirectoryEntry:
    return DirectoryEntry(
        agent_id=_text(item, AGENT_ID_ATTRIBUTE),
        extension=_text(item, EXTENSION_ATTRIBUTE),
        username=_text(item, USERNAME_ATTRIBUTE),
    )


@contextmanager
def _aws_call(operation: str, table: str) -> Iterator[None]:
    """Turns botocore errors into ``DirectoryError`` with no request data in the message."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        raise DirectoryError(f"DynamoDB {operation} on table {table} failed: {code}") from None
    except BotoCoreError as error:
        raise DirectoryError(
            f"DynamoDB {operation} on table {table} failed: {type(error).__name__}"
        ) from None


class DirectoryTable:
    """Data access to the directory table through a boto3 DynamoDB client."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        unprocessed_retries: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self._unprocessed_retries = unprocessed_retries
        self._sleep = sleep

    # --- reads -------------------------------------------------------------------------------------

    def get(self, agent_id: str) -> DirectoryEntry | None:
        with _aws_call("GetItem", self.table_name):
            response = self.client.get_item(
                TableName=self.table_name,
                Key={AGENT_ID_ATTRIBUTE: {"S": agent_id}},
                ProjectionExpression="#a, #e, #u",
                ExpressionAttributeNames=_PROJECTION,
            )
        item = response.get("Item")
        return entry_from_item(item) if item else None

    def find_by_extension(self, extension: str, limit: int = 2) -> list[DirectoryEntry]:
        """Agents holding ``extension`` (at most ``limit``: two are enough to detect a clash)."""
        with _aws_call("Query", self.table_name):
            response = self.client.query(
                TableName=self.table_name,
                IndexName=EXTENSION_INDEX,
                KeyConditionExpression="#e = :e",
                ExpressionAttributeNames={"#e": EXTENSION_ATTRIBUTE},
                ExpressionAttributeValues={":e": {"S": extension}},
                Limit=limit,
            )
        return [entry_from_item(item) for item in response.get("Items", [])]

    def batch_get(self, agent_ids: Iterable[str]) -> dict[str, DirectoryEntry]:
        """Entries of the given agents; one BatchGetItem per 100 distinct ids (plus retries of
        unprocessed keys, with backoff). Unknown agents are absent from the result."""
        distinct = list(dict.fromkeys(agent_ids))
        found: dict[str, DirectoryEntry] = {}
        for start in range(0, len(distinct), BATCH_GET_LIMIT):
            chunk = distinct[start : start + BATCH_GET_LIMIT]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [{AGENT_ID_ATTRIBUTE: {"S": agent_id}} for agent_id in chunk],
                    "ProjectionExpression": "#a, #e, #u",
                    "ExpressionAttributeNames": _PROJECTION,
                }
            }
            attempt = 0
            while request:
                with _aws_call("BatchGetItem", self.table_name):
                    response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    entry = entry_from_item(item)
                    found[entry.agent_id] = entry
                request = dict(response.get("UnprocessedKeys") or {})
                if request:
                    attempt += 1
                    if attempt > self._unprocessed_retries:
                        raise DirectoryError(
                            f"DynamoDB BatchGetItem on table {self.table_name} left keys unprocessed "
                            f"after {self._unprocessed_retries} retries"
                        )
                    self._sleep(min(0.05 * 2**attempt, 2.0))
        return found

    def scan(self) -> Iterator[DirectoryEntry]:
        with _aws_call("Scan", self.table_name):
            paginator = self.client.get_paginator("scan")
            pages = paginator.paginate(
                TableName=self.table_name,
                ProjectionExpression="#a, #e, #u",
                ExpressionAttributeNames=_PROJECTION,
            )
            for page in pages:
                for item in page.get("Items", []):
                    yield entry_from_item(item)

    # --- writes (directory management) -------------------------------------------------------------

    def set_extension(self, agent_id: str, extension: str, username: str | None = None) -> None:
        """Set (or change) an agent's extension, keeping the item's other attributes."""
        with _aws_call("UpdateItem", self.table_name):
            self.client.update_item(**self._update(agent_id, extension, username))

    def set_extensions(self, entries: Sequence[DirectoryEntry]) -> None:
        """Write many entries, 100 per TransactWriteItems (each chunk applies entirely or not at all)."""
        for start in range(0, len(entries), TRANSACTION_LIMIT):
            chunk = entries[start : start + TRANSACTION_LIMIT]
            items: list[Any] = [
                {"Update": self._update(entry.agent_id, entry.extension, entry.username or None)}
                for entry in chunk
            ]
            with _aws_call("TransactWriteItems", self.table_name):
                self.client.transact_write_items(TransactItems=items)

    def remove_extension(self, agent_id: str) -> bool:
        """Remove an agent's extension. The item is deleted when nothing but its name would remain
        (a voicemail deployment's settings on the item are kept). False when the agent is unknown."""
        from botocore.exceptions import ClientError

        with _aws_call("UpdateItem", self.table_name):
            try:
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key={AGENT_ID_ATTRIBUTE: {"S": agent_id}},
                    UpdateExpression="REMOVE #e",
                    ConditionExpression="attribute_exists(#a)",
                    ExpressionAttributeNames={"#a": AGENT_ID_ATTRIBUTE, "#e": EXTENSION_ATTRIBUTE},
                    ReturnValues="ALL_NEW",
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    return False
                raise
        remaining = set(response.get("Attributes", {})) - {AGENT_ID_ATTRIBUTE, USERNAME_ATTRIBUTE}
        if not remaining:
            with _aws_call("DeleteItem", self.table_name):
                try:
                    self.client.delete_item(
                        TableName=self.table_name,
                        Key={AGENT_ID_ATTRIBUTE: {"S": agent_id}},
                        # Someone may have given the agent a new extension meanwhile: keep it then.
                        ConditionExpression="attribute_not_exists(#e)",
                        ExpressionAttributeNames={"#e": EXTENSION_ATTRIBUTE},
                    )
                except ClientError as error:
                    if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                        raise
        return True

    def _update(self, agent_id: str, extension: str, username: str | None) -> dict[str, Any]:
        names = {"#e": EXTENSION_ATTRIBUTE}
        values: dict[str, Any] = {":e": {"S": extension}}
        expression = "SET #e = :e"
        if username:
            names["#u"] = USERNAME_ATTRIBUTE
            values[":u"] = {"S": username}
            expression += ", #u = :u"
        return {
            "TableName": self.table_name,
            "Key": {AGENT_ID_ATTRIBUTE: {"S": agent_id}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }


class CachedDirectory:
    """The read view the Lambdas use: a TTL cache per warm container in front of ``DirectoryTable``."""

    def __init__(
        self,
        table: DirectoryTable,
        cache_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self._by_agent: TTLCache[str, DirectoryEntry | None] = TTLCache(cache_seconds, max_entries, clock)
        self._by_extension: TTLCache[str, tuple[DirectoryEntry, ...]] = TTLCache(
            cache_seconds, max_entries, clock
        )

    def entry_for_agent(self, agent_id: str) -> DirectoryEntry | None:
        hit, entry = self._by_agent.lookup(agent_id)
        if hit:
            return entry
        entry = self.table.get(agent_id)
        self._by_agent.put(agent_id, entry)
        return entry

    def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]:
        hit, entries = self._by_extension.lookup(extension)
        if hit and entries is not None:
            return entries
        found = tuple(self.table.find_by_extension(extension))
        self._by_extension.put(extension, found)
        return found

    def entries_for_agents(self, agent_ids: Iterable[str]) -> dict[str, DirectoryEntry]:
        """Known entries of the given agents: cached ones, then one batched read for the rest."""
        result: dict[str, DirectoryEntry] = {}
        missing: list[str] = []
        for agent_id in dict.fromkeys(agent_ids):
            hit, entry = self._by_agent.lookup(agent_id)
            if not hit:
                missing.append(agent_id)
            elif entry is not None:
                result[agent_id] = entry
        if missing:
            fetched = self.table.batch_get(missing)
            for agent_id in missing:
                entry = fetched.get(agent_id)
                self._by_agent.put(agent_id, entry)
                if entry is not None:
                    result[agent_id] = entry
        return result
