"""Billing rows: every registry column, the vendor CSV line (RFC 4180, formula-injection guard, time zone)
and the data lake's JSON row with its partition keys."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import ctr_factory as ctrs
from transform.core.columns import COLUMN_NAMES, COLUMNS, COLUMNS_BY_NAME, DEFAULT_CSV_COLUMNS
from transform.core.rows import EXTRACTORS, CsvEncoder, csv_cell, json_row, partition_keys
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings

DEFAULTS = TransformSettings.from_environ({})
NEW_YORK = ZoneInfo("America/New_York")


def _contact(ctr: dict[str, Any], settings: TransformSettings = DEFAULTS) -> BillableContact:
    contact = classify(ctr, settings)
    assert isinstance(contact, BillableContact), contact
    return contact


def _transfer() -> dict[str, Any]:
    ctr = ctrs.transfer_ctr(
        contact_id="c0ffee00-0000-4000-8000-000000000001",
        initiated=datetime(2026, 11, 2, 14, 13, 58, tzinfo=UTC),
        queue_seconds=22,
        talk_seconds=1011,
        agent_id="agent-0001",
    )
    ctr["InitialContactId"] = "c0ffee00-0000-4000-8000-000000000000"
    ctr["PreviousContactId"] = "c0ffee00-0000-4000-8000-00000000000f"
    ctr["NextContactId"] = "c0ffee00-0000-4000-8000-000000000002"
    # As in real CTRs, after-contact work starts a few seconds after the disconnect: the earlier one ends
    # provider time.
    ctr["Agent"]["AfterContactWorkStartTimestamp"] = "2026-11-02T14:31:14Z"
    return ctr


# Every registry column of _transfer(): (CSV cell, JSON value).
EXPECTED: dict[str, tuple[str, Any]] = {
    "call_type": ("INBOUND", "INBOUND"),
    "initiation_timestamp": ("2026-11-02T14:13:58Z", "2026-11-02T14:13:58Z"),
    "duration_seconds": ("1011", 1011),
    "patient_phone": ("+12025550143", "+12025550143"),
    "provider_extension": ("4417", "4417"),
    "hold_seconds": ("60", 60),
    "contact_id": ("c0ffee00-0000-4000-8000-000000000001", "c0ffee00-0000-4000-8000-000000000001"),
    "initial_contact_id": ("c0ffee00-0000-4000-8000-000000000000", "c0ffee00-0000-4000-8000-000000000000"),
    "previous_contact_id": ("c0ffee00-0000-4000-8000-00000000000f", "c0ffee00-0000-4000-8000-00000000000f"),
    "channel": ("VOICE", "VOICE"),
    "initiation_method": ("TRANSFER", "TRANSFER"),
    "connected_to_agent_timestamp": ("2026-11-02T14:14:20Z", "2026-11-02T14:14:20Z"),
    "disconnect_timestamp": ("2026-11-02T14:31:11Z", "2026-11-02T14:31:11Z"),
    "last_update_timestamp": ("2026-11-02T14:33:04Z", "2026-11-02T14:33:04Z"),
    "agent_id": ("agent-0001", "agent-0001"),
    "agent_username": ("dr.okafor", "dr.okafor"),
    "queue_name": ("Telehealth General", "Telehealth General"),
    "number_of_holds": ("2", 2),
    "disconnect_reason": ("CUSTOMER_DISCONNECT", "CUSTOMER_DISCONNECT"),
    "provider_left_timestamp": ("2026-11-02T14:31:11Z", "2026-11-02T14:31:11Z"),
    # 14:13:58 to 14:31:11
    "contact_duration_seconds": ("1033", 1033),
    "next_contact_id": ("c0ffee00-0000-4000-8000-000000000002", "c0ffee00-0000-4000-8000-000000000002"),
}


def _csv_cells(ctr: dict[str, Any], columns: tuple[str, ...], zone: Any = None) -> list[str]:
    line = CsvEncoder(columns, zone).line(_contact(ctr)).decode()
    assert line.endswith("\n")
    [cells] = list(csv.reader(io.StringIO(line)))
    assert len(cells) == len(columns)
    return cells


def test_expectations_cover_the_whole_registry() -> None:
    assert tuple(EXPECTED) == COLUMN_NAMES


@pytest.mark.parametrize("name", COLUMN_NAMES)
def test_each_column_in_csv(name: str) -> None:
    # GIVEN a transferred call  WHEN encoded with only that column  THEN the column's CSV text
    assert _csv_cells(_transfer(), (name,)) == [EXPECTED[name][0]]


@pytest.mark.parametrize("name", COLUMN_NAMES)
def test_each_column_in_json_rows(name: str) -> None:
    # GIVEN a transferred call  WHEN encoded as a JSON row  THEN the column's JSON value and type
    row = json.loads(json_row(_contact(_transfer())))
    assert row[name] == EXPECTED[name][1]
    assert type(row[name]) is type(EXPECTED[name][1])


def test_default_vendor_line_is_the_six_design_columns() -> None:
    line = CsvEncoder(DEFAULT_CSV_COLUMNS, None).line(_contact(ctrs.sample_ctr()))
    assert line == b"INBOUND,2026-11-02T14:13:58Z,1011,+12025550143,4417,60\n"


def test_all_columns_in_configured_order() -> None:
    columns = tuple(reversed(COLUMN_NAMES))
    assert _csv_cells(_transfer(), columns) == [EXPECTED[name][0] for name in columns]


def test_absent_values_are_empty_in_csv_and_empty_or_null_in_json() -> None:
    # GIVEN a billable contact with no phone, extension, ids, queue, holds or last update
    ctr = ctrs.outbound_ctr(phone=None, extension=None, hold_seconds=None, number_of_holds=None)
    for field in ("InitialContactId", "PreviousContactId", "LastUpdateTimestamp", "DisconnectReason"):
        ctr.pop(field, None)
    ctr["Agent"].pop("ARN")
    contact = _contact(ctr)
    # WHEN encoded
    cells = dict(zip(COLUMN_NAMES, _csv_cells(ctr, COLUMN_NAMES), strict=True))
    row = json.loads(json_row(contact))
    # THEN empty CSV cells; JSON empty text, zero holds seconds, null timestamp and count
    for name in (
        "patient_phone",
        "provider_extension",
        "initial_contact_id",
        "previous_contact_id",
        "queue_name",
        "agent_id",
        "disconnect_reason",
        "last_update_timestamp",
        "number_of_holds",
    ):
        assert cells[name] == "", name
    assert cells["hold_seconds"] == "0"
    assert row["hold_seconds"] == 0
    assert row["last_update_timestamp"] is None
    assert row["number_of_holds"] is None
    assert row["patient_phone"] == ""
    assert row["queue_name"] == ""


def test_phone_only_for_telephone_endpoints() -> None:
    ctr = ctrs.billable_ctr()
    ctr["CustomerEndpoint"] = {"Address": "patient@example.org", "Type": "EMAIL_ADDRESS"}
    assert _csv_cells(ctr, ("patient_phone",)) == [""]


def test_unparsable_last_update_is_empty_not_a_failure() -> None:
    ctr = _transfer()
    ctr["LastUpdateTimestamp"] = "later"
    assert _csv_cells(ctr, ("last_update_timestamp",)) == [""]
    assert json.loads(json_row(_contact(ctr)))["last_update_timestamp"] is None


# --- RFC 4180 and formula injection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["Telehealth, General", 'The "A" team', "line\nbreak", "carriage\rreturn", 'all, "of"\r\n them']
)
def test_rfc4180_quoting_round_trips(text: str) -> None:
    # GIVEN a text cell with a separator, quote or line break  WHEN written  THEN csv reads it back intact
    ctr = _transfer()
    ctr["Queue"]["Name"] = text
    line = CsvEncoder(("queue_name", "contact_id"), None).line(_contact(ctr)).decode()
    assert line.startswith('"')
    [cells] = list(csv.reader(io.StringIO(line, newline="")))
    assert cells == [text, EXPECTED["contact_id"][0]]


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_triggers_get_a_leading_quote(trigger: str) -> None:
    # GIVEN a text cell starting with a spreadsheet formula trigger
    ctr = _transfer()
    ctr["Agent"]["Username"] = trigger + "HYPERLINK(1)"
    # WHEN written  THEN the spreadsheet sees text
    assert _csv_cells(ctr, ("agent_username",)) == ["'" + trigger + "HYPERLINK(1)"]


@pytest.mark.parametrize("phone", ["+12025550143", "+442071838750", "+1", "+123456789012345"])
def test_e164_phone_numbers_pass_unchanged(phone: str) -> None:
    assert _csv_cells(ctrs.billable_ctr(phone=phone), ("patient_phone",)) == [phone]


@pytest.mark.parametrize("phone", ["+1 202 555 0143", "+1234567890123456", "+", "=1+2", "-12025550143"])
def test_phone_values_that_are_not_e164_are_guarded(phone: str) -> None:
    assert _csv_cells(ctrs.billable_ctr(phone=phone), ("patient_phone",)) == ["'" + phone]


def test_the_strict_format_is_the_column_s_own() -> None:
    # GIVEN an E.164-looking value in a column without that format  THEN it is guarded
    ctr = _transfer()
    ctr["Queue"]["Name"] = "+12025550143"
    assert _csv_cells(ctr, ("queue_name",)) == ["'+12025550143"]
    # AND digits pass in the extension column, a signed number does not
    assert _csv_cells(ctrs.billable_ctr(extension="4417"), ("provider_extension",)) == ["4417"]
    assert _csv_cells(ctrs.billable_ctr(extension="-4417"), ("provider_extension",)) == ["'-4417"]


# --- time zone ------------------------------------------------------------------------------------


def test_billing_timezone_writes_local_times_with_offset_in_csv_only() -> None:
    # GIVEN BILLING_TIMEZONE=America/New_York and a call on either side of the end of DST
    settings = TransformSettings.from_environ({"BILLING_TIMEZONE": "America/New_York"})
    winter = ctrs.billable_ctr(initiated=datetime(2026, 11, 2, 14, 15, tzinfo=UTC), queue_seconds=0)
    summer = ctrs.billable_ctr(initiated=datetime(2026, 10, 30, 13, 15, tzinfo=UTC), queue_seconds=0)
    encoder = CsvEncoder(("initiation_timestamp", "connected_to_agent_timestamp"), settings.billing_timezone)
    # WHEN encoded  THEN CSV has local time and offset; JSON rows stay UTC for the SerDe
    assert encoder.line(_contact(winter)) == b"2026-11-02T09:15:00-05:00,2026-11-02T09:15:00-05:00\n"
    assert encoder.line(_contact(summer)) == b"2026-10-30T09:15:00-04:00,2026-10-30T09:15:00-04:00\n"
    assert json.loads(json_row(_contact(winter, settings)))["initiation_timestamp"] == "2026-11-02T14:15:00Z"


# --- JSON rows ------------------------------------------------------------------------------------


def test_json_row_is_one_line_with_every_column() -> None:
    data = json_row(_contact(_transfer()))
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert tuple(json.loads(data)) == COLUMN_NAMES


def test_json_row_timestamps_are_utc_without_fractions() -> None:
    ctr = _transfer()
    ctr["InitiationTimestamp"] = "2026-11-02T09:13:58.750-05:00"
    assert json.loads(json_row(_contact(ctr)))["initiation_timestamp"] == "2026-11-02T14:13:58Z"


@pytest.mark.parametrize(
    ("initiated", "keys"),
    [
        ("2026-11-02T14:13:58Z", {"year": "2026", "month": "11", "day": "02"}),
        ("2026-01-05T00:00:00.5Z", {"year": "2026", "month": "01", "day": "05"}),
        # late evening in New York is already the next day (and year) in UTC
        ("2026-12-31T23:30:00-05:00", {"year": "2027", "month": "01", "day": "01"}),
    ],
)
def test_partition_keys_are_the_utc_initiation_day_zero_padded(initiated: str, keys: dict[str, str]) -> None:
    ctr = _transfer()
    ctr["InitiationTimestamp"] = initiated
    assert partition_keys(_contact(ctr)) == keys


def test_partition_keys_ignore_last_update_so_republished_versions_share_a_partition() -> None:
    first, republished = _transfer(), _transfer()
    republished["LastUpdateTimestamp"] = "2026-11-05T10:00:00Z"
    assert partition_keys(_contact(first)) == partition_keys(_contact(republished))


# --- the specialised CSV cells equal the reference cell ------------------------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["+12025550143", "=1+1", "-", "@x", "\tx", "\rx", "4417", 'a"b', "a,b"]
)


@given(
    username=_TEXT,
    phone=_TEXT,
    extension=_TEXT,
    zone=st.sampled_from([None, NEW_YORK, ZoneInfo("Asia/Kolkata")]),
)
def test_encoder_cells_equal_the_reference_csv_cell(
    username: str, phone: str, extension: str, zone: Any
) -> None:
    # GIVEN any text in the text columns and any zone
    ctr = _transfer()
    ctr["Agent"]["Username"] = username
    ctr["CustomerEndpoint"]["Address"] = phone
    ctr["Attributes"]["extensionNumber"] = extension
    contact = _contact(ctr)
    # WHEN encoded by the encoder  THEN the same cells as the reference csv_cell, column by column
    expected = [csv_cell(EXTRACTORS[c.name](contact), COLUMNS_BY_NAME[c.name], zone) for c in COLUMNS]
    line = CsvEncoder(COLUMN_NAMES, zone).line(contact).decode()
    assert line == ",".join(expected) + "\n"


@pytest.mark.parametrize(("holds", "expected"), [(3, 3), (2.7, 2), (-1, None), (2**63, None), (1e300, None)])
def test_number_of_holds_is_a_bigint_or_unknown(holds: object, expected: int | None) -> None:
    ctr = _transfer()
    ctr["Agent"]["NumberOfHolds"] = holds
    assert json.loads(json_row(_contact(ctr)))["number_of_holds"] == expected
