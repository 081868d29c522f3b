"""The vendor's daily settlement file: one CSV with a header per billing day, and its manifest.

The stream delivers CSV lines in Firehose's batches, without a header and possibly with several versions
of a republished contact. Once a day the settlement export reads the data lake instead and writes the
day's latest version of every contact, ordered by initiation time, with a header row:
``billing-YYYY-MM-DD.csv`` and ``billing-YYYY-MM-DD.manifest.json``.

One SQL text (``SETTLEMENT_SQL``, Athena/Trino dialect) runs on two engines behind ``SettlementEngine``:
Athena in AWS (``transform.settlement.athena``, the scheduled Lambda) and DuckDB over a local lake
(``firehose.offline.lake``). Its version ranking is the ``latest_billing_rows`` view's, read from the view's
query file when this module is imported. Otherwise pure: no AWS client, no I/O besides what its callers
hand it.

A billing day is a calendar day in ``BILLING_TIMEZONE`` (UTC when unset): the file for 2026-11-02 in
America/New_York holds the contacts initiated from 2026-11-02T04:00Z up to 2026-11-03T05:00Z. The lake is
partitioned by the initiation day in UTC, so the query reads only the partitions that window touches.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol

from transform.core.columns import COLUMN_NAMES, COLUMNS_BY_NAME, ColumnType
from transform.core.rows import CsvEncoder, Value, csv_cell
from transform.core.settings import TransformSettings
from transform.core.timestamps import format_utc
from transform.settlement.queries import LATEST_VIEW, view_select

# The latest version of each contact in the window, every registry column, ordered for the vendor. The
# versions are ranked by the latest_billing_rows view's own SELECT, read from its file (``view_select``):
# the export and the view pick the same row because they are one text. That ranking is partitioned by
# year, month and day, so filtering on them outside it changes no answer, and both engines push such a
# filter through the window down to the partitions (Trino's PredicatePushDown.visitWindow, DuckDB's
# filter pushdown): plain equalities, which Athena's partition projection prunes on.
# Parameters, in order: year, month, day of the first and of the last partition (UTC) the window touches,
# then the window's start and end (UTC, ``YYYY-MM-DD HH:MM:SS``, end exclusive).
SETTLEMENT_SQL = f"""
SELECT
    {", ".join(COLUMN_NAMES)}
FROM (
{view_select(LATEST_VIEW)}
) AS latest
WHERE ((year = ? AND month = ? AND day = ?) OR (year = ? AND month = ? AND day = ?))
    AND initiation_timestamp >= CAST(? AS timestamp)
    AND initiation_timestamp < CAST(? AS timestamp)
