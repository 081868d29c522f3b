"""What the open-source Amazon Connect voicemail solution reads and does, restated from its source for the
tests that check ctr-billing against it. Every item names the file it comes from, in
https://github.com/amazon-connect/voicemail-for-amazon-connect (archived; read at commit 5585a7e).

Kept apart from the code under test on purpose: the code may not define what it is checked against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SOURCE = "amazon-connect/voicemail-for-amazon-connect"
SERVERLESS = "source/aws-connect-vm-serverless"

# KvsProcessRecording builds ContactFlowAttributes from a CTR's "Attributes" and reads these with
# JSONObject.getString, which throws for a missing key; the Lambda catches that per record and skips
# the record, so a voicemail whose CTR lacks one is never processed:
# source/aws-connect-vm-serverless/src/main/java/com/amazonaws/awsconnect/model/ContactFlowAttributes.java
# (constructor) and .../kvstream/KVSProcessRecordingLambda.java (handleRequest).
CONTACT_FLOW_ATTRIBUTES = frozenset(
    {
        "agentId",
        "agentName",
        "extensionNumber",
        "transferMessage",
        "encryptVoicemail",
        "saveCallRecording",
        "transcribeVoicemail",
    }
)
# Read only when present (``jsonObject.has("languageCode")``, else "en-US"), same file.
OPTIONAL_CONTACT_FLOW_ATTRIBUTES = frozenset({"languageCode"})

# The VM-Agent customer queue flow (flow2 in source/aws-connect-vm-serverless/src/service/
# contact-flow.service.js) reads the user-defined attribute "available" (CheckAttribute Equals "true":
# "please wait while we connect you to <agentName>", else "<agentName> is not available") and speaks
# "$.Attributes.agentName". VM-Greeting (flow1, same file) sets "available" to "true" only after its
# staffing check found the agent available.
VM_AGENT_AVAILABLE_ATTRIBUTE = "available"
VM_AGENT_AVAILABLE_VALUE = "true"


def connect_sync(
    connect_users: Sequence[Mapping[str, str]], db_users: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The batch-write requests ConnectSync makes: ``syncConnectAgents`` in
    source/aws-connect-vm-serverless/src/service/connect-agent.service.js, with ``createAgentCreateParam``
    and ``createAgentDeleteParam`` of .../src/repo/users-repo.js. ``connect_users`` are ListUsers'
    UserSummaryList entries (``Id``, ``Username``); ``db_users`` the table's items as the DocumentClient
    scan returns them (plain values). Requests carry plain values too; a key the JavaScript would leave
    ``undefined`` is None here."""
    requests: list[dict[str, Any]] = []
    for connect_user in connect_users:
        # dbUsers.find(dbUser => dbUser.userId === connectUser.Id)
        found = next((db for db in db_users if db.get("userId") == connect_user["Id"]), None)
        if found is not None and found.get("username") != connect_user["Username"]:
            requests.append({"PutRequest": _create_param({**found, "username": connect_user["Username"]})})
        elif found is None:
            requests.append(
                {
                    "PutRequest": _create_param(
                        {"userId": connect_user["Id"], "username": connect_user["Username"]}
                    )
                }
            )
    for db_user in db_users:
        # connectUsers.find(connectUser => connectUser.Id === dbUser.userId)
        if not any(connect_user["Id"] == db_user.get("userId") for connect_user in connect_users):
            requests.append({"DeleteRequest": {"Key": {"agentId": db_user.get("userId")}}})
    return requests


def _create_param(agent: Mapping[str, Any]) -> dict[str, Any]:
    # data = {Item: {...agent, agentId: agent.userId}}; an empty-string extension is deleted.
    item = {**agent, "agentId": agent.get("userId")}
    if item.get("extension") == "":
        del item["extension"]
    return {"Item": item}
