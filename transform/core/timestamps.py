"""CTR timestamp parsing and the two output formats (UTC ``Z`` and local time with offset)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

# Years whose UTC and local spellings all have four digits, a day away from datetime's limits.
MIN_YEAR = 1000
MAX_YEAR = 9998

# Connect's own spelling, which is already the UTC output format.
_CANONICAL_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z").fullmatch


class TimestampError(ValueError):
    """A timestamp is missing its offset or is not ISO 8601. The message never holds the value."""


def parse_timestamp(text: object) -> datetime:
    """Parse an ISO 8601 timestamp with ``Z`` or an offset, with or without fractional seconds.

    A timestamp without an offset is refused: billing on a guessed time zone is worse than an error.
    So is one outside the years 1000-9998, which could not be written back in the output formats.
    """
    if type(text) is not str:
        raise TimestampError("not a string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampError("not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise TimestampError("has no UTC offset")
    if not MIN_YEAR < parsed.year < MAX_YEAR:  # the bounds themselves may cross a limit in UTC
        try:
            year = parsed.astimezone(UTC).year
        except OverflowError:
            raise TimestampError("is out of range") from None
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise TimestampError("is out of range")
    return parsed


def format_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, fractions truncated (what the OpenX JSON SerDe parses as a timestamp)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(text: object, moment: datetime) -> str:
    """``format_utc(moment)`` where ``moment`` was parsed from ``text``: Connect's timestamps are
    already in that format and are returned as they are, which is several times faster."""
    if type(text) is str and _CANONICAL_UTC(text):
        return text
    return format_utc(moment)


def format_local(moment: datetime, zone: tzinfo) -> str:
    """Local wall time with its offset, e.g. ``2026-11-02T09:15:00-05:00``."""
    return moment.astimezone(zone).replace(microsecond=0).isoformat()
