"""Connect traffic simulator: realistic telehealth contact trace records, deterministic with a seed.

It generates CTRs (and the agent events that share the stream) one at a time, so memory does not grow
with the number of contacts, and it keeps the truth as counters: which records are CTRs, which
contacts are billable under given billing settings, how long each provider was with the patient and
which calls the contact centre placed to the patient (all decided from how each contact was generated,
not by running the transform's rules), and how many versions of them were published.

The shapes follow real CTRs: a cold transfer to an outside number keeps the contact open after the
provider has gone, with ``TransferCompletedTimestamp``, ``TransferredToEndpoint`` and the agent's
after-contact work starting at the transfer (as in the real CTR in tests/fixtures/ctrs: transfer and
after-contact work at 17:28:12, disconnect 19 minutes later); after-contact work often starts seconds after the disconnect;
some agents have no after-contact work at all.

Phone numbers are from the fictional 555-01xx range.
"""

from __future__ import annotations

import enum
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

ACCOUNT = "111122223333"
INSTANCE_ID = "0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"
INSTANCE_ARN = f"arn:aws:connect:us-east-1:{ACCOUNT}:instance/{INSTANCE_ID}"
DEFAULT_START = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)


class Kind(enum.Enum):
    INBOUND_EXTENSION = "inbound_extension"  # patient dialled a provider's extension
    INBOUND_QUEUE = "inbound_queue"  # routed through the queue to a provider
    VOICEMAIL = "voicemail"  # left a voicemail, no provider connected
    ABANDONED = "abandoned"  # hung up while queued
    OUTBOUND = "outbound"  # provider called the patient
    CALLBACK = "callback"  # queued callback reached the patient
    TRANSFER = "transfer"  # two linked contacts: the first leg and the transferred leg
    # The provider cold-transferred the patient to an outside number and left; the contact stays open.
    EXTERNAL_TRANSFER = "external_transfer"
    CONFERENCE = "conference"  # an outside party (e.g. an interpreter) joined; the provider stayed
    API_CHAT = "api_chat"  # a patient started a chat (StartChatContact): InitiationMethod API, inbound
    IN_APP_CALL = "in_app_call"  # a voice call from the patient app: InitiationMethod WEBRTC_API, inbound
    API_OUTBOUND = "api_outbound"  # StartOutboundVoiceContact: InitiationMethod API on voice, outbound
    MONITOR = "monitor"  # a supervisor listening in


DEFAULT_MIX: Mapping[Kind, float] = {
    Kind.INBOUND_EXTENSION: 0.25,
    Kind.INBOUND_QUEUE: 0.17,
    Kind.VOICEMAIL: 0.07,
    Kind.ABANDONED: 0.06,
    Kind.OUTBOUND: 0.10,
    Kind.CALLBACK: 0.04,
    Kind.TRANSFER: 0.05,
    Kind.EXTERNAL_TRANSFER: 0.05,
    Kind.CONFERENCE: 0.04,
    Kind.API_CHAT: 0.06,
    Kind.IN_APP_CALL: 0.04,
    Kind.API_OUTBOUND: 0.03,
    Kind.MONITOR: 0.04,
}
# Kinds in which the contact centre placed the call to the patient (what was generated, not a method list).
PLACED_TO_PATIENT = frozenset({Kind.OUTBOUND, Kind.CALLBACK, Kind.API_OUTBOUND})
# Per contact: chance that Connect republishes its CTR with changed attributes, and the agent events
# (no ContactId) that share the stream.
DEFAULT_REPUBLISH_RATE = 0.04
DEFAULT_AGENT_EVENT_RATE = 0.10


@dataclass(frozen=True, slots=True)
class Provider:
    agent_id: str
    username: str
    extension: str

    @property
    def arn(self) -> str:
        return f"{INSTANCE_ARN}/agent/{self.agent_id}"

    def directory_entry(self) -> dict[str, str]:
        return {"agentId": self.agent_id, "extension": self.extension, "username": self.username}


@dataclass(frozen=True, slots=True)
class SimulatedRecord:
    data: bytes
    partition_key: str


