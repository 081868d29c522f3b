"""The provider directory: data access to the DynamoDB table, and its cached read view.

The table has the voicemail solution's shape, so an existing voicemail deployment's table works
unchanged: key ``agentId`` (S), attribute ``extension`` (S), GSI ``AgentExtensionIndex`` on
``extension``, optional ``username``. Every write also sets ``userId`` to the agent id, as that
solution's own writes do (``createAgentCreateParam`` in
amazon-connect/voicemail-for-amazon-connect source/aws-connect-vm-serverless/src/repo/users-repo.js
writes ``{...agent, agentId: agent.userId}``): its nightly ConnectSync matches rows on ``userId``
(``syncConnectAgents`` in .../src/service/connect-agent.service.js) and replaces, without the
extension, a row that lacks it. Other attributes on an item (the voicemail solution keeps its per-agent
settings there) are left untouched by every write; ``transcribeVoicemail`` and ``encryptVoicemail``
are read, for the voicemail hand-off.

The adapter takes a boto3 DynamoDB *client*; boto3 itself is never imported here, so importing this
module stays cheap for the transform Lambda. Errors carry the operation and AWS error code only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lookup.cache import TTLCache

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AGENT_ID_ATTRIBUTE = "agentId"
EXTENSION_ATTRIBUTE = "extension"
USERNAME_ATTRIBUTE = "username"
USER_ID_ATTRIBUTE = "userId"
# Per-agent voicemail settings the voicemail solution's portal writes (BOOL; users-repo.js
# updateAgentById) and its lookup hands to the flow as "true"/"false" (src/handler/agents.js).
TRANSCRIBE_ATTRIBUTE = "transcribeVoicemail"
ENCRYPT_ATTRIBUTE = "encryptVoicemail"
EXTENSION_INDEX = "AgentExtensionIndex"
# BatchGetItem reads at most 100 keys per call; TransactWriteItems writes at most 100 items.
BATCH_GET_LIMIT = 100
TRANSACTION_LIMIT = 100

# What the directory reads of an item; a request carries only the name placeholders its expressions use.
_PROJECTION = {
    "#a": AGENT_ID_ATTRIBUTE,
    "#e": EXTENSION_ATTRIBUTE,
    "#u": USERNAME_ATTRIBUTE,
    "#i": USER_ID_ATTRIBUTE,
}
_PROJECTION_EXPRESSION = "#a, #e, #u, #i"


class DirectoryError(RuntimeError):
    """A DynamoDB call on the directory failed. The message names the operation and error code only."""


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """An agent's directory attributes. The voicemail settings travel along when a read returns them
    (the extension index projects every attribute) but are not part of an entry's identity: the
    directory's writes and their conflict checks are about ``extension`` and ``username`` only."""

    agent_id: str
    extension: str = ""
    username: str = ""
    # As read ("" when the item has none), so a rollback can put an item back exactly as it was.
    user_id: str = field(default="", compare=False)
    transcribe_voicemail: bool = field(default=False, compare=False)
    encrypt_voicemail: bool = field(default=False, compare=False)


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, dict):
        return ""
    # The voicemail solution writes strings; a number-typed extension is read as its digits.
    text = value.get("S", value.get("N", ""))
    return text if isinstance(text, str) else ""


def _flag(item: Mapping[str, Any], name: str) -> bool:
    """The voicemail solution writes BOOL; a string "true" (any case) is read as true too. Absent is
    false, the solution's own default (``Agent`` in src/domain/agent.domain.js)."""
    value = item.get(name)
    if not isinstance(value, dict):
        return False
    if "BOOL" in value:
        return value["BOOL"] is True
    text = value.get("S")
    return isinstance(text, str) and text.strip().lower() == "true"


def entry_from_item(item: Mapping[str, Any]) -> DirectoryEntry:
    return DirectoryEntry(
        agent_id=_text(item, AGENT_ID_ATTRIBUTE),
        extension=_text(item, EXTENSION_ATTRIBUTE),
        username=_text(item, USERNAME_ATTRIBUTE),
        user_id=_text(item, USER_ID_ATTRIBUTE),
        transcribe_voicemail=_flag(item, TRANSCRIBE_ATTRIBUTE),
        encrypt_voicemail=_flag(item, ENCRYPT_ATTRIBUTE),
    )


@dataclass(frozen=True, slots=True)
class EntryChange:
    """An entry to write, and its item as it was when the change was checked (None: no item)."""

    entry: DirectoryEntry
    before: DirectoryEntry | None

    @property
    def after(self) -> DirectoryEntry:
        """The item's directory attributes once written: an empty username keeps the prior one."""
        username = self.entry.username or (self.before.username if self.before else "")
        return DirectoryEntry(self.entry.agent_id, self.entry.extension, username)