ORDER BY initiation_timestamp, contact_id
""".strip()  # noqa: S608 (the view's file and the column registry's names; values go as parameters)

RawRow = Mapping[str, object]
_INTEGER = re.compile(r"-?[0-9]+")


class SettlementEngine(Protocol):
    """Runs Athena (Trino) SQL with ``?`` parameters over the lake's ``billing_rows`` table.

    Rows map column names to the engine's values: native Python values (DuckDB) or the text Athena
    returns; ``row_value`` turns either into the registry's value types.
    """

    def fetch(self, sql: str, parameters: Sequence[str]) -> Sequence[RawRow]: ...


class SettlementError(ValueError):
    """A result row the settlement cannot render (an engine returned an unexpected value)."""


@dataclass(frozen=True, slots=True)
class SettlementWindow:
    """The UTC instants of one billing day in the billing time zone, and the lake partitions they touch."""

    day: date
    start: datetime
    end: datetime
    timezone_name: str

    @classmethod
    def for_day(cls, day: date, zone: tzinfo | None, timezone_name: str | None = None) -> SettlementWindow:
        local = zone or UTC
        start = datetime.combine(day, time(0), tzinfo=local).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=local).astimezone(UTC)
        return cls(day=day, start=start, end=end, timezone_name=timezone_name or "UTC")

    @property
    def partition_days(self) -> tuple[date, date]:
        """First and last UTC day a contact of this window is partitioned under.

        A billing day lasts 23 to 25 hours and starts at a local midnight, so it touches at most two UTC
        days in every real time zone; a window touching three is refused rather than settled partially.
        """
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        if (last - first).days > 1:
            raise SettlementError(f"the billing day {self.day} spans more than two UTC days")
        return first, last

    @property
    def parameters(self) -> tuple[str, ...]:
        first, last = self.partition_days
        return (
            *(f"{first:%Y}", f"{first:%m}", f"{first:%d}"),
            *(f"{last:%Y}", f"{last:%m}", f"{last:%d}"),
            _sql_timestamp(self.start),
            _sql_timestamp(self.end),
        )


@dataclass(frozen=True, slots=True)
class Settlement:
    """One settled billing day: the CSV's and the manifest's names and bytes."""

    day: date
    rows: int
    csv_name: str
    csv: bytes
    manifest_name: str
    manifest: bytes
    sha256: str


def csv_name(day: date) -> str:
    return f"billing-{day.isoformat()}.csv"


def manifest_name(day: date) -> str:
    return f"billing-{day.isoformat()}.manifest.json"


def settle(
    engine: SettlementEngine, day: date, settings: TransformSettings, generated_at: datetime
) -> Settlement:
    """Query the lake for ``day`` and render its settlement file and manifest.

    The CSV depends only on the lake's content and the settings, so a re-run is byte-identical; only the
    manifest's ``generated_at`` changes.
    """
    window = SettlementWindow.for_day(day, settings.billing_timezone, settings.billing_timezone_name)
    rows = engine.fetch(SETTLEMENT_SQL, window.parameters)
    body = render_csv(rows, settings.csv_columns, settings.billing_timezone)
    digest = hashlib.sha256(body).hexdigest()
    manifest = {
        "columns": list(settings.csv_columns),
        "date": day.isoformat(),
        "generated_at": format_utc(generated_at),
        "rows": len(rows),
        "sha256": digest,
        "timezone": window.timezone_name,
        "window_end_utc": _sql_timestamp(window.end),
        "window_start_utc": _sql_timestamp(window.start),
    }
    # One line: Athena's JSON SerDe reads one object per line (the vendor reconciliation query).
    manifest_bytes = (json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n").encode()
    return Settlement(
        day=day,
        rows=len(rows),
        csv_name=csv_name(day),
        csv=body,
        manifest_name=manifest_name(day),
        manifest=manifest_bytes,
        sha256=digest,
    )


def render_csv(rows: Sequence[RawRow], columns: Sequence[str], zone: tzinfo | None) -> bytes:
    """Header row, then one line per row: the stream's CSV cell rendering (formula-injection safe)."""
    plan = [(name, COLUMNS_BY_NAME[name]) for name in columns]
    lines = [CsvEncoder(columns, zone).header]
    for row in rows:
        cells = [csv_cell(row_value(name, row.get(name)), column, zone) for name, column in plan]
        lines.append((",".join(cells) + "\n").encode())
    return b"".join(lines)


def row_value(name: str, raw: object) -> Value:
    """An engine's value of registry column ``name`` as the value type ``transform.core.rows`` renders.

    Lake timestamps are UTC without a zone (Glue ``timestamp``); Athena returns every value as text.
    """
    if raw is None:
        return None
    column_type = COLUMNS_BY_NAME[name].type
    if column_type is ColumnType.TIMESTAMP:
        if isinstance(raw, str):
            try:
                raw = datetime.fromisoformat(raw)
            except ValueError:
                raise SettlementError(f"column {name} is not a timestamp") from None
        if not isinstance(raw, datetime):
            raise SettlementError(f"column {name} is not a timestamp")
        return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw
    if column_type is ColumnType.BIGINT:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and _INTEGER.fullmatch(raw):
            return int(raw)
        raise SettlementError(f"column {name} is not an integer")
    if not isinstance(raw, str):
        raise SettlementError(f"column {name} is not text")
    return raw


def previous_day(moment: datetime, zone: tzinfo | None) -> date:
    """The billing day that ended most recently at ``moment``: what a run just after midnight settles."""
    return moment.astimezone(zone or UTC).date() - timedelta(days=1)


def _sql_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class SettlementDestination(Protocol):
    """Where settled files go: a folder here, the vendor bucket's ``settled/`` prefix in AWS."""

    def put(self, name: str, body: bytes, content_type: str) -> str:
        """Store ``body`` as ``name``; return where it went (for messages)."""
        ...


def publish(settlement: Settlement, destination: SettlementDestination) -> tuple[str, str]:
    """Write the CSV, then the manifest: a manifest present means its CSV is complete."""
    csv_location = destination.put(settlement.csv_name, settlement.csv, "text/csv; charset=utf-8")
    manifest_location = destination.put(settlement.manifest_name, settlement.manifest, "application/json")
    return csv_location, manifest_location
