"""The two Connect lookups as pure functions over a directory read view.

Connect requires a flat map of strings as a Lambda's answer. A missing or malformed parameter never
raises: the answer is ``found=false`` with an ``error`` saying what was wrong, so the flow can take
its not-found branch. A DynamoDB failure does raise (``DirectoryError``), so the flow takes its error
branch instead of routing on a wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lookup.directory import DirectoryEntry
from lookup.identifiers import (
    InvalidIdentifierError,
    agent_arn,
    agent_id_from,
    agent_queue_arn,
    extension_from,
    instance_arn_from,
)

AGENT_ARN_PARAMETER = "AgentArn"
EXTENSION_PARAMETER = "extensionNumber"


class DirectoryView(Protocol):
    def entry_for_agent(self, agent_id: str) -> DirectoryEntry | None: ...

    def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]: ...


def connect_parameters(event: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """``(Details.Parameters, Details.ContactData)`` of a Connect flow event; empty when absent."""
    details = event.get("Details") if isinstance(event, Mapping) else None
    if not isinstance(details, Mapping):
        return {}, {}
    parameters = details.get("Parameters")
    contact = details.get("ContactData")
    return (
        parameters if isinstance(parameters, Mapping) else {},
        contact if isinstance(contact, Mapping) else {},
    )


def extension_of_agent(directory: DirectoryView, parameters: Mapping[str, Any]) -> dict[str, str]:
    try:
        agent_id = agent_id_from(parameters.get(AGENT_ARN_PARAMETER), AGENT_ARN_PARAMETER)
    except InvalidIdentifierError as error:
        return {"found": "false", "extension": "", "error": str(error)}
    entry = directory.entry_for_agent(agent_id)
    if entry is None or not entry.extension:
        return {"found": "false", "extension": ""}
    return {"found": "true", "extension": entry.extension}


def agent_with_extension(
    directory: DirectoryView, parameters: Mapping[str, Any], contact: Mapping[str, Any]
) -> dict[str, str]:
    try:
        extension = extension_from(parameters.get(EXTENSION_PARAMETER), EXTENSION_PARAMETER)
        instance = instance_arn_from(contact.get("InstanceARN"))
    except InvalidIdentifierError as error:
        return {"found": "false", "error": str(error)}
    entries = directory.agents_with_extension(extension)
    if not entries:
        return {"found": "false"}
    if len(entries) > 1:
        # Never guess between providers: the directory CLI refuses this, older tables may hold it.
        return {"found": "false", "error": "extension is assigned to more than one agent"}
    entry = entries[0]
    return {
        "found": "true",
        "agentId": entry.agent_id,
        "agentArn": agent_arn(instance, entry.agent_id),
        "agentQueueArn": agent_queue_arn(instance, entry.agent_id),
        "username": entry.username,
    }