class ChangesNotApplied(DirectoryError):
    """``apply_changes`` failed. ``failed`` holds the positions of the changes whose transaction
    failed, ``changed_agents`` the agents whose items no longer matched their checked state,
    ``rolled_back`` how many changes had been committed before, ``not_restored`` the agents whose
    items could not be put back (their change stays written)."""

    def __init__(
        self,
        reason: str,
        *,
        failed: range,
        total: int,
        changed_agents: tuple[str, ...],
        rolled_back: int,
        not_restored: tuple[str, ...],
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed = failed
        self.total = total
        self.changed_agents = changed_agents
        self.rolled_back = rolled_back
        self.not_restored = not_restored


class _ChunkFailed(Exception):
    def __init__(
        self, reason: str, *, changed_agents: tuple[str, ...] = (), outcome_unknown: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.changed_agents = changed_agents
        self.outcome_unknown = outcome_unknown


# Worth another attempt: the transaction was throttled or lost a race with another transaction,
# and its conditions are evaluated afresh next time.
_TRANSIENT_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)
_TRANSIENT_REASONS = frozenset({"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"})


def _transient(code: str, reasons: Sequence[str]) -> bool:
    if code in _TRANSIENT_CODES:
        return True
    failing = {reason for reason in reasons if reason != "None"}
    return code == "TransactionCanceledException" and bool(failing) and failing <= _TRANSIENT_REASONS


def _state_condition(state: DirectoryEntry | None, tag: str) -> tuple[str, dict[str, Any]]:
    """A condition that holds when the item's directory attributes are exactly ``state``
    (None: no item). Value placeholders are ``:<tag>e`` and ``:<tag>u``."""
    if state is None:
        return "attribute_not_exists(#a)", {}
    parts = ["attribute_exists(#a)"]
    values: dict[str, Any] = {}
    if state.extension:
        parts.append(f"#e = :{tag}e")
        values[f":{tag}e"] = {"S": state.extension}
    else:
        parts.append("attribute_not_exists(#e)")
    if state.username:
        parts.append(f"#u = :{tag}u")
        values[f":{tag}u"] = {"S": state.username}
    else:
        parts.append(f"(attribute_not_exists(#u) OR #u = :{tag}n)")
        values[f":{tag}n"] = {"S": ""}
    return " AND ".join(parts), values


def _names_in(*expressions: str) -> dict[str, str]:
    """The attribute-name placeholders the expressions use (DynamoDB rejects unused ones)."""
    return {name: value for name, value in _PROJECTION.items() if any(name in text for text in expressions)}


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
                ProjectionExpression=_PROJECTION_EXPRESSION,
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
                    "ProjectionExpression": _PROJECTION_EXPRESSION,
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
                    self._back_off(attempt)
        return found

    def _back_off(self, attempt: int) -> None:
        """Sleep before retry ``attempt`` of a throttled or partly processed call: exponential, capped."""
        self._sleep(min(0.05 * 2**attempt, 2.0))

    def scan(self) -> Iterator[DirectoryEntry]:
        with _aws_call("Scan", self.table_name):
            paginator = self.client.get_paginator("scan")
            pages = paginator.paginate(
                TableName=self.table_name,
                ProjectionExpression=_PROJECTION_EXPRESSION,
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

    def apply_changes(self, changes: Sequence[EntryChange]) -> None:
        """Write many entries as one change: 100 per TransactWriteItems (each chunk applies entirely
        or not at all), every item conditional on the state it was checked in, so a concurrent
        change fails the write instead of being overwritten. When a chunk fails, the chunks already
        committed are rolled back item by item; ``ChangesNotApplied`` says what failed and what,
        if anything, could not be restored. Throttled or conflicting transactions are retried with
        backoff (the conditions are checked again on every attempt)."""
        committed: list[EntryChange] = []
        for start in range(0, len(changes), TRANSACTION_LIMIT):
            chunk = changes[start : start + TRANSACTION_LIMIT]
            try:
                self._transact(chunk)
            except _ChunkFailed as failure:
                # A failure of unknown outcome (a 5xx, a lost connection) may have committed.
                touched = [*committed, *chunk] if failure.outcome_unknown else committed
                not_restored = [change.entry.agent_id for change in touched if not self._restore(change)]
                raise ChangesNotApplied(
                    failure.reason,
                    failed=range(start, start + len(chunk)),
                    total=len(changes),
                    changed_agents=failure.changed_agents,
                    rolled_back=len(committed),
                    not_restored=tuple(not_restored),
                ) from None
            committed.extend(chunk)

    def _transact(self, chunk: Sequence[EntryChange]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        items: list[Any] = [{"Update": self._conditional_update(change)} for change in chunk]
        attempt = 0
        while True:
            try:
                # The token makes botocore's own retries of this request idempotent.
                self.client.transact_write_items(TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
                return
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "Unknown")
                reasons = [
                    str(reason.get("Code") or "None")
                    for reason in error.response.get("CancellationReasons", [])
                ]
                if _transient(code, reasons) and attempt < self._unprocessed_retries:
                    attempt += 1
                    self._back_off(attempt)
                    continue
                detail = sorted({reason for reason in reasons if reason != "None"})
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
                raise _ChunkFailed(
                    f"DynamoDB TransactWriteItems on table {self.table_name} failed: {code}"
                    + (f" ({', '.join(detail)})" if detail else ""),
                    changed_agents=tuple(
                        change.entry.agent_id
                        for change, reason in zip(chunk, reasons, strict=False)
                        if reason == "ConditionalCheckFailed"
                    ),
                    outcome_unknown=status >= 500,
                ) from None
            except BotoCoreError as error:
                raise _ChunkFailed(
                    f"DynamoDB TransactWriteItems on table {self.table_name} failed: {type(error).__name__}",
                    outcome_unknown=True,
                ) from None

    def _conditional_update(self, change: EntryChange) -> dict[str, Any]:
        entry = change.entry
        update = self._update(entry.agent_id, entry.extension, entry.username or None)
        condition, values = _state_condition(change.before, "b")
        update["ConditionExpression"] = condition
        update["ExpressionAttributeValues"].update(values)
        update["ExpressionAttributeNames"] = _names_in(update["UpdateExpression"], condition)
        return update

    def _restore(self, change: EntryChange) -> bool:
        """Put an item back as it was before ``change``, if it is still as ``change`` wrote it.
        True when the item is (again) in its prior state."""
        from botocore.exceptions import BotoCoreError, ClientError

        condition, values = _state_condition(change.after, "w")
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {AGENT_ID_ATTRIBUTE: {"S": change.entry.agent_id}},
            "ConditionExpression": condition,
        }
        before = change.before
        try:
            if before is None:
                request["ExpressionAttributeNames"] = _names_in(condition)
                if values:
                    request["ExpressionAttributeValues"] = values
                self.client.delete_item(**request)
            else:
                assignments: list[str] = []
                removals: list[str] = []
                for name, prior, changed in (
                    ("#e", before.extension, True),
                    ("#u", before.username, bool(change.entry.username)),
                    ("#i", before.user_id, True),  # every write sets userId
                ):
                    if changed and prior:
                        assignments.append(f"{name} = :p{name[1]}")
                        values[f":p{name[1]}"] = {"S": prior}
                    elif changed:
                        removals.append(name)
                expression = " ".join(
                    clause
                    for clause in (
                        f"SET {', '.join(assignments)}" if assignments else "",
                        f"REMOVE {', '.join(removals)}" if removals else "",
                    )
                    if clause
                )
                request["UpdateExpression"] = expression
                request["ExpressionAttributeNames"] = _names_in(expression, condition)
                request["ExpressionAttributeValues"] = values
                self.client.update_item(**request)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                return False
        except BotoCoreError:
            return False
        # Not as this change wrote it: never written (a chunk of unknown outcome), or changed since.
        try:
            response = self.client.get_item(
                TableName=self.table_name,
                Key={AGENT_ID_ATTRIBUTE: {"S": change.entry.agent_id}},
                ProjectionExpression=_PROJECTION_EXPRESSION,
                ExpressionAttributeNames=_PROJECTION,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError):
            return False
        item = response.get("Item")
        return (entry_from_item(item) if item else None) == before

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
        # userId and username are what the voicemail's sync would write back for any Connect user.
        remaining = set(response.get("Attributes", {})) - {
            AGENT_ID_ATTRIBUTE,
            USER_ID_ATTRIBUTE,
            USERNAME_ATTRIBUTE,
        }
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
        # userId = agentId: the key the voicemail's nightly sync matches rows on (module docstring).
        names = {"#e": EXTENSION_ATTRIBUTE, "#i": USER_ID_ATTRIBUTE}
        values: dict[str, Any] = {":e": {"S": extension}, ":i": {"S": agent_id}}
        expression = "SET #e = :e, #i = :i"
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
