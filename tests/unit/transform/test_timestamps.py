"""CTR timestamps: parsed with or without fractions and with Z or an offset; written as UTC ``Z`` or local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transform.core.timestamps import TimestampError, format_local, format_utc, parse_timestamp, utc_text

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "expected_utc"),
    [
        ("2026-11-02T14:13:58Z", datetime(2026, 11, 2, 14, 13, 58, tzinfo=UTC)),
        ("2026-11-02T14:13:58.5Z", datetime(2026, 11, 2, 14, 13, 58, 500000, tzinfo=UTC)),
        ("2026-11-02T14:13:58.123Z", datetime(2026, 11, 2, 14, 13, 58, 123000, tzinfo=UTC)),
        ("2026-11-02T14:13:58.123456Z", datetime(2026, 11, 2, 14, 13, 58, 123456, tzinfo=UTC)),
        ("2026-11-02T14:13:58+00:00", datetime(2026, 11, 2, 14, 13, 58, tzinfo=UTC)),
        ("2026-11-02T09:13:58-05:00", datetime(2026, 11, 2, 14, 13, 58, tzinfo=UTC)),
        ("2026-11-02T19:43:58.250+05:30", datetime(2026, 11, 2, 14, 13, 58, 250000, tzinfo=UTC)),
        ("2026-11-02T19:43:58+0530", datetime(2026, 11, 2, 14, 13, 58, tzinfo=UTC)),
    ],
)
def test_parses_with_and_without_fractions_and_offsets(text: str, expected_utc: datetime) -> None:
    # GIVEN a CTR timestamp  WHEN parsed  THEN it is the same instant
    assert parse_timestamp(text) == expected_utc


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "not a string"),
        (1793715238, "not a string"),
        ("", "not an ISO 8601 timestamp"),
        ("yesterday", "not an ISO 8601 timestamp"),
        ("2026-13-02T14:13:58Z", "not an ISO 8601 timestamp"),
        ("2026-11-02T14:13:58", "has no UTC offset"),
        ("2026-11-02", "has no UTC offset"),
        ("0001-01-01T00:00:00+01:00", "is out of range"),
        ("9999-12-31T23:59:59-01:00", "is out of range"),
        ("0999-06-01T00:00:00Z", "is out of range"),
    ],
)
def test_refuses_unusable_timestamps_without_quoting_them(value: object, problem: str) -> None:
    # GIVEN a value that is not a usable timestamp  WHEN parsed
    with pytest.raises(TimestampError) as raised:
        parse_timestamp(value)
    # THEN the error says why, and never holds the value itself
    assert str(raised.value) == problem


def test_utc_format_truncates_fractions_and_converts_offsets() -> None:
    # GIVEN an instant with an offset and a fraction  WHEN written as UTC  THEN whole seconds with Z
    assert format_utc(parse_timestamp("2026-11-02T09:13:58.999-05:00")) == "2026-11-02T14:13:58Z"


def test_local_format_has_the_zone_offset_of_that_date() -> None:
    # GIVEN instants either side of the end of daylight saving time in New York (2026-11-01)
    summer = parse_timestamp("2026-10-30T13:15:00.75Z")
    winter = parse_timestamp("2026-11-02T14:15:00Z")
    # WHEN written in local time  THEN each has its own offset, without fractions
    assert format_local(summer, NEW_YORK) == "2026-10-30T09:15:00-04:00"
    assert format_local(winter, NEW_YORK) == "2026-11-02T09:15:00-05:00"
    assert format_local(winter, ZoneInfo("Asia/Kolkata")) == "2026-11-02T19:45:00+05:30"


def test_utc_text_keeps_connect_spelling_and_reformats_anything_else() -> None:
    # GIVEN Connect's own spelling and other spellings of instants
    # WHEN written as UTC text  THEN Connect's is kept, the others reformatted
    assert utc_text("2026-11-02T14:13:58Z", parse_timestamp("2026-11-02T14:13:58Z")) == "2026-11-02T14:13:58Z"
    for other in ("2026-11-02T14:13:58.000Z", "2026-11-02 14:13:58Z", "2026-11-02T09:13:58-05:00"):
        assert utc_text(other, parse_timestamp(other)) == "2026-11-02T14:13:58Z"


@given(
    moment=st.datetimes(min_value=datetime(1001, 1, 2), max_value=datetime(9997, 12, 30)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
    spelling=st.sampled_from(["seconds", "milliseconds", "microseconds", "auto"]),
)
def test_utc_text_equals_format_utc_for_any_spelling(
    moment: datetime, offset_minutes: int, spelling: str
) -> None:
    # GIVEN any instant written with any offset and precision
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    text = aware.isoformat(timespec=spelling)
    if offset_minutes == 0 and spelling == "seconds":
        text = text.replace("+00:00", "Z")
    parsed = parse_timestamp(text)
    # WHEN written as UTC text  THEN the fast path and the reference agree, and the instant is kept
    assert utc_text(text, parsed) == format_utc(parsed)
    assert parse_timestamp(format_utc(parsed)) == parsed.replace(microsecond=0)
