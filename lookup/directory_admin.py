"""The provider directory's admin path, used by ``ctr-billing directory`` and never by a Lambda: scans,
single writes, and many entries written as one change with conditional transactions and rollback.

Writes set ``extension``, ``userId`` (always the agent id, see ``lookup.directory``) and, when given,
``username``; every other attribute of an item (the voicemail solution's settings) is left as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lookup.directory import (
    AGENT_ID_ATTRIBUTE,
    EXTENSION_ATTRIBUTE,
    PROJECTION_EXPRESSION,
    PROJECTION_NAMES,
    USER_ID_ATTRIBUTE,
    USERNAME_ATTRIBUTE,
    DirectoryEntry,
    DirectoryError,
    DirectoryTable,
    dynamodb_errors,
    entry_from_item,
)

TRANSACTION_LIMIT = 100  # items per TransactWriteItems
CONDITION_FAILED = "ConditionalCheckFailedException"

# Worth another attempt: the transaction was throttled or lost a race with another transaction,
# and its conditions are evaluated afresh next time.
_TRANSIENT_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"}
)
_TRANSIENT_REASONS = frozenset({"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"})


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


class DirectoryAdmin(DirectoryTable):
    """The directory table as the CLI manages it: the Lambdas' reads, plus scans and writes."""

    def scan(self) -> Iterator[DirectoryEntry]:
        with dynamodb_errors("Scan", self.table_name):
            pages = self.client.get_paginator("scan").paginate(
                TableName=self.table_name,
                ProjectionExpression=PROJECTION_EXPRESSION,
                ExpressionAttributeNames=PROJECTION_NAMES,
            )
            for page in pages:
                for item in page.get("Items", []):
                    yield entry_from_item(item)

    def set_extension(self, agent_id: str, extension: str, username: str | None = None) -> None:
        """Set (or change) an agent's extension, keeping the item's other attributes."""
        with dynamodb_errors("UpdateItem", self.table_name):
            self.client.update_item(**self._update(agent_id, extension, username))

    def remove_extension(self, agent_id: str) -> bool:
        """Remove an agent's extension. The item is deleted when nothing but its name would remain
        (a voicemail deployment's settings on the item are kept). False when the agent is unknown."""
        with dynamodb_errors("UpdateItem", self.table_name):
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
                if _code(error) == CONDITION_FAILED:
                    return False
                raise
        # userId and username are what the voicemail's sync would write back for any Connect user.
        remaining = set(response.get("Attributes", {})) - {
            AGENT_ID_ATTRIBUTE,
            USER_ID_ATTRIBUTE,
            USERNAME_ATTRIBUTE,
        }
        if not remaining:
            with dynamodb_errors("DeleteItem", self.table_name):
                try:
                    self.client.delete_item(
                        TableName=self.table_name,
                        Key={AGENT_ID_ATTRIBUTE: {"S": agent_id}},
                        # Someone may have given the agent a new extension meanwhile: keep it then.
                        ConditionExpression="attribute_not_exists(#e)",
                        ExpressionAttributeNames={"#e": EXTENSION_ATTRIBUTE},
                    )
                except ClientError as error:
                    if _code(error) != CONDITION_FAILED:
                        raise
        return True

    # --- many entries as one change -----------------------------------------------------------------

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
        items: list[Any] = [{"Update": self._conditional_update(change)} for change in chunk]
        attempt = 0
        while True:
            try:
                # The token makes botocore's own retries of this request idempotent.
                self.client.transact_write_items(TransactItems=items, ClientRequestToken=str(uuid.uuid4()))
                return
            except ClientError as error:
                reasons = [
                    str(reason.get("Code") or "None")
                    for reason in error.response.get("CancellationReasons", [])
                ]
                if _transient(_code(error), reasons) and attempt < self._retries:
                    attempt += 1
                    self._back_off(attempt)
                    continue
                raise self._chunk_failure(error, chunk, reasons) from None
            except BotoCoreError as error:
                raise _ChunkFailed(
                    f"DynamoDB TransactWriteItems on table {self.table_name} failed: {type(error).__name__}",
                    outcome_unknown=True,
                ) from None

    def _chunk_failure(
        self, error: ClientError, chunk: Sequence[EntryChange], reasons: list[str]
    ) -> _ChunkFailed:
        """What a failed transaction means: its code and reasons, the agents whose items had changed
        since they were checked, and whether it may have committed after all (a 5xx)."""
        detail = sorted({reason for reason in reasons if reason != "None"})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        return _ChunkFailed(
            f"DynamoDB TransactWriteItems on table {self.table_name} failed: {_code(error)}"
            + (f" ({', '.join(detail)})" if detail else ""),
            changed_agents=tuple(
                change.entry.agent_id
                for change, reason in zip(chunk, reasons, strict=False)
                if reason == "ConditionalCheckFailed"
            ),
            outcome_unknown=status >= 500,
        )

    def _conditional_update(self, change: EntryChange) -> dict[str, Any]:
        entry = change.entry
        update = self._update(entry.agent_id, entry.extension, entry.username or None)
        condition, values = _state_condition(change.before, "b")
        update["ConditionExpression"] = condition
        update["ExpressionAttributeValues"].update(values)
        update["ExpressionAttributeNames"] = _names_in(update["UpdateExpression"], condition)
        return update

    # --- rollback -----------------------------------------------------------------------------------

    def _restore(self, change: EntryChange) -> bool:
        """Put an item back as it was before ``change``, if it is still as ``change`` wrote it.
        True when the item is (again) in its prior state."""
        try:
            self._undo(change)
            return True
        except ClientError as error:
            if _code(error) != CONDITION_FAILED:
                return False
        except BotoCoreError:
            return False
        # Not as this change wrote it: never written (a chunk of unknown outcome), or changed since.
        return self._is_in_state(change.entry.agent_id, change.before)

    def _undo(self, change: EntryChange) -> None:
        """Deletes the item ``change`` created, or reverts the attributes it wrote; either only while
        the item is exactly as ``change`` left it."""
        condition, values = _state_condition(change.after, "w")
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {AGENT_ID_ATTRIBUTE: {"S": change.entry.agent_id}},
            "ConditionExpression": condition,
        }
        if change.before is None:
            request["ExpressionAttributeNames"] = _names_in(condition)
            if values:
                request["ExpressionAttributeValues"] = values
            self.client.delete_item(**request)
            return
        expression, prior_values = _reverting_update(change.entry, change.before)
        request["UpdateExpression"] = expression
        request["ExpressionAttributeNames"] = _names_in(expression, condition)
        request["ExpressionAttributeValues"] = {**values, **prior_values}
        self.client.update_item(**request)

    def _is_in_state(self, agent_id: str, state: DirectoryEntry | None) -> bool:
        """Whether the agent's item (consistently read) is ``state``; False when it cannot be read."""
        try:
            response = self.client.get_item(
                TableName=self.table_name,
                Key={AGENT_ID_ATTRIBUTE: {"S": agent_id}},
                ProjectionExpression=PROJECTION_EXPRESSION,
                ExpressionAttributeNames=PROJECTION_NAMES,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError):
            return False
        item = response.get("Item")
        return (entry_from_item(item) if item else None) == state

    def _update(self, agent_id: str, extension: str, username: str | None) -> dict[str, Any]:
        # userId = agentId: the key the voicemail's nightly sync matches rows on (lookup.directory).
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


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


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


def _reverting_update(written: DirectoryEntry, before: DirectoryEntry) -> tuple[str, dict[str, Any]]:
    """An update expression that gives back every attribute a write of ``written`` set: its prior value
    (placeholder ``:p<letter>``), or no attribute when it had none."""
    assignments: list[str] = []
    removals: list[str] = []
    values: dict[str, Any] = {}
    for name, prior, was_written in (
        ("#e", before.extension, True),
        ("#u", before.username, bool(written.username)),  # an empty username is not written
        ("#i", before.user_id, True),  # every write sets userId
    ):
        if not was_written:
            continue
        if prior:
            assignments.append(f"{name} = :p{name[1]}")
            values[f":p{name[1]}"] = {"S": prior}
        else:
            removals.append(name)
    clauses = [f"SET {', '.join(assignments)}"] if assignments else []
    if removals:
        clauses.append(f"REMOVE {', '.join(removals)}")
    return " ".join(clauses), values


def _names_in(*expressions: str) -> dict[str, str]:
    """The attribute-name placeholders the expressions use (DynamoDB rejects unused ones)."""
    return {
        name: value for name, value in PROJECTION_NAMES.items() if any(name in text for text in expressions)
    }
