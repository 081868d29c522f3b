"""Builders of realistic Amazon Connect CTRs and Firehose transformation events, for tests and benchmarks.

The base document is a copy of ``../shared/sample-ctr.json`` (a real-shaped CTR, fictional numbers), kept
here so the tests run from a fresh clone. Every builder returns a fresh, independent ``dict``.

    ctr = billable_ctr(phone="+12025550199", talk_seconds=300)
    event = firehose_event([ctr, voicemail_ctr(), b"not json"])
"""

from __future__ import annotations

import base64
import copy
import json
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SAMPLE_CTR_JSON = r"""
{
    "AWSAccountId": "111122223333",
    "AWSContactTraceRecordFormatVersion": "2017-03-10",
    "Agent": {
        "ARN": "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f/agent/7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f",
        "AfterContactWorkDuration": 41,
        "AfterContactWorkEndTimestamp": "2026-11-02T14:31:52Z",
        "AfterContactWorkStartTimestamp": "2026-11-02T14:31:11Z",
        "AgentInteractionDuration": 951,
        "ConnectedToAgentTimestamp": "2026-11-02T14:14:20Z",
        "CustomerHoldDuration": 60,
        "HierarchyGroups": null,
        "LongestHoldDuration": 45,
        "NumberOfHolds": 2,
        "RoutingProfile": {
            "ARN": "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f/routing-profile/5c4b3a29-1807-4f6e-9d8c-7b6a59483726",
            "Name": "Telehealth Providers"
        },
        "Username": "dr.okafor"
    },
    "AgentConnectionAttempts": 1,
    "AnsweringMachineDetectionStatus": null,
    "Attributes": {
        "extensionNumber": "4417",
        "greetingPlayed": "true"
    },
    "Campaign": {
        "CampaignId": null
    },
    "Channel": "VOICE",
    "ConnectedToSystemTimestamp": "2026-11-02T14:13:58Z",
    "ContactDetails": {},
    "ContactId": "3b9f1c2e-5d4a-4e6b-9c8d-1f2e3a4b5c6d",
    "CustomerEndpoint": {
        "Address": "+12025550143",
        "Type": "TELEPHONE_NUMBER"
    },
    "DisconnectReason": "CUSTOMER_DISCONNECT",
    "DisconnectTimestamp": "2026-11-02T14:31:11Z",
    "InitialContactId": null,
    "InitiationMethod": "INBOUND",
    "InitiationTimestamp": "2026-11-02T14:13:58Z",
    "InstanceARN": "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f",
    "LastUpdateTimestamp": "2026-11-02T14:33:04Z",
    "MediaStreams": [
        {
            "Type": "AUDIO"
        }
    ],
    "NextContactId": null,
    "PreviousContactId": null,
    "Queue": {
        "ARN": "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f/queue/9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
        "DequeueTimestamp": "2026-11-02T14:14:20Z",
        "Duration": 9,
        "EnqueueTimestamp": "2026-11-02T14:14:11Z",
        "Name": "Telehealth General"
    },
    "Recording": {
        "DeletionReason": null,
        "Location": "connect-recordings-111122223333/connect/telehealth/CallRecordings/2026/11/02/3b9f1c2e-5d4a-4e6b-9c8d-1f2e3a4b5c6d_20261102T14:14_UTC.wav",
        "Status": "AVAILABLE",
        "Type": "AUDIO"
    },
    "Recordings": [
        {
            "DeletionReason": null,
            "FragmentStartNumber": null,
            "FragmentStopNumber": null,
            "Location": "connect-recordings-111122223333/connect/telehealth/CallRecordings/2026/11/02/3b9f1c2e-5d4a-4e6b-9c8d-1f2e3a4b5c6d_20261102T14:14_UTC.wav",
            "MediaStreamType": "AUDIO",
            "ParticipantType": null,
            "StartTimestamp": null,
            "Status": "AVAILABLE",
            "StopTimestamp": null,
            "StorageType": "S3"
        }
    ],
    "References": [],
    "ScheduledTimestamp": null,
    "SystemEndpoint": {
        "Address": "+12025550100",
        "Type": "TELEPHONE_NUMBER"
    },
    "TransferCompletedTimestamp": null,
    "TransferredToEndpoint": null,
    "VoiceIdResult": null
}
"""
_SAMPLE: dict[str, Any] = json.loads(SAMPLE_CTR_JSON)

INSTANCE_ARN = _SAMPLE["InstanceARN"]
SAMPLE_PHONE = _SAMPLE["CustomerEndpoint"]["Address"]
DEFAULT_INITIATED = datetime(2026, 11, 2, 14, 13, 58, tzinfo=UTC)


