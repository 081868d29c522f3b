"""The provider directory's read path: the DynamoDB table as the Lambdas read it, and its cached view.
The CLI's writes (transactional import, set, remove) are ``lookup.directory_admin``.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lookup.cache import TTLCache
from transform.core.backoff import Backoff

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
BATCH_GET_LIMIT = 100  # keys per BatchGetItem

# What the directory reads of an item; a request carries only the name placeholders its expressions use.
PROJECTION_NAMES = {
    "#a": AGENT_ID_ATTRIBUTE,
    "#e": EXTENSION_ATTRIBUTE,
    "#u": USERNAME_ATTRIBUTE,
    "#i": USER_ID_ATTRIBUTE,
}
PROJECTION_EXPRESSION = "#a, #e, #u, #i"


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


@contextmanager
def dynamodb_errors(operation: str, table: str) -> Iterator[None]:
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
    """The directory table as the Lambdas read it, through a boto3 DynamoDB client.

    ``retries`` bounds the attempts after the first of a call DynamoDB only partly answered or
    throttled, each after a pause from ``backoff``.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        retries: int = 8,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table_name = table_name
        self._retries = retries
        # By default the ceilings themselves, without jitter: the pauses the directory has always made.
        self._backoff = backoff or Backoff(jitter=False)
        self._sleep = sleep

    def get(self, agent_id: str) -> DirectoryEntry | None:
        with dynamodb_errors("GetItem", self.table_name):
            response = self.client.get_item(
                TableName=self.table_name,
                Key={AGENT_ID_ATTRIBUTE: {"S": agent_id}},
                ProjectionExpression=PROJECTION_EXPRESSION,
                ExpressionAttributeNames=PROJECTION_NAMES,
            )
        item = response.get("Item")
        return entry_from_item(item) if item else None

    def find_by_extension(self, extension: str, limit: int = 2) -> list[DirectoryEntry]:
        """Agents holding ``extension`` (at most ``limit``: two are enough to detect a clash)."""
        with dynamodb_errors("Query", self.table_name):
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
            found.update(self._batch_get_chunk(distinct[start : start + BATCH_GET_LIMIT]))
        return found

    def _batch_get_chunk(self, agent_ids: Sequence[str]) -> dict[str, DirectoryEntry]:
        request: dict[str, Any] = {
            self.table_name: {
                "Keys": [{AGENT_ID_ATTRIBUTE: {"S": agent_id}} for agent_id in agent_ids],
                "ProjectionExpression": PROJECTION_EXPRESSION,
                "ExpressionAttributeNames": PROJECTION_NAMES,
            }
        }
        found: dict[str, DirectoryEntry] = {}
        attempt = 0
        while request:
            with dynamodb_errors("BatchGetItem", self.table_name):
                response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table_name, []):
                entry = entry_from_item(item)
                found[entry.agent_id] = entry
            # DynamoDB hands back what it did not read, as a request to send again.
            request = dict(response.get("UnprocessedKeys") or {})
            if request:
                attempt += 1
                if attempt > self._retries:
                    raise DirectoryError(
                        f"DynamoDB BatchGetItem on table {self.table_name} left keys unprocessed "
                        f"after {self._retries} retries"
                    )
                self._back_off(attempt)
        return found

    def _back_off(self, attempt: int) -> None:
        """Sleeps before retry ``attempt`` of a throttled or partly answered call."""
        self._sleep(self._backoff.pause(attempt))


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