@dataclass(slots=True)
class Contact:
    """One generated contact: its CTR and the facts the simulator generated it from."""

    kind: Kind
    ctr: dict[str, Any]
    # Seconds the provider was with the patient (talk and holds), from the connect to when the provider
    # left (hung up, or handed the patient to an outside number); 0 without a provider.
    provider_seconds: int
    # Seconds from the initiation to the disconnect: menus, queue, provider, and after a transfer.
    contact_seconds: int

    @property
    def contact_id(self) -> str:
        return str(self.ctr["ContactId"])


@dataclass(slots=True)
class Truth:
    """What the simulator knows about what it generated, as counters (flat memory)."""

    records: int = 0
    ctr_records: int = 0
    agent_events: int = 0
    contacts: int = 0
    # contacts billable under the settings, and the CTR records (every published version) of them
    billable_contacts: int = 0
    billable_records: int = 0
    # provider seconds of the billable contacts (one version each) and of every billable record
    billable_seconds: int = 0
    billable_record_seconds: int = 0
    # billable contacts (and records) in which the contact centre called the patient
    outbound_contacts: int = 0
    outbound_records: int = 0
    republished: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    not_billable_by_kind: Counter[str] = field(default_factory=Counter)
    billable_by_kind: Counter[str] = field(default_factory=Counter)
    # of the billable contacts: provider seconds (what is billed) and whole-contact seconds
    billable_seconds_by_kind: Counter[str] = field(default_factory=Counter)
    contact_seconds_by_kind: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "ctr_records": self.ctr_records,
            "agent_events": self.agent_events,
            "contacts": self.contacts,
            "billable_contacts": self.billable_contacts,
            "billable_records": self.billable_records,
            "billable_seconds": self.billable_seconds,
            "billable_record_seconds": self.billable_record_seconds,
            "outbound_contacts": self.outbound_contacts,
            "outbound_records": self.outbound_records,
            "republished": self.republished,
            "contacts_by_kind": dict(sorted(self.by_kind.items())),
            "kinds": {
                kind: {
                    "contacts": contacts,
                    "billable": self.billable_by_kind[kind],
                    "billable_seconds": self.billable_seconds_by_kind[kind],
                    "contact_seconds_of_billable": self.contact_seconds_by_kind[kind],
                }
                for kind, contacts in sorted(self.by_kind.items())
            },
        }


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fictional_phone(rng: random.Random) -> str:
    return f"+1202555{rng.randint(100, 199):04d}"


