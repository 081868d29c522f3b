"""Transform settings: read once from the environment at cold start into one frozen object.

A bad value raises ``SettingsError`` naming the variable, so the cold start fails loudly instead of
billing with a wrong configuration.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transform.core.columns import COLUMN_NAMES, DEFAULT_CSV_COLUMNS


class SettingsError(ValueError):
    """A setting has a bad value; the message starts with the variable's name."""


class OutputFormat(enum.Enum):
    CSV = "csv"
    JSON = "json"


# The values of a CTR's Channel: a typo in BILLABLE_CHANNELS would silently bill nothing.
CONNECT_CHANNELS = frozenset({"VOICE", "CHAT", "TASK", "EMAIL"})

# DynamoDB table names: 3-255 of [A-Za-z0-9_.-].
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,127}")


@dataclass(frozen=True, slots=True)
class TransformSettings:
    output_format: OutputFormat = OutputFormat.CSV
    billable_channels: frozenset[str] = frozenset({"VOICE"})
    min_billable_seconds: int = 0
    billing_timezone: tzinfo | None = None
    extension_attribute: str = "extensionNumber"
    csv_columns: tuple[str, ...] = DEFAULT_CSV_COLUMNS
    directory_table: str | None = None
    directory_cache_seconds: int = 300
    ledger_table: str | None = None
    ledger_retention_days: int = 400
    # Kept for error messages and logs: the zone's IANA name.
    billing_timezone_name: str | None = field(default=None, compare=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TransformSettings:
        zone_name = _optional(environ, "BILLING_TIMEZONE")
        return cls(
            output_format=_output_format(environ),
            billable_channels=_billable_channels(environ),
            min_billable_seconds=_non_negative_int(environ, "MIN_BILLABLE_SECONDS", 0),
            billing_timezone=_timezone(zone_name),
            extension_attribute=_attribute_name(environ),
            csv_columns=_csv_columns(environ),
            directory_table=_table_name(environ, "DIRECTORY_TABLE"),
            directory_cache_seconds=_non_negative_int(environ, "DIRECTORY_CACHE_SECONDS", 300),
            ledger_table=_table_name(environ, "LEDGER_TABLE"),
            ledger_retention_days=positive_int(environ, "LEDGER_RETENTION_DAYS", 400),
            billing_timezone_name=zone_name,
        )


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _output_format(environ: Mapping[str, str]) -> OutputFormat:
    value = (_optional(environ, "OUTPUT_FORMAT") or "csv").lower()
    try:
        return OutputFormat(value)
    except ValueError:
        allowed = ", ".join(member.value for member in OutputFormat)
        raise SettingsError(f"OUTPUT_FORMAT must be one of {allowed}, got {value!r}") from None


def _billable_channels(environ: Mapping[str, str]) -> frozenset[str]:
    raw = environ.get("BILLABLE_CHANNELS")
    if raw is None:
        return frozenset({"VOICE"})
    channels = frozenset(part.strip().upper() for part in raw.split(",") if part.strip())
    if not channels:
        raise SettingsError("BILLABLE_CHANNELS must name at least one channel, e.g. VOICE")
    unknown = sorted(channels - CONNECT_CHANNELS)
    if unknown:
        raise SettingsError(
            f"BILLABLE_CHANNELS has unknown channel(s) {unknown}; "
            f"Amazon Connect channels: {', '.join(sorted(CONNECT_CHANNELS))}"
        )
    return channels


def _non_negative_int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = _optional(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
    if number < 0:
        raise SettingsError(f"{name} must not be negative, got {number}")
    return number


def positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    number = _non_negative_int(environ, name, default)
    if number == 0:
        raise SettingsError(f"{name} must be at least 1")
    return number


def _timezone(name: str | None) -> tzinfo | None:
    if name is None or name.upper() == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata directory, e.g. "America"
        raise SettingsError(f"BILLING_TIMEZONE must be an IANA time zone name, got {name!r}") from None


def _attribute_name(environ: Mapping[str, str]) -> str:
    value = _optional(environ, "EXTENSION_ATTRIBUTE") or "extensionNumber"
    if not _ATTRIBUTE_NAME.fullmatch(value):
        raise SettingsError(f"EXTENSION_ATTRIBUTE must be a contact attribute name, got {value!r}")
    return value


def _csv_columns(environ: Mapping[str, str]) -> tuple[str, ...]:
    raw = _optional(environ, "CSV_COLUMNS")
    if raw is None:
        return DEFAULT_CSV_COLUMNS
    columns = tuple(part.strip() for part in raw.split(","))
    unknown = [name for name in columns if name not in COLUMN_NAMES]
    if unknown or not all(columns):
        raise SettingsError(
            f"CSV_COLUMNS has unknown column(s) {unknown or ['']}; known columns: {', '.join(COLUMN_NAMES)}"
        )
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise SettingsError(f"CSV_COLUMNS names column(s) more than once: {', '.join(duplicated)}")
    return columns


def _table_name(environ: Mapping[str, str], name: str) -> str | None:
    value = _optional(environ, name)
    if value is not None and not _TABLE_NAME.fullmatch(value):
        raise SettingsError(f"{name} must be a DynamoDB table name, got {value!r}")
    return value
