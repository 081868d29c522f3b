"""Billing row values per registry column, and their two encodings: CSV line and JSON row."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

import msgspec

from transform.core.columns import COLUMNS, COLUMNS_BY_NAME, Column, ColumnType
from transform.core.rules import MAX_BIGINT, BillableContact, call_type
from transform.core.timestamps import TimestampError, format_local, format_utc, parse_timestamp, utc_text

Value = str | int | datetime | None
Extractor = Callable[[BillableContact], Value]


def text(value: object) -> str:
    """A CTR field as CSV/JSON text: strings as given, scalars spelled out, anything else empty."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return ""


def _optional_count(value: object) -> int | None:
    """A non-negative count that fits a bigint column, else unknown."""
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < MAX_BIGINT + 1
    ):
        return math.floor(value)
    return None


def _optional_timestamp(value: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except TimestampError:
        return None


def _queue_name(contact: BillableContact) -> str:
    queue = contact.ctr.get("Queue")
    return text(queue.get("Name")) if isinstance(queue, dict) else ""


def _patient_phone(contact: BillableContact) -> str:
    endpoint = contact.ctr.get("CustomerEndpoint")
    if isinstance(endpoint, dict) and endpoint.get("Type") == "TELEPHONE_NUMBER":
        return text(endpoint.get("Address"))
    return ""


EXTRACTORS: dict[str, Extractor] = {
    "call_type": lambda c: call_type(c.ctr.get("InitiationMethod"), c.ctr.get("Channel")),
    "initiation_timestamp": lambda c: c.initiated,
    "duration_seconds": lambda c: c.duration_seconds,
    "patient_phone": _patient_phone,
    "provider_extension": lambda c: c.provider_extension,
    "hold_seconds": lambda c: c.hold_seconds,
    "contact_id": lambda c: text(c.ctr.get("ContactId")),
    "initial_contact_id": lambda c: text(c.ctr.get("InitialContactId")),
    "previous_contact_id": lambda c: text(c.ctr.get("PreviousContactId")),
    "channel": lambda c: text(c.ctr.get("Channel")),
    "initiation_method": lambda c: text(c.ctr.get("InitiationMethod")),
    "connected_to_agent_timestamp": lambda c: c.connected,
    "disconnect_timestamp": lambda c: c.disconnected,
    "last_update_timestamp": lambda c: _optional_timestamp(c.ctr.get("LastUpdateTimestamp")),
    "agent_id": lambda c: c.agent_id,
    "agent_username": lambda c: text(c.agent.get("Username")),
    "queue_name": _queue_name,
    "number_of_holds": lambda c: _optional_count(c.agent.get("NumberOfHolds")),
    "disconnect_reason": lambda c: text(c.ctr.get("DisconnectReason")),
    "provider_left_timestamp": lambda c: c.provider_left,
    "contact_duration_seconds": lambda c: c.contact_duration_seconds,
    "next_contact_id": lambda c: text(c.ctr.get("NextContactId")),
}
assert tuple(EXTRACTORS) == tuple(COLUMNS_BY_NAME), "every registry column needs exactly one extractor"


def row_values(contact: BillableContact, columns: Sequence[str] = tuple(EXTRACTORS)) -> dict[str, Value]:
    return {name: EXTRACTORS[name](contact) for name in columns}


def _last_update_utc(contact: BillableContact) -> str | None:
    text = contact.ctr.get("LastUpdateTimestamp")
    moment = _optional_timestamp(text)
    return None if moment is None else utc_text(text, moment)


def _provider_left_utc(contact: BillableContact) -> str:
    # The end is one of three CTR fields; when it is the disconnect, Connect's own text is reused.
    if contact.provider_left is contact.disconnected:
        return utc_text(contact.ctr.get("DisconnectTimestamp"), contact.disconnected)
    return format_utc(contact.provider_left)


# The timestamp columns as UTC text (``format_utc`` of their EXTRACTORS value), without reformatting the
# CTR's text when it is already in that format.
UTC_TEXT_EXTRACTORS: dict[str, Callable[[BillableContact], str | None]] = {
    "initiation_timestamp": lambda c: utc_text(c.ctr.get("InitiationTimestamp"), c.initiated),
    "connected_to_agent_timestamp": lambda c: utc_text(c.agent.get("ConnectedToAgentTimestamp"), c.connected),
    "disconnect_timestamp": lambda c: utc_text(c.ctr.get("DisconnectTimestamp"), c.disconnected),
    "last_update_timestamp": _last_update_utc,
    "provider_left_timestamp": _provider_left_utc,
}
assert set(UTC_TEXT_EXTRACTORS) == {c.name for c in COLUMNS if c.type is ColumnType.TIMESTAMP}


# --- CSV -------------------------------------------------------------------------------------------

_NEEDS_QUOTES = re.compile(r'[",\r\n]')
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_text_cell(value: str, column: Column) -> str:
    """Formula-injection guard, then RFC 4180 quoting.

    The stdlib ``csv`` writer is not used: with a ``\\n`` line terminator it leaves a bare CR unquoted.
    """
    if value.startswith(_FORMULA_TRIGGERS) and not (
        column.strict_format is not None and column.strict_format.fullmatch(value)
    ):
        value = "'" + value
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_cell(value: Value, column: Column, zone: tzinfo | None) -> str:
    if value is None:
        return ""
    if column.type is ColumnType.TIMESTAMP:
        assert isinstance(value, datetime)
        return format_utc(value) if zone is None else format_local(value, zone)
    if column.type is ColumnType.BIGINT:
        return str(value)
    assert isinstance(value, str)
    return csv_text_cell(value, column)


Cell = Callable[[BillableContact], str]


def _csv_cell_function(name: str, zone: tzinfo | None) -> Cell:
    """One column's cell, specialised once per encoder: the per-row work is only what the value needs.

    Same result as ``csv_cell(EXTRACTORS[name](contact), column, zone)``.
    """
    column = COLUMNS_BY_NAME[name]
    extract = EXTRACTORS[name]
    if column.type is ColumnType.TIMESTAMP:
        if zone is None:
            utc = UTC_TEXT_EXTRACTORS[name]

            def utc_cell(contact: BillableContact) -> str:
                return utc(contact) or ""

            return utc_cell

        def local_cell(contact: BillableContact) -> str:
            value = extract(contact)
            return "" if value is None else format_local(value, zone)  # type: ignore[arg-type]

        return local_cell
    if column.type is ColumnType.BIGINT:

        def number_cell(contact: BillableContact) -> str:
            value = extract(contact)
            return "" if value is None else str(value)

        return number_cell
    triggers, needs_quotes = _FORMULA_TRIGGERS, _NEEDS_QUOTES.search
    strict = column.strict_format.fullmatch if column.strict_format is not None else None

    def text_cell(contact: BillableContact) -> str:
        value: str = extract(contact)  # type: ignore[assignment]
        if not value:
            return ""
        if value.startswith(triggers) and not (strict is not None and strict(value)):
            value = "'" + value
        if needs_quotes(value):
            return '"' + value.replace('"', '""') + '"'
        return value

    return text_cell


class CsvEncoder:
    """Encodes billable contacts as CSV lines of the configured columns (no header: Firehose concatenates)."""

    def __init__(self, columns: Sequence[str], zone: tzinfo | None) -> None:
        self._cells = tuple(_csv_cell_function(name, zone) for name in columns)
        self.header = (",".join(columns) + "\n").encode()

    def line(self, contact: BillableContact) -> bytes:
        text = ",".join([cell(contact) for cell in self._cells])
        # A lone empty cell (CSV_COLUMNS of one column) quoted: a blank line is no row to CSV readers.
        return (text + "\n" if text else '""\n').encode()


# --- JSON rows (data lake) -------------------------------------------------------------------------


def json_value(value: Value) -> str | int | None:
    if isinstance(value, datetime):
        return format_utc(value)
    return value


_encode_json = msgspec.json.Encoder().encode


def json_row(contact: BillableContact) -> bytes:
    """Every registry column; timestamps as ``YYYY-MM-DDTHH:MM:SSZ`` (OpenX JSON SerDe), one object per line."""
    # msgspec encodes about ten times faster than json.dumps; a lone surrogate raises
    # UnicodeEncodeError (decoding already refuses them), which costs that record, never the batch.
    return _encode_json(json_row_dict(contact)) + b"\n"


def partition_keys(contact: BillableContact) -> dict[str, str]:
    """Firehose dynamic-partition keys from the initiation time in UTC, so every version of a contact
    lands in the same partition whatever its arrival time."""
    day = format_utc(contact.initiated)
    return {"year": day[0:4], "month": day[5:7], "day": day[8:10]}


def json_row_dict(contact: BillableContact) -> dict[str, Any]:
    return {name: extract(contact) for name, extract in _JSON_EXTRACTORS}


# json_value(EXTRACTORS[name](contact)) for every column, timestamps through UTC_TEXT_EXTRACTORS.
_JSON_EXTRACTORS: tuple[tuple[str, Callable[[BillableContact], str | int | None]], ...] = tuple(
    (column.name, UTC_TEXT_EXTRACTORS.get(column.name) or EXTRACTORS[column.name])  # type: ignore[misc]
    for column in COLUMNS
)
