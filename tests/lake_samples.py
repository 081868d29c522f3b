"""A realistic data lake for tests: CTRs -> billing rules -> JSON rows -> Parquet in the hive layout.

Rows go through what the json-mode transform does (``transform.rules.classify``,
``transform.rows.json_row_dict`` / ``partition_keys``) and are written, as Firehose's format conversion
does, with ``transform.columns.arrow_schema()`` under
``billing_rows/year=YYYY/month=MM/day=DD/<firehose object name>.parquet``.

The sample covers three days around the end of daylight saving time in New York (2026-11-01 is a
25-hour day there), contacts near UTC and local midnight, several providers, an unknown provider, inbound
and outbound calls, contacts Connect republished with a changed duration or extension, identical
redeliveries, and a formula-looking extension. ``truth_*`` helpers compute the expected answers from the
CTRs themselves, with plain Python, not through the transform or SQL.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

from tests.unit.ctr_factory import billable_ctr, iso, outbound_ctr
from transform.columns import COLUMNS, ColumnType, arrow_schema
from transform.rows import json_row_dict, partition_keys
from transform.rules import BillableContact, classify
from transform.settings import TransformSettings

NEW_YORK = ZoneInfo("America/New_York")
EXTENSIONS = ("4417", "5120", "7301", "")
OUTBOUND = frozenset({"OUTBOUND", "CALLBACK", "API", "EXTERNAL_OUTBOUND", "CAMPAIGN_PREVIEW"})
FORMULA_EXTENSION = "=2+5"


@dataclass
class LakeSample:
    """Every delivered copy of every CTR (in delivery order) and the lake folder they were written to."""

    root: Path
    deliveries: list[dict[str, Any]]

    def latest_ctrs(self) -> list[dict[str, Any]]:
        """The latest version of each contact: the greatest LastUpdateTimestamp."""
        latest: dict[str, dict[str, Any]] = {}
        for ctr in self.deliveries:
            current = latest.get(ctr["ContactId"])
            if current is None or parse_ts(ctr["LastUpdateTimestamp"]) > parse_ts(
                current["LastUpdateTimestamp"]
            ):
                latest[ctr["ContactId"]] = ctr
        return list(latest.values())


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def duration(ctr: dict[str, Any]) -> int:
    """Seconds with the provider, computed here independently of transform.rules."""
    seconds = (
        parse_ts(ctr["DisconnectTimestamp"]) - parse_ts(ctr["Agent"]["ConnectedToAgentTimestamp"])
    ).total_seconds()
    return int(seconds // 1)


def extension(ctr: dict[str, Any]) -> str:
    return str(ctr["Attributes"].get("extensionNumber", ""))


def call_type(ctr: dict[str, Any]) -> str:
    return "OUTBOUND" if ctr["InitiationMethod"] in OUTBOUND else "INBOUND"


def republish(
    ctr: dict[str, Any], *, after_seconds: int, talk_seconds: int | None = None, **attributes: str
) -> dict[str, Any]:
    """Connect's republished CTR: same ContactId, later LastUpdateTimestamp, changed fields."""
    version = copy.deepcopy(ctr)
    version["LastUpdateTimestamp"] = iso(
        parse_ts(ctr["LastUpdateTimestamp"]) + timedelta(seconds=after_seconds)
    )
    if talk_seconds is not None:
        connected = parse_ts(version["Agent"]["ConnectedToAgentTimestamp"])
        version["DisconnectTimestamp"] = iso(connected + timedelta(seconds=talk_seconds))
    version["Attributes"].update(attributes)
    return version


