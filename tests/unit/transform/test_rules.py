"""The billing rules (DESIGN §3): which CTRs are billable, and why the others are not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.support import ctr_factory as ctrs
from transform.core.rules import (
    BillableContact,
    InvalidContact,
    NotAContactRecord,
    NotBillable,
    NotBillableReason,
    call_type,
    classify,
)
from transform.core.settings import TransformSettings

DEFAULTS = TransformSettings.from_environ({})


def _billable(ctr: dict[str, Any], settings: TransformSettings = DEFAULTS) -> BillableContact:
    result = classify(ctr, settings)
    assert isinstance(result, BillableContact), result
    return result


def _reason(ctr: dict[str, Any], settings: TransformSettings = DEFAULTS) -> NotBillableReason:
    result = classify(ctr, settings)
    assert isinstance(result, NotBillable), result
    return result.reason


def _problem(ctr: dict[str, Any]) -> str:
    result = classify(ctr, DEFAULTS)
    assert isinstance(result, InvalidContact), result
    return result.problem


# --- the outcome table, in order ------------------------------------------------------------------


def test_a_json_object_without_contact_id_is_not_a_contact_record() -> None:
    # GIVEN an agent event sharing the stream  WHEN classified  THEN not a contact record
    assert isinstance(classify(ctrs.agent_event(), DEFAULTS), NotAContactRecord)
    assert isinstance(classify({"Channel": "VOICE"}, DEFAULTS), NotAContactRecord)


@pytest.mark.parametrize("contact_id", [None, "", 42, ["x"], {"id": "x"}])
def test_a_contact_id_that_is_not_a_non_empty_string_is_invalid(contact_id: object) -> None:
    ctr = ctrs.billable_ctr()
    ctr["ContactId"] = contact_id
    assert _problem(ctr) == "ContactId is not a non-empty string"


def test_a_billable_contact_id_over_the_ledger_key_limit_is_invalid() -> None:
    # GIVEN billable CTRs whose ContactId is exactly 2,048 bytes of UTF-8, and one byte more
    at_limit = ctrs.billable_ctr(contact_id="\u00e9" * 1024)
    over = ctrs.billable_ctr(contact_id="\u00e9" * 1024 + "x")
    # THEN the first bills; the second is invalid (DynamoDB would refuse it as the ledger's key)
    assert _billable(at_limit).ctr["ContactId"] == at_limit["ContactId"]
    assert _problem(over) == "ContactId is longer than 2,048 bytes"
    # AND a contact that is not billable anyway is still dropped for its reason
    voicemail = ctrs.voicemail_ctr()
    voicemail["ContactId"] = "x" * 5000
    assert _reason(voicemail) is NotBillableReason.NOT_CONNECTED_TO_AGENT


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda c: c.pop("InitiationTimestamp"), "InitiationTimestamp not a string"),
        (lambda c: c.update(InitiationTimestamp="Monday"), "InitiationTimestamp not an ISO 8601 timestamp"),
        (
            lambda c: c["Agent"].update(ConnectedToAgentTimestamp="2026-11-02T14:14:20"),
            "Agent.ConnectedToAgentTimestamp has no UTC offset",
        ),
        (lambda c: c.update(DisconnectTimestamp=None), "DisconnectTimestamp not a string"),
        (
            lambda c: c.update(DisconnectTimestamp="2026-11-02T14:00:00Z"),
            "DisconnectTimestamp precedes Agent.ConnectedToAgentTimestamp",
        ),
        (
            lambda c: c["Agent"].update(CustomerHoldDuration=-3),
            "Agent.CustomerHoldDuration is not a non-negative number",
        ),
        (
            lambda c: c["Agent"].update(CustomerHoldDuration="60"),
            "Agent.CustomerHoldDuration is not a non-negative number",
        ),
        (
            lambda c: c["Agent"].update(CustomerHoldDuration=True),
            "Agent.CustomerHoldDuration is not a non-negative number",
        ),
    ],
)
def test_a_billable_ctr_with_unusable_billing_fields_is_invalid(mutate: Any, problem: str) -> None:
    # GIVEN a contact billable by the rules whose billing field is unusable
    ctr = ctrs.billable_ctr(phone="+12025550177")
    mutate(ctr)
    # WHEN classified  THEN invalid, naming the field and never its value
    assert _problem(ctr) == problem
    assert "+12025550177" not in problem


def test_an_unusable_timestamp_on_a_contact_that_is_not_billable_is_just_not_billable() -> None:
    # GIVEN a voicemail (never billable) with a broken timestamp  WHEN classified  THEN not billable
    ctr = ctrs.voicemail_ctr()
    ctr["DisconnectTimestamp"] = "garbage"
    assert _reason(ctr) is NotBillableReason.NOT_CONNECTED_TO_AGENT


def test_the_sample_ctr_is_billable() -> None:
    # GIVEN the real-shaped sample  WHEN classified  THEN billable with its billing fields parsed
    contact = _billable(ctrs.sample_ctr())
    assert contact.duration_seconds == 1011  # 14:14:20 -> 14:31:11
    assert contact.hold_seconds == 60
    assert contact.provider_extension == "4417"
    assert contact.agent_id == "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"


# --- rule 1: channel ------------------------------------------------------------------------------


def test_rule_1_only_billable_channels_are_billed() -> None:
    assert _reason(ctrs.chat_ctr()) is NotBillableReason.CHANNEL
    with_chat = TransformSettings.from_environ({"BILLABLE_CHANNELS": "VOICE,CHAT"})
    assert _billable(ctrs.chat_ctr(), with_chat).duration_seconds == 1011


@pytest.mark.parametrize("channel", [None, "voice", 7, ["VOICE"], {"VOICE": 1}])
def test_rule_1_a_missing_or_odd_channel_is_not_billable(channel: object) -> None:
    ctr = ctrs.billable_ctr()
    ctr["Channel"] = channel
    assert _reason(ctr) is NotBillableReason.CHANNEL


# --- rule 2: the patient reached a provider -------------------------------------------------------


@pytest.mark.parametrize(
    "ctr",
    [
        ctrs.voicemail_ctr(),
        ctrs.abandoned_ctr(),
        {**ctrs.billable_ctr(), "Agent": "arn:aws:connect:agent"},
        {**ctrs.billable_ctr(), "Agent": {"ARN": "arn", "ConnectedToAgentTimestamp": None}},
        {**ctrs.billable_ctr(), "Agent": {"ARN": "arn", "ConnectedToAgentTimestamp": ""}},
        {k: v for k, v in ctrs.billable_ctr().items() if k != "Agent"},
    ],
    ids=["voicemail", "abandoned", "agent-not-object", "agent-null-ts", "agent-empty-ts", "no-agent"],
)
def test_rule_2_no_provider_connection_is_never_billed(ctr: dict[str, Any]) -> None:
    assert _reason(ctr) is NotBillableReason.NOT_CONNECTED_TO_AGENT


# --- rule 3: supervisor monitoring ----------------------------------------------------------------


def test_rule_3_a_supervisor_listening_in_is_not_billed() -> None:
    assert _reason(ctrs.monitor_ctr()) is NotBillableReason.MONITOR


# --- rule 4: minimum duration ---------------------------------------------------------------------


def test_rule_4_shorter_than_the_minimum_is_not_billed_and_the_minimum_itself_is() -> None:
    settings = TransformSettings.from_environ({"MIN_BILLABLE_SECONDS": "30"})
    assert _reason(ctrs.billable_ctr(talk_seconds=29), settings) is NotBillableReason.BELOW_MINIMUM_DURATION
    assert _billable(ctrs.billable_ctr(talk_seconds=30), settings).duration_seconds == 30


def test_rule_4_default_minimum_bills_a_zero_second_connection() -> None:
    assert _billable(ctrs.billable_ctr(talk_seconds=0)).duration_seconds == 0


# --- billing fields -------------------------------------------------------------------------------


def test_duration_is_time_with_the_provider_rounded_down_across_offsets() -> None:
    # GIVEN connect and disconnect written with fractions and different offsets (1 h 0 m 59.999 s apart)
    ctr = ctrs.billable_ctr()
    ctr["Agent"]["AfterContactWorkStartTimestamp"] = None
    ctr["Agent"]["ConnectedToAgentTimestamp"] = "2026-11-02T09:00:00.001-05:00"
    ctr["DisconnectTimestamp"] = "2026-11-02T15:01:00.000Z"
    ctr["InitiationTimestamp"] = "2026-11-02T13:59:00Z"
    # WHEN classified  THEN whole seconds, rounded down
    assert _billable(ctr).duration_seconds == 3659


@pytest.mark.parametrize(("hold", "expected"), [(None, 0), (0, 0), (60, 60), (59.9, 59), (0.4, 0)])
def test_hold_seconds_are_whole_and_zero_when_absent(hold: object, expected: int) -> None:
    assert _billable(ctrs.billable_ctr(hold_seconds=hold)).hold_seconds == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attributes", "setting", "expected"),
    [
        ({"extensionNumber": "4417"}, None, "4417"),
        ({"extensionNumber": " 4417 "}, None, "4417"),
        ({"providerExt": "88"}, "providerExt", "88"),
        ({"extensionNumber": 4417}, None, ""),
        # DESIGN §3: Unicode decimal digits as ASCII, leading zeros kept, any other text as given
        ({"extensionNumber": "\u0664\u0664\u0661\u0667"}, None, "4417"),  # Arabic-Indic
        ({"extensionNumber": "\u096a\u096a\u0967\u096d"}, None, "4417"),  # Devanagari
        ({"extensionNumber": "0417"}, None, "0417"),
        ({"extensionNumber": "=1+2"}, None, "=1+2"),
        ({}, None, ""),
        (None, None, ""),
    ],
)
def test_provider_extension_comes_from_the_configured_attribute(
    attributes: object, setting: str | None, expected: str
) -> None:
    ctr = ctrs.billable_ctr()
    ctr["Attributes"] = attributes
    settings = TransformSettings.from_environ({"EXTENSION_ATTRIBUTE": setting} if setting else {})
    assert _billable(ctr, settings).provider_extension == expected


# --- provider time: when the provider left ------------------------------------------------------


def _timed(
    connected: str, disconnected: str, acw_start: str | None = None, transfer_completed: str | None = None
) -> dict[str, Any]:
    ctr = ctrs.billable_ctr()
    ctr["InitiationTimestamp"] = "2026-11-02T10:00:00Z"
    ctr["Agent"]["ConnectedToAgentTimestamp"] = connected
    ctr["DisconnectTimestamp"] = disconnected
    ctr["Agent"]["AfterContactWorkStartTimestamp"] = acw_start
    ctr["TransferCompletedTimestamp"] = transfer_completed
    return ctr


@pytest.mark.parametrize(
    ("acw_start", "transfer_completed", "left", "seconds"),
    [
        # A cold transfer to an outside number: after-contact work starts at the transfer, 7 min 40 s in;
        # the contact stays open 19 more minutes. The patient is billed for 460 s, not 1,600 s.
        ("2026-11-02T10:07:52Z", "2026-11-02T10:07:51Z", "2026-11-02T10:07:52Z", 460),
        # After-contact work starting 3 s after the disconnect (as in real CTRs): the disconnect ends it.
        ("2026-11-02T10:26:55Z", None, "2026-11-02T10:26:52Z", 1600),
        # No after-contact work (e.g. an agent without ACW): a completed transfer ends provider time...
        (None, "2026-11-02T10:07:51.900Z", "2026-11-02T10:07:51.900Z", 459),
        # ...unless it is recorded after the disconnect.
        (None, "2026-11-02T10:26:59Z", "2026-11-02T10:26:52Z", 1600),
        # Neither: the disconnect.
        (None, None, "2026-11-02T10:26:52Z", 1600),
        # After-contact work wins over the transfer even when the transfer is earlier (a conference the
        # provider stayed in after completing it).
        ("2026-11-02T10:20:12Z", "2026-11-02T10:07:51Z", "2026-11-02T10:20:12Z", 1200),
    ],
)
def test_provider_time_ends_when_the_provider_left(
    acw_start: str | None, transfer_completed: str | None, left: str, seconds: int
) -> None:
    # GIVEN a provider connected at 10:00:12 on a contact that disconnected at 10:26:52
    ctr = _timed("2026-11-02T10:00:12Z", "2026-11-02T10:26:52Z", acw_start, transfer_completed)
    # WHEN classified
    contact = _billable(ctr)
    # THEN provider time runs to the moment the provider left; the whole contact is 26 min 52 s
    assert contact.provider_left == datetime.fromisoformat(left)
    assert contact.duration_seconds == seconds
    assert contact.contact_duration_seconds == 1612


def test_the_minimum_billable_time_is_provider_time() -> None:
    # GIVEN a 45 s provider leg transferred out, on a contact open for 20 minutes
    ctr = _timed("2026-11-02T10:00:15Z", "2026-11-02T10:20:00Z", "2026-11-02T10:01:00Z")
    strict = TransformSettings.from_environ({"MIN_BILLABLE_SECONDS": "60"})
    # WHEN classified with a 60 s minimum  THEN not billable, below the minimum
    assert _reason(ctr, strict) is NotBillableReason.BELOW_MINIMUM_DURATION


@pytest.mark.parametrize(
    ("acw_start", "transfer_completed", "problem"),
    [
        ("soon", None, "Agent.AfterContactWorkStartTimestamp not an ISO 8601 timestamp"),
        (42, None, "Agent.AfterContactWorkStartTimestamp not a string"),
        (None, "2026-11-02T10:07:51", "TransferCompletedTimestamp has no UTC offset"),
        ("2026-11-02T09:59:00Z", None, "the provider left before Agent.ConnectedToAgentTimestamp"),
        (None, "2026-11-02T10:00:11Z", "the provider left before Agent.ConnectedToAgentTimestamp"),
    ],
)
def test_an_unusable_end_of_provider_time_is_invalid(
    acw_start: object, transfer_completed: object, problem: str
) -> None:
    ctr = _timed("2026-11-02T10:00:12Z", "2026-11-02T10:26:52Z")
    ctr["Agent"]["AfterContactWorkStartTimestamp"] = acw_start
    ctr["TransferCompletedTimestamp"] = transfer_completed
    assert _problem(ctr) == problem


def test_only_the_end_the_rule_uses_is_read() -> None:
    # GIVEN after-contact work set and a damaged transfer time  WHEN classified  THEN billed to the ACW start
    ctr = _timed("2026-11-02T10:00:12Z", "2026-11-02T10:26:52Z", "2026-11-02T10:07:52Z", "garbled")
    assert _billable(ctr).duration_seconds == 460


def test_a_disconnect_before_the_initiation_leaves_the_contact_duration_unknown() -> None:
    # GIVEN a provider leg of 30 min on a contact whose whole duration would be negative
    ctr = _timed("2026-11-02T09:00:00Z", "2026-11-02T09:30:00Z")
    # WHEN classified  THEN still billed on provider time; the whole duration is unknown, not negative
    contact = _billable(ctr)
    assert (contact.duration_seconds, contact.contact_duration_seconds) == (1800, None)


# --- call type ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("OUTBOUND", "OUTBOUND"),
        ("CALLBACK", "OUTBOUND"),
        ("EXTERNAL_OUTBOUND", "OUTBOUND"),
        ("CAMPAIGN_PREVIEW", "OUTBOUND"),
        ("INBOUND", "INBOUND"),
        ("TRANSFER", "INBOUND"),
        ("QUEUE_TRANSFER", "INBOUND"),
        ("DISCONNECT", "INBOUND"),
        ("WEBRTC_API", "INBOUND"),
        ("outbound", "INBOUND"),
        (None, "INBOUND"),
        (["OUTBOUND"], "INBOUND"),
        ({"OUTBOUND": True}, "INBOUND"),
    ],
)
def test_call_type_mapping(method: object, expected: str) -> None:
    for channel in ("VOICE", "CHAT", "TASK"):
        assert call_type(method, channel) == expected


@pytest.mark.parametrize(
    ("channel", "expected"),
    [("VOICE", "OUTBOUND"), ("CHAT", "INBOUND"), ("TASK", "INBOUND"), (None, "INBOUND")],
)
def test_api_is_outbound_only_on_voice(channel: object, expected: str) -> None:
    # StartOutboundVoiceContact starts a voice contact with API; a customer-started chat or task is API too.
    assert call_type("API", channel) == expected


@pytest.mark.parametrize("hold", [2**63, 1e300, float("inf")])
def test_a_hold_duration_beyond_the_lake_s_bigint_is_invalid(hold: object) -> None:
    # GIVEN a hold duration no int64 column can hold  WHEN classified  THEN invalid, not a broken row
    ctr = ctrs.billable_ctr()
    ctr["Agent"]["CustomerHoldDuration"] = hold
    assert _problem(ctr) == "Agent.CustomerHoldDuration is not a non-negative number"


def test_the_largest_bigint_hold_is_kept() -> None:
    assert _billable(ctrs.billable_ctr(hold_seconds=2**63 - 1)).hold_seconds == 2**63 - 1