def sample_ctr() -> dict[str, Any]:
    """The sample CTR exactly as shipped (a billable inbound voice call of 1,011 s with the provider)."""
    return copy.deepcopy(_SAMPLE)


def iso(moment: datetime) -> str:
    """Connect's own spelling: ``2026-11-02T14:13:58Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def billable_ctr(
    *,
    contact_id: str | None = None,
    channel: str = "VOICE",
    initiation_method: str = "INBOUND",
    initiated: datetime = DEFAULT_INITIATED,
    queue_seconds: int = 22,
    talk_seconds: int = 1011,
    hold_seconds: int | None = 60,
    number_of_holds: int | None = 2,
    phone: str | None = SAMPLE_PHONE,
    extension: str | None = "4417",
    agent_id: str = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f",
    username: str = "dr.okafor",
    queue_name: str = "Telehealth General",
) -> dict[str, Any]:
    """A contact in which the patient reached a provider: timestamps, agent, queue and endpoint consistent."""
    ctr = sample_ctr()
    contact_id = contact_id or str(uuid.uuid4())
    connected = initiated + timedelta(seconds=queue_seconds)
    disconnected = connected + timedelta(seconds=talk_seconds)
    ctr["ContactId"] = contact_id
    ctr["Channel"] = channel
    ctr["InitiationMethod"] = initiation_method
    ctr["InitiationTimestamp"] = iso(initiated)
    ctr["ConnectedToSystemTimestamp"] = iso(initiated)
    ctr["DisconnectTimestamp"] = iso(disconnected)
    ctr["LastUpdateTimestamp"] = iso(disconnected + timedelta(seconds=113))
    agent = ctr["Agent"]
    agent["ARN"] = f"{INSTANCE_ARN}/agent/{agent_id}"
    agent["Username"] = username
    agent["ConnectedToAgentTimestamp"] = iso(connected)
    agent["AgentInteractionDuration"] = talk_seconds
    agent["AfterContactWorkStartTimestamp"] = iso(disconnected)
    agent["AfterContactWorkEndTimestamp"] = iso(disconnected + timedelta(seconds=41))
    _set_or_drop(agent, "CustomerHoldDuration", hold_seconds)
    _set_or_drop(agent, "NumberOfHolds", number_of_holds)
    queue = ctr["Queue"]
    queue["Name"] = queue_name
    queue["EnqueueTimestamp"] = iso(initiated + timedelta(seconds=queue_seconds // 2))
    queue["DequeueTimestamp"] = iso(connected)
    queue["Duration"] = queue_seconds - queue_seconds // 2
    if phone is None:
        ctr["CustomerEndpoint"] = None
    else:
        ctr["CustomerEndpoint"] = {"Address": phone, "Type": "TELEPHONE_NUMBER"}
    if extension is None:
        ctr["Attributes"].pop("extensionNumber", None)
    else:
        ctr["Attributes"]["extensionNumber"] = extension
    for recording in [ctr["Recording"], *ctr["Recordings"]]:
        recording["Location"] = (
            f"connect-recordings-111122223333/connect/telehealth/CallRecordings/{contact_id}.wav"
        )
    if channel == "CHAT":
        ctr["CustomerEndpoint"] = None
        ctr["SystemEndpoint"] = None
        ctr["MediaStreams"] = [{"Type": "CHAT"}]
        ctr["Recording"] = None
        ctr["Recordings"] = []
    return ctr


def outbound_ctr(**overrides: Any) -> dict[str, Any]:
    """A provider calling the patient back (no queue time)."""
    overrides.setdefault("initiation_method", "OUTBOUND")
    overrides.setdefault("queue_seconds", 0)
    ctr = billable_ctr(**overrides)
    ctr["Queue"] = None
    return ctr


def transfer_ctr(**overrides: Any) -> dict[str, Any]:
    """The second leg of a transferred call: a new contact pointing at the first one."""
    overrides.setdefault("initiation_method", "TRANSFER")
    ctr = billable_ctr(**overrides)
    ctr["InitialContactId"] = str(uuid.uuid4())
    ctr["PreviousContactId"] = ctr["InitialContactId"]
    return ctr


def _without_agent(ctr: dict[str, Any]) -> dict[str, Any]:
    ctr["Agent"] = None
    ctr["AgentConnectionAttempts"] = 0
    ctr["Recording"] = None
    ctr["Recordings"] = []
    return ctr


def voicemail_ctr(**overrides: Any) -> dict[str, Any]:
    """The patient left a voicemail: no provider ever connected."""
    ctr = _without_agent(billable_ctr(**overrides))
    ctr["Queue"] = None
    ctr["Attributes"]["voicemail"] = "true"
    ctr["DisconnectReason"] = "CONTACT_FLOW_DISCONNECT"
    return ctr


def abandoned_ctr(**overrides: Any) -> dict[str, Any]:
    """The patient hung up while waiting in the queue."""
    ctr = _without_agent(billable_ctr(**overrides))
    ctr["Queue"]["DequeueTimestamp"] = ctr["DisconnectTimestamp"]
    ctr["DisconnectReason"] = "CUSTOMER_DISCONNECT"
    return ctr


def chat_ctr(**overrides: Any) -> dict[str, Any]:
    overrides.setdefault("channel", "CHAT")
    return billable_ctr(**overrides)


def monitor_ctr(**overrides: Any) -> dict[str, Any]:
    """A supervisor listening in: has an agent connection, is never billed."""
    overrides.setdefault("initiation_method", "MONITOR")
    return billable_ctr(**overrides)


def agent_event() -> dict[str, Any]:
    """An Amazon Connect agent event (shares the stream in some set-ups; has no ContactId)."""
    return {
        "AWSAccountId": "111122223333",
        "AgentARN": f"{INSTANCE_ARN}/agent/7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f",
        "EventId": str(uuid.uuid4()),
        "EventTimestamp": "2026-11-02T14:14:20.000Z",
        "EventType": "STATE_CHANGE",
        "InstanceARN": INSTANCE_ARN,
        "Version": "2017-10-01",
    }


# --- Firehose ---------------------------------------------------------------------------------------

Payload = Mapping[str, Any] | bytes | str


def encode(payload: Payload) -> str:
    """Record data as Firehose sends it: base64 of the bytes (a mapping is JSON-encoded first)."""
    if isinstance(payload, Mapping):
        payload = json.dumps(payload, separators=(",", ":"))
    if isinstance(payload, str):
        payload = payload.encode()
    return base64.b64encode(payload).decode("ascii")


def firehose_record(payload: Payload, record_id: str, sequence: int = 0) -> dict[str, Any]:
    arrival = 1793715600000 + sequence
    return {
        "recordId": record_id,
        "approximateArrivalTimestamp": arrival,
        "data": encode(payload),
        "kinesisRecordMetadata": {
            "shardId": "shardId-000000000000",
            "partitionKey": "connect",
            "approximateArrivalTimestamp": arrival,
            "sequenceNumber": str(49590338271490256608559692538361571095921575989136588898 + sequence),
            "subsequenceNumber": 0,
        },
    }


def firehose_event(payloads: Iterable[Payload]) -> dict[str, Any]:
    """A transformation request with one record per payload; recordIds are ``r0``, ``r1``, ..."""
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:111122223333:deliverystream/ctr-billing-vendor",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:111122223333:stream/ctr-billing-ctr",
        "region": "us-east-1",
        "records": [firehose_record(payload, f"r{index}", index) for index, payload in enumerate(payloads)],
    }


# --- realistic traffic ------------------------------------------------------------------------------

BILLABLE_KINDS = (billable_ctr, outbound_ctr, transfer_ctr)
NOT_BILLABLE_KINDS = (voicemail_ctr, abandoned_ctr, chat_ctr, monitor_ctr)


def realistic_ctrs(count: int, *, billable_share: float = 0.8, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` varied CTRs of one day, ``billable_share`` of them billable under the default settings."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)
    ctrs = []
    for index in range(count):
        builder = rng.choice(BILLABLE_KINDS if rng.random() < billable_share else NOT_BILLABLE_KINDS)
        ctrs.append(
            builder(
                contact_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                initiated=start + timedelta(seconds=index * 37 + rng.randrange(30)),
                queue_seconds=rng.randrange(5, 300),
                talk_seconds=rng.randrange(30, 2400),
                hold_seconds=rng.choice((0, 0, 15, 60, 240)),
                number_of_holds=rng.randrange(0, 3),
                phone=f"+1202555{rng.randrange(10000):04d}",
                extension=rng.choice((None, f"{rng.randrange(1000, 9999)}")),
                agent_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                username=rng.choice(("dr.okafor", "dr.lindqvist", "np.haddad", "dr.moreau")),
            )
        )
    return ctrs


def _set_or_drop(target: dict[str, Any], key: str, value: object) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


@dataclass(frozen=True)
class LambdaContext:
    """What powertools' ``inject_lambda_context`` reads from the Lambda context."""

    function_name: str = "ctr-billing-transform-csv"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:111122223333:function:ctr-billing-transform-csv"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "6f1c9a8e-0d3b-4c5e-9f7a-2b1d0e3c4a5f"
    log_group_name: str = "/aws/lambda/ctr-billing-transform-csv"
    log_stream_name: str = "2026/11/02/[$LATEST]0123456789abcdef"