class ConnectSimulator:
    """``records()`` yields ``contacts`` contacts' CTRs (a transfer is two contacts) plus agent events
    and republished updates, in the order Connect would publish them."""

    def __init__(
        self,
        contacts: int,
        *,
        seed: int = 7,
        mix: Mapping[Kind, float] = DEFAULT_MIX,
        providers: int = 40,
        start: datetime = DEFAULT_START,
        billable_channels: frozenset[str] = frozenset({"VOICE"}),
        min_billable_seconds: int = 0,
        extension_attribute: str = "extensionNumber",
        republish_rate: float = DEFAULT_REPUBLISH_RATE,
        agent_event_rate: float = DEFAULT_AGENT_EVENT_RATE,
    ) -> None:
        if contacts < 0:
            raise ValueError("contacts must not be negative")
        self.contacts = contacts
        self._seed = seed
        self._mix = [(kind, weight) for kind, weight in mix.items() if weight > 0]
        self._start = start
        self._billable_channels = billable_channels
        self._min_seconds = min_billable_seconds
        self._attribute = extension_attribute
        self._republish_rate = republish_rate
        self._agent_event_rate = agent_event_rate
        roster = random.Random(f"{seed}-providers")
        self.providers = [
            Provider(
                agent_id=str(uuid.UUID(int=roster.getrandbits(128), version=4)),
                username=f"provider.{index:03d}",
                extension=str(1000 + index),
            )
            for index in range(providers)
        ]
        self.truth = Truth()

    # --- generation --------------------------------------------------------------------------------

    def records(self) -> Iterator[SimulatedRecord]:
        self.truth = Truth()
        rng = random.Random(self._seed)
        kinds = [kind for kind, _ in self._mix]
        weights = [weight for _, weight in self._mix]
        clock = self._start
        generated = 0
        while generated < self.contacts:
            clock += timedelta(seconds=rng.randint(5, 90))
            kind = rng.choices(kinds, weights)[0]
            if kind is Kind.TRANSFER and self.contacts - generated < 2:
                kind = Kind.INBOUND_QUEUE
            for contact in self._contact(rng, kind, clock):
                generated += 1
                yield from self._publish(rng, contact)
            if rng.random() < self._agent_event_rate:
                yield self._agent_event(rng, clock)

    def _publish(self, rng: random.Random, contact: Contact) -> Iterator[SimulatedRecord]:
        truth = self.truth
        kind = contact.kind.value
        billable = self._billable(contact)
        outbound = billable and contact.kind in PLACED_TO_PATIENT
        truth.contacts += 1
        truth.by_kind[kind] += 1
        if billable:
            truth.billable_contacts += 1
            truth.billable_seconds += contact.provider_seconds
            truth.outbound_contacts += outbound
            truth.billable_by_kind[kind] += 1
            truth.billable_seconds_by_kind[kind] += contact.provider_seconds
            truth.contact_seconds_by_kind[kind] += contact.contact_seconds
        else:
            truth.not_billable_by_kind[kind] += 1
        ctr = contact.ctr
        versions = [ctr]
        if rng.random() < self._republish_rate:
            # Connect republishes when attributes change after the contact: same ContactId, later update.
            update = json.loads(json.dumps(ctr))
            update["Attributes"] = {**(update.get("Attributes") or {}), "followUpBooked": "true"}
            last = datetime.fromisoformat(ctr["LastUpdateTimestamp"])
            update["LastUpdateTimestamp"] = _timestamp(last + timedelta(minutes=rng.randint(5, 120)))
            versions.append(update)
            truth.republished += 1
        for version in versions:
            truth.records += 1
            truth.ctr_records += 1
            if billable:
                truth.billable_records += 1
                truth.billable_record_seconds += contact.provider_seconds
                truth.outbound_records += outbound
            yield SimulatedRecord(json.dumps(version, separators=(",", ":")).encode(), version["ContactId"])

    def _billable(self, contact: Contact) -> bool:
        """From the generated facts: channel, a provider connection, not a monitor, long enough."""
        ctr = contact.ctr
        if ctr["Channel"] not in self._billable_channels or not ctr.get("Agent"):
            return False
        if contact.kind is Kind.MONITOR:
            return False
        return contact.provider_seconds >= self._min_seconds

    def _agent_event(self, rng: random.Random, clock: datetime) -> SimulatedRecord:
        provider = rng.choice(self.providers)
        self.truth.records += 1
        self.truth.agent_events += 1
        event = {
            "AWSAccountId": ACCOUNT,
            "AgentARN": provider.arn,
            "EventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "EventTimestamp": _timestamp(clock),
            "EventType": rng.choice(["STATE_CHANGE", "HEART_BEAT", "LOGIN"]),
            "InstanceARN": INSTANCE_ARN,
            "CurrentAgentSnapshot": {"AgentStatus": {"Name": rng.choice(["Available", "Offline", "Lunch"])}},
            "Version": "2017-10-01",
        }
        return SimulatedRecord(json.dumps(event, separators=(",", ":")).encode(), provider.agent_id)

    # --- contacts ----------------------------------------------------------------------------------

    def _contact(self, rng: random.Random, kind: Kind, clock: datetime) -> list[Contact]:
        if kind is Kind.TRANSFER:
            first = self._ctr(rng, kind, clock, method="INBOUND", queued=True)
            second_start = datetime.fromisoformat(first.ctr["DisconnectTimestamp"])
            second = self._ctr(rng, kind, second_start, method="TRANSFER", queued=True)
            # A transfer inside Connect ends the first contact at the transfer; the next leg goes on.
            first.ctr["NextContactId"] = second.contact_id
            first.ctr["DisconnectReason"] = "CONTACT_FLOW_DISCONNECT"
            first.ctr["TransferCompletedTimestamp"] = first.ctr["DisconnectTimestamp"]
            second.ctr["PreviousContactId"] = first.contact_id
            second.ctr["InitialContactId"] = first.contact_id
            second.ctr["CustomerEndpoint"] = first.ctr["CustomerEndpoint"]
            return [first, second]
        method, queued = {
            Kind.INBOUND_EXTENSION: ("INBOUND", False),
            Kind.INBOUND_QUEUE: ("INBOUND", True),
            Kind.VOICEMAIL: ("INBOUND", False),
            Kind.ABANDONED: ("INBOUND", True),
            Kind.OUTBOUND: ("OUTBOUND", False),
            Kind.CALLBACK: ("CALLBACK", True),
            Kind.EXTERNAL_TRANSFER: ("INBOUND", True),
            Kind.CONFERENCE: ("INBOUND", True),
            Kind.API_CHAT: ("API", True),
            Kind.IN_APP_CALL: ("WEBRTC_API", True),
            Kind.API_OUTBOUND: ("API", True),
            Kind.MONITOR: ("MONITOR", False),
        }[kind]
        return [self._ctr(rng, kind, clock, method=method, queued=queued)]

    def _ctr(self, rng: random.Random, kind: Kind, start: datetime, *, method: str, queued: bool) -> Contact:
        contact_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        provider = rng.choice(self.providers)
        phone = _fictional_phone(rng)
        channel = "CHAT" if kind is Kind.API_CHAT else "VOICE"
        system = start + timedelta(seconds=rng.randint(0, 3))
        connected_to_agent = kind not in (Kind.VOICEMAIL, Kind.ABANDONED)
        wait = rng.randint(5, 240) if queued else rng.randint(1, 8)
        talk = rng.randint(1, 1800) if rng.random() < 0.1 else rng.randint(60, 1500)
        holds = rng.choice([0, 0, 0, 1, 2])
        hold_seconds = sum(rng.randint(10, 120) for _ in range(holds))
        connected = system + timedelta(seconds=wait)
        # When the provider left the patient: talk and holds after the connect.
        provider_left = connected + timedelta(seconds=talk + hold_seconds)
        if not connected_to_agent:
            provider_seconds = 0
            disconnect = (
                connected + timedelta(seconds=rng.randint(20, 120))
                if kind is Kind.VOICEMAIL
                else system + timedelta(seconds=wait)
            )
        elif kind is Kind.EXTERNAL_TRANSFER:
            # The patient talks on with the outside number after the provider has gone.
            provider_seconds = talk + hold_seconds
            disconnect = provider_left + timedelta(seconds=rng.randint(60, 1500))
        else:
            provider_seconds = talk + hold_seconds
            disconnect = provider_left
        attributes: dict[str, str] = {"greetingPlayed": "true"}
        if kind in (Kind.INBOUND_EXTENSION, Kind.VOICEMAIL):
            attributes[self._attribute] = provider.extension
        if kind is Kind.VOICEMAIL:
            attributes["vm_flag"] = "1"
        # An in-app call has no telephone number; a chat has no voice endpoint.
        endpoint = (
            {"Address": phone, "Type": "TELEPHONE_NUMBER"}
            if channel == "VOICE" and kind is not Kind.IN_APP_CALL
            else None
        )
        ctr: dict[str, Any] = {
            "AWSAccountId": ACCOUNT,
            "AWSContactTraceRecordFormatVersion": "2017-03-10",
            "Agent": None,
            "AgentConnectionAttempts": 1 if connected_to_agent else 0,
            "Attributes": attributes,
            "Channel": channel,
            "ConnectedToSystemTimestamp": _timestamp(system),
            "ContactId": contact_id,
            "CustomerEndpoint": endpoint,
            "DisconnectReason": rng.choice(["CUSTOMER_DISCONNECT", "AGENT_DISCONNECT"]),
            "DisconnectTimestamp": _timestamp(disconnect),
            "InitialContactId": None,
            "InitiationMethod": method,
            "InitiationTimestamp": _timestamp(start),
            "InstanceARN": INSTANCE_ARN,
            "LastUpdateTimestamp": _timestamp(disconnect + timedelta(seconds=rng.randint(30, 200))),
            "MediaStreams": [{"Type": "CHAT" if channel == "CHAT" else "AUDIO"}],
            "NextContactId": None,
            "PreviousContactId": None,
            "Queue": None,
            "SystemEndpoint": {"Address": "+12025550100", "Type": "TELEPHONE_NUMBER"},
            "TransferCompletedTimestamp": None,
            "TransferredToEndpoint": None,
        }
        if kind is Kind.ABANDONED:
            ctr["DisconnectReason"] = "CUSTOMER_DISCONNECT"
        if queued:
            ctr["Queue"] = {
                "ARN": f"{INSTANCE_ARN}/queue/9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
                "Name": "Telehealth General",
                "EnqueueTimestamp": _timestamp(system),
                "DequeueTimestamp": _timestamp(connected),
                "Duration": wait,
            }
        if connected_to_agent:
            ctr["Agent"] = {
                "ARN": provider.arn,
                "Username": provider.username,
                "ConnectedToAgentTimestamp": _timestamp(connected),
                "CustomerHoldDuration": hold_seconds,
                "NumberOfHolds": holds,
                "LongestHoldDuration": hold_seconds,
                "AgentInteractionDuration": talk,
                "RoutingProfile": {"Name": "Telehealth Providers"},
                **self._after_contact_work(rng, kind, provider_left),
            }
        if kind is Kind.EXTERNAL_TRANSFER:
            ctr["TransferCompletedTimestamp"] = _timestamp(provider_left)
            ctr["TransferredToEndpoint"] = {"Address": _fictional_phone(rng), "Type": "TELEPHONE_NUMBER"}
            ctr["DisconnectReason"] = rng.choice(["CUSTOMER_DISCONNECT", "THIRD_PARTY_DISCONNECT"])
        elif kind is Kind.CONFERENCE:
            # The outside number the provider dialled in; no transfer completed, since the provider never
            # handed the patient over, and after-contact work starts only when the provider hangs up.
            ctr["TransferredToEndpoint"] = {"Address": _fictional_phone(rng), "Type": "TELEPHONE_NUMBER"}
        return Contact(kind, ctr, provider_seconds, (disconnect - start) // timedelta(seconds=1))

    @staticmethod
    def _after_contact_work(rng: random.Random, kind: Kind, provider_left: datetime) -> dict[str, Any]:
        """The agent's after-contact work: it starts when the agent's leg ends, and is absent for agents
        without after-contact work."""
        if rng.random() < 0.1:
            return {
                "AfterContactWorkDuration": None,
                "AfterContactWorkStartTimestamp": None,
                "AfterContactWorkEndTimestamp": None,
            }
        # After an external transfer it starts at the transfer itself, as in the real CTR; otherwise often
        # seconds after the disconnect (24 s in the production CTR in tests/fixtures/ctrs).
        late = 0 if kind is Kind.EXTERNAL_TRANSFER or rng.random() < 0.6 else rng.randint(1, 30)
        work_start = provider_left + timedelta(seconds=late)
        work = rng.randint(0, 90)
        return {
            "AfterContactWorkDuration": work,
            "AfterContactWorkStartTimestamp": _timestamp(work_start),
            "AfterContactWorkEndTimestamp": _timestamp(work_start + timedelta(seconds=work)),
        }


def billing_settings(environment: Mapping[str, str]) -> dict[str, Any]:
    """The simulator's billing arguments from a transform function's environment (the stack's settings)."""
    channels = environment.get("BILLABLE_CHANNELS", "VOICE")
    return {
        "billable_channels": frozenset(part.strip().upper() for part in channels.split(",") if part.strip()),
        "min_billable_seconds": int(environment.get("MIN_BILLABLE_SECONDS") or 0),
        "extension_attribute": environment.get("EXTENSION_ATTRIBUTE") or "extensionNumber",
    }
