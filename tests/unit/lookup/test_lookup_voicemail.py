"""The extension lookup's answer for the voicemail hand-off: every attribute the voicemail solution's
KvsProcessRecording reads, with the values its own lookup gives, and the provider's full name from
Connect (cached), else the username. In-memory directory and Connect client; no AWS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from lookup.directory import DirectoryEntry, entry_from_item
from lookup.lookups import VOICEMAIL_ATTRIBUTES, agent_with_extension
from lookup.names import ConnectAgentNames, full_name_of
from tests.support.voicemail_solution import CONTACT_FLOW_ATTRIBUTES

INSTANCE_ID = "0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"
INSTANCE = f"arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE_ID}"
AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryDirectory:
    def __init__(self, *entries: DirectoryEntry) -> None:
        self.entries = list(entries)

    def entry_for_agent(self, agent_id: str) -> DirectoryEntry | None:
        return next((entry for entry in self.entries if entry.agent_id == agent_id), None)

    def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]:
        return tuple(entry for entry in self.entries if entry.extension == extension)


class FakeConnect:
    """Answers DescribeUser as Connect does (``User.IdentityInfo``), or raises what it is told to."""

    def __init__(self, users: Mapping[str, Mapping[str, Any]], error: Exception | None = None) -> None:
        self.users = users
        self.error = error
        self.calls: list[tuple[str, str]] = []

    def describe_user(self, *, InstanceId: str, UserId: str) -> Mapping[str, Any]:
        self.calls.append((InstanceId, UserId))
        if self.error is not None:
            raise self.error
        return {"User": self.users[UserId]}


def okafor(first: str | None = "Ada", last: str | None = "Okafor") -> dict[str, Any]:
    identity = {key: value for key, value in (("FirstName", first), ("LastName", last)) if value is not None}
    return {"Id": AGENT, "Username": "dr.okafor", "IdentityInfo": identity}


def test_voicemail_attributes_are_the_ones_the_voicemail_reads() -> None:
    # The code's list and the one restated from ContactFlowAttributes.java beside the tests agree.
    assert set(VOICEMAIL_ATTRIBUTES) == CONTACT_FLOW_ATTRIBUTES


def test_a_found_provider_answers_every_voicemail_attribute_with_the_voicemails_values() -> None:
    # GIVEN a provider with voicemail transcription on and encryption off, and a name in Connect
    directory = MemoryDirectory(DirectoryEntry(AGENT, "4417", "dr.okafor", transcribe_voicemail=True))
    names = ConnectAgentNames(FakeConnect({AGENT: okafor()}), cache_seconds=300)
    # WHEN the flow looks the extension up
    answer = agent_with_extension(directory, {"extensionNumber": " 4417 "}, {"InstanceARN": INSTANCE}, names)
    # THEN the answer carries each attribute KvsProcessRecording reads, as the voicemail's lookup fills it
    assert {key: answer[key] for key in CONTACT_FLOW_ATTRIBUTES} == {
        "agentId": AGENT,
        "agentName": "Ada Okafor",
        "extensionNumber": "4417",
        "transferMessage": "Please wait while we transfer you to Ada Okafor",
        "encryptVoicemail": "false",
        "saveCallRecording": "true",
        "transcribeVoicemail": "true",
    }
    # AND the routing keys the flow uses, all strings
    assert answer["found"] == "true"
    assert answer["agentArn"] == f"{INSTANCE}/agent/{AGENT}"
    assert all(isinstance(value, str) for value in answer.values())


@pytest.mark.parametrize(
    ("names", "spoken"),
    [
        (None, "dr.okafor"),  # no Connect client at all
        (ConnectAgentNames(FakeConnect({AGENT: okafor(None, None)}), 300), "dr.okafor"),  # no name in Connect
        (
            ConnectAgentNames(
                FakeConnect({}, ClientError({"Error": {"Code": "AccessDeniedException"}}, "x")), 300
            ),
            "dr.okafor",
        ),
    ],
)
def test_without_a_name_from_connect_the_username_is_the_name(names: Any, spoken: str) -> None:
    directory = MemoryDirectory(DirectoryEntry(AGENT, "4417", "dr.okafor"))
    answer = agent_with_extension(directory, {"extensionNumber": "4417"}, {"InstanceARN": INSTANCE}, names)
    assert answer["agentName"] == spoken
    assert answer["transferMessage"] == f"Please wait while we transfer you to {spoken}"


def test_without_any_name_the_transfer_message_still_reads_well() -> None:
    answer = agent_with_extension(
        MemoryDirectory(DirectoryEntry(AGENT, "4417")), {"extensionNumber": "4417"}, {"InstanceARN": INSTANCE}
    )
    assert (answer["agentName"], answer["transferMessage"]) == ("", "Please wait while we transfer you")


def test_names_are_asked_of_the_contacts_instance_and_cached() -> None:
    # GIVEN a warm container that has asked Connect once
    clock = Clock()
    connect = FakeConnect({AGENT: okafor()})
    names = ConnectAgentNames(connect, cache_seconds=300, clock=clock)
    assert names.full_name(INSTANCE_ID, AGENT) == "Ada Okafor"
    # WHEN the same provider is looked up again within the TTL, and after it
    clock.now += 299
    assert names.full_name(INSTANCE_ID, AGENT) == "Ada Okafor"
    clock.now += 2
    assert names.full_name(INSTANCE_ID, AGENT) == "Ada Okafor"
    # THEN Connect was asked by instance id (not ARN) once per TTL
    assert connect.calls == [(INSTANCE_ID, AGENT), (INSTANCE_ID, AGENT)]


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ThrottlingException"}}, "DescribeUser"),
        ReadTimeoutError(endpoint_url="https://connect.us-east-1.amazonaws.com"),
    ],
)
def test_a_failed_name_read_is_not_cached(error: Exception) -> None:
    connect = FakeConnect({AGENT: okafor()}, error=error)
    names = ConnectAgentNames(connect, cache_seconds=300)
    assert names.full_name(INSTANCE_ID, AGENT) is None
    # the next contact tries again, and gets the name once Connect answers
    connect.error = None
    assert names.full_name(INSTANCE_ID, AGENT) == "Ada Okafor"
    assert len(connect.calls) == 2


@pytest.mark.parametrize(
    ("user", "name"),
    [
        (okafor(), "Ada Okafor"),
        (okafor(last=None), "Ada"),
        (okafor(first="  ", last="Okafor"), "Okafor"),
        (okafor(None, None), ""),
        ({}, ""),
        (None, ""),
    ],
)
def test_full_name_skips_missing_parts(user: Any, name: str) -> None:
    assert full_name_of(user) == name


@pytest.mark.parametrize(
    ("item", "transcribe", "encrypt"),
    [
        ({"transcribeVoicemail": {"BOOL": True}, "encryptVoicemail": {"BOOL": False}}, True, False),
        ({"transcribeVoicemail": {"S": "TRUE"}, "encryptVoicemail": {"S": "yes"}}, True, False),
        ({"encryptVoicemail": {"BOOL": True}}, False, True),
        ({}, False, False),
    ],
)
def test_voicemail_settings_are_read_from_the_item(
    item: dict[str, Any], transcribe: bool, encrypt: bool
) -> None:
    # GIVEN an item as the voicemail's portal writes it (BOOL), or a hand-written one
    entry = entry_from_item({"agentId": {"S": AGENT}, "extension": {"S": "4417"}, **item})
    # THEN the flags are read; absent is off, the voicemail's own default
    assert (entry.transcribe_voicemail, entry.encrypt_voicemail) == (transcribe, encrypt)
    # AND they are not part of the entry's identity (the directory's writes compare extension/username only)
    assert entry == DirectoryEntry(AGENT, "4417")
