"""The two Connect lookups as pure functions over a directory read view.

Connect requires a flat map of strings as a Lambda's answer. A missing or malformed parameter never
raises: the answer is ``found=false`` with an ``error`` saying what was wrong, so the flow can take
its not-found branch. A DynamoDB failure does raise (``DirectoryError``), so the flow takes its error
branch instead of routing on a wrong answer.

A found provider's answer carries, under their contact-attribute names, every attribute the voicemail
solution's KvsProcessRecording reads from a voicemail's CTR (``VOICEMAIL_ATTRIBUTES``), with the values
that solution's own lookup gives them, so the inbound flow can copy them onto the contact before it
hands the caller to the voicemail's VM-Agent flow.
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
    canonical_extension,
    extension_from,
    instance_arn_from,
    instance_id,
    is_extension,
)
from lookup.names import AgentNames

AGENT_ARN_PARAMETER = "AgentArn"
EXTENSION_PARAMETER = "extensionNumber"

# What KvsProcessRecording reads, each with getString and no default, from a CTR's attributes; a CTR
# lacking one is skipped, its voicemail lost (amazon-connect/voicemail-for-amazon-connect
# source/aws-connect-vm-serverless/src/main/java/com/amazonaws/awsconnect/model/ContactFlowAttributes.java).
VOICEMAIL_ATTRIBUTES = (
    "agentId",
    "agentName",
    "extensionNumber",
    "transferMessage",
    "encryptVoicemail",
    "saveCallRecording",
    "transcribeVoicemail",
)
# The voicemail solution's lookup always answers "true" and builds the transfer message from the name
# (getAgentByExtension in .../src/handler/agents.js); these are the same.
SAVE_CALL_RECORDING = "true"
TRANSFER_MESSAGE = "Please wait while we transfer you"


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
    # The flow gets the canonical form (DESIGN §3); a hand-edited row holding no extension is not found.
    extension = canonical_extension(entry.extension) if entry is not None else ""
    if not is_extension(extension):
        return {"found": "false", "extension": ""}
    return {"found": "true", "extension": extension}


def agent_with_extension(
    directory: DirectoryView,
    parameters: Mapping[str, Any],
    contact: Mapping[str, Any],
    names: AgentNames | None = None,
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
    # The username (which the voicemail's sync keeps current) stands in when Connect gives no name.
    full_name = names.full_name(instance_id(instance), entry.agent_id) if names is not None else None
    name = full_name or entry.username
    return {
        "found": "true",
        "agentId": entry.agent_id,
        "agentArn": agent_arn(instance, entry.agent_id),
        "agentQueueArn": agent_queue_arn(instance, entry.agent_id),
        "username": entry.username,
        "agentName": name,
        "extensionNumber": extension,
        "transferMessage": f"{TRANSFER_MESSAGE} to {name}" if name else TRANSFER_MESSAGE,
        "transcribeVoicemail": _flag(entry.transcribe_voicemail),
        "encryptVoicemail": _flag(entry.encrypt_voicemail),
        "saveCallRecording": SAVE_CALL_RECORDING,
    }


def _flag(value: bool) -> str:
    return "true" if value else "false"
