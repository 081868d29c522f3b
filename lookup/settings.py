"""Lookup Lambda settings: read once from the environment at cold start into one frozen object.

A bad value raises ``SettingsError`` naming the variable, so the cold start fails loudly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}")

DEFAULT_CACHE_SECONDS = 300
DEFAULT_CACHE_ENTRIES = 10_000


class SettingsError(ValueError):
    """A setting has a bad value; the message starts with the variable's name."""


@dataclass(frozen=True, slots=True)
class LookupSettings:
    directory_table: str
    cache_seconds: int = DEFAULT_CACHE_SECONDS
    cache_entries: int = DEFAULT_CACHE_ENTRIES

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LookupSettings:
        table = environ.get("DIRECTORY_TABLE", "").strip()
        if not table:
            raise SettingsError("DIRECTORY_TABLE must name the provider directory table")
        if not _TABLE_NAME.fullmatch(table):
            raise SettingsError(f"DIRECTORY_TABLE must be a DynamoDB table name, got {table!r}")
        return cls(
            directory_table=table,
            cache_seconds=_whole_number(environ, "DIRECTORY_CACHE_SECONDS", DEFAULT_CACHE_SECONDS, 0),
            cache_entries=_whole_number(environ, "DIRECTORY_CACHE_ENTRIES", DEFAULT_CACHE_ENTRIES, 1),
        )


def _whole_number(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value
