"""Enrichment batch stage: fill a billable contact's ``provider_extension`` from the provider directory.

Runs only when ``DIRECTORY_TABLE`` is set. For billable contacts whose extension attribute is empty it
looks up the agent (last segment of ``Agent.ARN``) with one BatchGetItem per 100 distinct agents of
the Firehose batch, behind the same TTL cache as the lookup Lambdas. A directory failure raises, so
Firehose retries the invocation rather than billing rows without the provider's extension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from lookup.directory import CachedDirectory, DirectoryEntry, DirectoryTable
from lookup.identifiers import canonical_extension, is_agent_id, is_extension
from transform.core.batch import BatchStage, PendingContact

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from transform.core.settings import TransformSettings


class AgentDirectory(Protocol):
    def entries_for_agents(self, agent_ids: Sequence[str]) -> dict[str, DirectoryEntry]: ...


class DirectoryEnrichment:
    """A ``BatchStage``: sets ``pending.contact.provider_extension`` from the directory when empty."""

    def __init__(self, directory: AgentDirectory) -> None:
        self._directory = directory

    def __call__(self, contacts: Sequence[PendingContact]) -> None:
        # Only a well-formed agent id is looked up: the ARN is record content, and a key DynamoDB
        # refuses (over 2,048 bytes, say) would fail the whole batch on every retry.
        needing = [
            item
            for item in contacts
            if item.dropped_as is None
            and not item.contact.provider_extension
            and is_agent_id(item.contact.agent_id)
        ]
        if not needing:
            return
        entries = self._directory.entries_for_agents(list(dict.fromkeys(i.contact.agent_id for i in needing)))
        for item in needing:
            entry = entries.get(item.contact.agent_id)
            # Only digits, in the canonical form (DESIGN §3), reach the billing row: a hand-edited table
            # must not inject text into the CSV.
            extension = canonical_extension(entry.extension) if entry is not None else ""
            if is_extension(extension):
                item.contact.provider_extension = extension


def directory_stage(settings: TransformSettings, client: DynamoDBClient | None = None) -> BatchStage:
    """Builds the stage for the transform Lambda; boto3 is imported here (if no client is given), only
    when the stage is on."""
    assert settings.directory_table is not None
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "dynamodb",
            config=Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 5}),
        )
    table = DirectoryTable(client, settings.directory_table)
    return DirectoryEnrichment(CachedDirectory(table, settings.directory_cache_seconds))
