"""CTR timestamp parsing and the two output formats (UTC ``Z`` and local time with offset)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


class TimestampError(ValueError):
    """A timestamp is missing its offset or is not ISO 8601. The message never holds the value."""


def parse_timestamp(text: object) -> datetime:
    """Parse an ISO 8601 timestamp with ``Z`` or an offset, with or without fractional seconds.

    A timestamp without an offset is refused: billing on a guessed time zone is worse than an error.
    """
    if not isinstance(text, str):
        raise TimestampError("not a string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampError("not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise TimestampError("has no UTC offset")
    return parsed


def format_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, fractions truncated (what the OpenX JSON SerDe parses as a timestamp)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_local(moment: datetime, zone: tzinfo) -> str:
    """Local wall time with its offset, e.g. ``2026-11-02T09:15:00-05:00``."""
    return moment.astimezone(zone).replace(microsecond=0).isoformat()
