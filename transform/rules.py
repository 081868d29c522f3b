"""The billing rules (DESIGN §3): classify one decoded CTR as billable, not billable or invalid.

Pure functions over plain dicts; no AWS, no I/O. Messages never contain field values (PHI).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from transform.settings import TransformSettings
from transform.timestamps import TimestampError, parse_timestamp


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

OUTBOUND_METHODS = frozenset({"OUTBOUND", "CALLBACK", "API", "EXTERNAL_OUTBOUND", "CAMPAIGN_PREVIEW"})


@dataclass(slots=True)
class BillableContact:
    """A billable CTR with its billing fields parsed; the other columns are read from ``ctr`` on demand."""

    ctr: dict[str, Any]
    agent: dict[str, Any]
    initiated: datetime
    connected: datetime
    disconnected: datetime
    duration_seconds: int
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
    contact_id = ctr.get("ContactId")
    if contact_id is None:
        return NOT_A_CONTACT_RECORD
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

    # Whole seconds rounded down, without float rounding: timedelta floor-divides exactly.
    duration = (disconnected - connected) // _ONE_SECOND
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
        duration,
        hold_seconds,
        extension_attribute(ctr, settings.extension_attribute),
        agent_id(agent),
    )


def call_type(initiation_method: object) -> str:
    return (
        "OUTBOUND" if type(initiation_method) is str and initiation_method in OUTBOUND_METHODS else "INBOUND"
    )


def extension_attribute(ctr: dict[str, Any], attribute: str) -> str:
    attributes = ctr.get("Attributes")
    if isinstance(attributes, dict):
        value = attributes.get(attribute)
        if isinstance(value, str):
            return value.strip()
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
