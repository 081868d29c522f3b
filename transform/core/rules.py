"""The billing rules (DESIGN §3): classify one decoded CTR as billable, not billable or invalid.

Pure functions over plain dicts; no AWS, no I/O. Messages never contain field values (PHI).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lookup.identifiers import canonical_extension
from transform.core.settings import TransformSettings
from transform.core.timestamps import TimestampError, parse_timestamp


class Outcome(enum.Enum):
    """One count per outcome; the values are the metric names."""

    MALFORMED = "MalformedRecord"
    NOT_A_CONTACT_RECORD = "NotAContactRecord"
    INVALID = "InvalidContactRecord"
    NOT_BILLABLE = "NotBillable"
    BILLABLE = "BillableContact"
    DUPLICATE = "DuplicateContact"
    # A sub-count of DUPLICATE (not a record's only outcome): the dropped version changed billing fields.
    BILLING_CORRECTION = "BillingCorrection"


class NotBillableReason(enum.Enum):
    """Why a CTR is not billed; the values are the ``Reason`` metric dimension."""

    CHANNEL = "ChannelNotBillable"
    NOT_CONNECTED_TO_AGENT = "NotConnectedToAgent"
    MONITOR = "SupervisorMonitor"
    BELOW_MINIMUM_DURATION = "BelowMinimumDuration"


_ONE_SECOND = timedelta(seconds=1)
# The largest value of a bigint (int64) column; a count beyond it could not reach the data lake.
MAX_BIGINT = 2**63 - 1

# Methods that start an outbound contact on every channel; ``API`` only on VOICE (``call_type``). Anything
# else (INBOUND, TRANSFER, QUEUE_TRANSFER, WEBRTC_API in-app calling, methods Connect adds later) is inbound.
OUTBOUND_METHODS = frozenset({"OUTBOUND", "CALLBACK", "EXTERNAL_OUTBOUND", "CAMPAIGN_PREVIEW"})


@dataclass(slots=True)
class BillableContact:
    """A billable CTR with its billing fields parsed; the other columns are read from ``ctr`` on demand."""

    ctr: dict[str, Any]
    agent: dict[str, Any]
    initiated: datetime
    connected: datetime
    disconnected: datetime
    # The end of provider time (DESIGN §3): when the provider left the patient.
    provider_left: datetime
    duration_seconds: int
    contact_duration_seconds: int | None
    hold_seconds: int
    provider_extension: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class NotBillable:
    reason: NotBillableReason


@dataclass(frozen=True, slots=True)
class NotAContactRecord:
    pass


@dataclass(frozen=True, slots=True)
class InvalidContact:
    problem: str


Classification = BillableContact | NotBillable | NotAContactRecord | InvalidContact

NOT_A_CONTACT_RECORD = NotAContactRecord()
MAX_CONTACT_ID_BYTES = 2048  # DynamoDB's partition-key limit (the billing ledger's key)
# One instance per reason: a not-billable contact costs no allocation.
_NOT_BILLABLE = {reason: NotBillable(reason) for reason in NotBillableReason}


def classify(ctr: dict[str, Any], settings: TransformSettings) -> Classification:
    if "ContactId" not in ctr:
        return NOT_A_CONTACT_RECORD
    contact_id = ctr["ContactId"]
    # Null included: a CTR too damaged to decide on, and dropping it could lose a bill.
    if type(contact_id) is not str or not contact_id:
        return InvalidContact("ContactId is not a non-empty string")

    channel = ctr.get("Channel")
    if type(channel) is not str or channel not in settings.billable_channels:
        return _NOT_BILLABLE[NotBillableReason.CHANNEL]
    agent = ctr.get("Agent")
    if type(agent) is not dict or agent.get("ConnectedToAgentTimestamp") in (None, ""):
        return _NOT_BILLABLE[NotBillableReason.NOT_CONNECTED_TO_AGENT]
    if ctr.get("InitiationMethod") == "MONITOR":
        return _NOT_BILLABLE[NotBillableReason.MONITOR]

    try:
        initiated = parse_timestamp(ctr.get("InitiationTimestamp"))
    except TimestampError as error:
        return InvalidContact(f"InitiationTimestamp {error}")
    try:
        connected = parse_timestamp(agent["ConnectedToAgentTimestamp"])
    except TimestampError as error:
        return InvalidContact(f"Agent.ConnectedToAgentTimestamp {error}")
    try:
        disconnected = parse_timestamp(ctr.get("DisconnectTimestamp"))
    except TimestampError as error:
        return InvalidContact(f"DisconnectTimestamp {error}")
    if disconnected < connected:
        return InvalidContact("DisconnectTimestamp precedes Agent.ConnectedToAgentTimestamp")

    provider_left = _provider_left(ctr, agent, disconnected)
    if type(provider_left) is InvalidContact:
        return provider_left
    assert isinstance(provider_left, datetime)
    if provider_left < connected:
        return InvalidContact("the provider left before Agent.ConnectedToAgentTimestamp")

    # Whole seconds rounded down, without float rounding: timedelta floor-divides exactly.
    duration = (provider_left - connected) // _ONE_SECOND
    if duration < settings.min_billable_seconds:
        return _NOT_BILLABLE[NotBillableReason.BELOW_MINIMUM_DURATION]

    hold = agent.get("CustomerHoldDuration")
    if hold is None:
        hold_seconds = 0
    elif type(hold) is int and 0 <= hold <= MAX_BIGINT:
        hold_seconds = hold
    elif _is_finite_non_negative(hold):
        hold_seconds = math.floor(hold)
    else:
        return InvalidContact("Agent.CustomerHoldDuration is not a non-negative number")

    # The billing ledger keys on ContactId; DynamoDB refuses a partition key over 2,048 bytes, which
    # would fail the whole invocation on every retry. Connect's contact ids are 36-character UUIDs.
    if (
        len(contact_id) > MAX_CONTACT_ID_BYTES // 4
        and len(contact_id.encode("utf-8", "surrogatepass")) > MAX_CONTACT_ID_BYTES
    ):
        return InvalidContact(f"ContactId is longer than {MAX_CONTACT_ID_BYTES:,} bytes")

    return BillableContact(
        ctr,
        agent,
        initiated,
        connected,
        disconnected,
        provider_left,
        duration,
        # Unknown (null) rather than negative when the clock data is inconsistent: it does not decide the
        # bill, so it does not make the record invalid.
        (disconnected - initiated) // _ONE_SECOND if disconnected >= initiated else None,
        hold_seconds,
        extension_attribute(ctr, settings.extension_attribute),
        agent_id(agent),
    )


def _provider_left(
    ctr: dict[str, Any], agent: dict[str, Any], disconnected: datetime
) -> datetime | InvalidContact:
    """When the provider left the patient: the end of provider time (DESIGN §3).

    After-contact work starts when the agent's leg ends (in real CTRs a few seconds after the disconnect,
    hence the earlier of the two). Without it, a completed transfer ends the provider's part: a cold
    transfer to an outside number keeps the contact open after the provider has gone. Only the timestamp
    the rule uses is read, so a damaged field the rule does not need costs no bill.
    """
    for owner, field_name, label in (
        (agent, "AfterContactWorkStartTimestamp", "Agent.AfterContactWorkStartTimestamp"),
        (ctr, "TransferCompletedTimestamp", "TransferCompletedTimestamp"),
    ):
        value = owner.get(field_name)
        if value is None:
            continue
        try:
            end = parse_timestamp(value)
        except TimestampError as error:
            return InvalidContact(f"{label} {error}")
        return end if end < disconnected else disconnected
    return disconnected


def call_type(initiation_method: object, channel: object) -> str:
    """``OUTBOUND`` or ``INBOUND``. ``API`` starts an outbound call only on voice
    (StartOutboundVoiceContact); on chat or task it is a customer starting the contact."""
    if type(initiation_method) is not str:
        return "INBOUND"
    if initiation_method in OUTBOUND_METHODS or (initiation_method == "API" and channel == "VOICE"):
        return "OUTBOUND"
    return "INBOUND"


def extension_attribute(ctr: dict[str, Any], attribute: str) -> str:
    """The contact's extension attribute in the canonical form (DESIGN §3): Unicode decimal digits as
    ASCII, leading zeros kept; any other text as given (the CSV writer formula-guards it)."""
    attributes = ctr.get("Attributes")
    if isinstance(attributes, dict):
        value = attributes.get(attribute)
        if isinstance(value, str):
            return canonical_extension(value)
    return ""


def agent_id(agent: dict[str, Any]) -> str:
    arn = agent.get("ARN")
    if isinstance(arn, str):
        return arn.rsplit("/", 1)[-1]
    return ""


def _is_finite_non_negative(value: object) -> bool:
    """A JSON number that fits the lake's bigint columns once rounded down."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < MAX_BIGINT + 1
    )
