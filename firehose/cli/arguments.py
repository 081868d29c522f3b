"""Command-line values that several commands take, parsed strictly into one clear error each."""

from __future__ import annotations

import argparse
import re
from datetime import date

from firehose.cli.errors import CommandError
from transform.core.timestamps import MAX_YEAR, MIN_YEAR

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def billing_day(text: str, option: str = "--date") -> date:
    """``YYYY-MM-DD`` only: ``date.fromisoformat`` also takes ``20261102`` and ``2026-W44-1``, which a
    typo can produce and nobody means. Years are those the timestamps can be written in."""
    if not _ISO_DAY.fullmatch(text):
        raise CommandError(f"{option} must be YYYY-MM-DD, got {text!r}")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} must be YYYY-MM-DD, a calendar day, got {text!r}") from None
    if not MIN_YEAR < day.year < MAX_YEAR:
        raise CommandError(f"{option} {text} is out of range (years {MIN_YEAR + 1}-{MAX_YEAR - 1})")
    return day


def whole_number(text: str) -> int:
    """An argparse ``type`` for counts: a non-negative whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value