def sample_deliveries(seed: int = 20261102) -> list[dict[str, Any]]:
    """The CTR copies the lake receives, in delivery order (republished versions after their first)."""
    rng = random.Random(seed)
    deliveries: list[dict[str, Any]] = []
    starts = [
        # Around UTC midnight and New York midnight (05:00Z after the DST change, 04:00Z before).
        datetime(2026, 11, 1, 3, 59, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 4, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 23, 58, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 2, 4, 59, 59, tzinfo=UTC),
        datetime(2026, 11, 2, 5, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 3, 4, 59, 0, tzinfo=UTC),
        datetime(2026, 11, 3, 5, 0, 0, tzinfo=UTC),
    ]
    starts += [
        datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 86400)) for _ in range(44)
    ]
    for number, initiated in enumerate(starts):
        contact_id = f"c{number:03d}-{rng.randrange(16**8):08x}"
        talk = rng.randrange(30, 2400)
        ext = rng.choice(EXTENSIONS)
        builder = outbound_ctr if number % 5 == 0 else billable_ctr
        method = (
            {0: "OUTBOUND", 10: "CALLBACK"}.get(number % 20, "OUTBOUND")
            if builder is outbound_ctr
            else "INBOUND"
        )
        ctr = builder(
            contact_id=contact_id,
            initiated=initiated,
            talk_seconds=talk,
            extension=ext or None,
            hold_seconds=rng.choice([None, 0, 15, 60]),
            phone=f"+1202555{rng.randrange(10_000):04d}",
            initiation_method=method,
        )
        deliveries.append(ctr)
    # Republished: changed duration; changed extension; both, twice; a formula-looking extension.
    deliveries.append(republish(deliveries[3], after_seconds=600, talk_seconds=duration(deliveries[3]) + 95))
    deliveries.append(republish(deliveries[9], after_seconds=120, extensionNumber="7301"))
    second = republish(deliveries[12], after_seconds=60, talk_seconds=61, extensionNumber="5120")
    deliveries.append(second)
    deliveries.append(republish(second, after_seconds=3600, talk_seconds=1234, extensionNumber="4417"))
    deliveries.append(republish(deliveries[20], after_seconds=30, extensionNumber=FORMULA_EXTENSION))
    # At-least-once delivery: identical copies of a first version and of a republished version.
    deliveries.append(copy.deepcopy(deliveries[7]))
    deliveries.append(copy.deepcopy(second))
    return deliveries


def billing_row(ctr: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(partition keys, Parquet row) for one CTR, as the json-mode transform and format conversion do."""
    contact = classify(ctr, TransformSettings())
    assert isinstance(contact, BillableContact), contact
    row = json_row_dict(contact)
    for column in COLUMNS:
        if column.type is ColumnType.TIMESTAMP and row[column.name] is not None:
            row[column.name] = parse_ts(row[column.name])
    return partition_keys(contact), row


def write_lake(root: Path, deliveries: Sequence[dict[str, Any]], batch_size: int = 7) -> list[Path]:
    """Write ``deliveries`` as Firehose would: batches, one Parquet object per batch and partition."""
    written = []
    for batch_number, start in enumerate(range(0, len(deliveries), batch_size)):
        by_partition: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for ctr in deliveries[start : start + batch_size]:
            keys, row = billing_row(ctr)
            by_partition[(keys["year"], keys["month"], keys["day"])].append(row)
        for (year, month, day), rows in sorted(by_partition.items()):
            folder = root / "billing_rows" / f"year={year}" / f"month={month}" / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            path = (
                folder
                / f"ctr-billing-lake-1-{year}-{month}-{day}-00-00-{batch_number:02d}-{batch_number:08d}.parquet"
            )
            pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), path)
            written.append(path)
    return written


def build_lake(root: Path, deliveries: Iterable[dict[str, Any]] | None = None) -> LakeSample:
    copies = list(sample_deliveries() if deliveries is None else deliveries)
    write_lake(root, copies)
    return LakeSample(root=root, deliveries=copies)


def local_day(ctr: dict[str, Any], zone: ZoneInfo | None) -> date:
    moment = parse_ts(ctr["InitiationTimestamp"])
    return moment.astimezone(zone or UTC).date()
