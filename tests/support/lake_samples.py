"""A realistic data lake for tests: CTRs -> billing rules -> JSON rows -> Parquet in the hive layout.

Rows go through what the json-mode transform does (``transform.core.rules.classify``,
``transform.core.rows.json_row_dict`` / ``partition_keys``) and are written, as Firehose's format conversion
does, with ``transform.core.columns.arrow_schema()`` under
``billing_rows/year=YYYY/month=MM/day=DD/<firehose object name>.parquet``.

The sample covers three days around the end of daylight saving time in New York (2026-11-01 is a
25-hour day there), contacts near UTC and local midnight, several providers, an unknown provider, inbound
and outbound calls (API voice calls among them) and in-app calls, cold transfers to an outside number
(with and without after-contact work), after-contact work that starts a few seconds after the
disconnect, the first leg of a transfer inside Connect, contacts Connect republished with a changed
duration or extension, identical redeliveries, and a formula-looking extension. ``duration``,
``call_type`` and the other helpers compute the expected answers from the CTRs themselves, per DESIGN.md
§3 in plain Python, not through the transform or SQL.
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

from tests.support.ctr_factory import billable_ctr, iso, outbound_ctr
from transform.core.columns import COLUMNS, ColumnType, arrow_schema
from transform.core.rows import json_row_dict, partition_keys
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings

NEW_YORK = ZoneInfo("America/New_York")
EXTENSIONS = ("4417", "5120", "7301", "")
# DESIGN.md §3: outbound on every channel; API only on VOICE (StartOutboundVoiceContact).
OUTBOUND = frozenset({"OUTBOUND", "CALLBACK", "EXTERNAL_OUTBOUND", "CAMPAIGN_PREVIEW"})
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


def provider_left(ctr: dict[str, Any]) -> datetime:
    """The end of provider time (DESIGN.md §3), computed here independently of transform.core.rules."""
    disconnected = parse_ts(ctr["DisconnectTimestamp"])
    for end in (ctr["Agent"].get("AfterContactWorkStartTimestamp"), ctr.get("TransferCompletedTimestamp")):
        if end is not None:
            return min(parse_ts(end), disconnected)
    return disconnected


def duration(ctr: dict[str, Any]) -> int:
    """Seconds with the provider: from the connect to when the provider left, rounded down."""
    seconds = (provider_left(ctr) - parse_ts(ctr["Agent"]["ConnectedToAgentTimestamp"])).total_seconds()
    return int(seconds // 1)


def contact_duration(ctr: dict[str, Any]) -> int:
    """Seconds the whole contact was open: from the initiation to the disconnect."""
    seconds = (parse_ts(ctr["DisconnectTimestamp"]) - parse_ts(ctr["InitiationTimestamp"])).total_seconds()
    return int(seconds // 1)


def extension(ctr: dict[str, Any]) -> str:
    return str(ctr["Attributes"].get("extensionNumber", ""))


def call_type(ctr: dict[str, Any]) -> str:
    method = ctr["InitiationMethod"]
    outbound = method in OUTBOUND or (method == "API" and ctr["Channel"] == "VOICE")
    return "OUTBOUND" if outbound else "INBOUND"


def republish(
    ctr: dict[str, Any], *, after_seconds: int, talk_seconds: int | None = None, **attributes: str
) -> dict[str, Any]:
    """Connect's republished CTR: same ContactId, later LastUpdateTimestamp, changed fields.

    A changed ``talk_seconds`` moves the moment the provider left, and with it everything that follows
    it on Connect's timeline: after-contact work, a completed transfer, the disconnect.
    """
    version = copy.deepcopy(ctr)
    version["LastUpdateTimestamp"] = iso(
        parse_ts(ctr["LastUpdateTimestamp"]) + timedelta(seconds=after_seconds)
    )
    if talk_seconds is not None:
        agent = version["Agent"]
        connected = parse_ts(agent["ConnectedToAgentTimestamp"])
        shift = connected + timedelta(seconds=talk_seconds) - provider_left(ctr)
        for owner, name in (
            (version, "DisconnectTimestamp"),
            (version, "TransferCompletedTimestamp"),
            (agent, "AfterContactWorkStartTimestamp"),
            (agent, "AfterContactWorkEndTimestamp"),
        ):
            if owner.get(name) is not None:
                owner[name] = iso(parse_ts(owner[name]) + shift)
        agent["AgentInteractionDuration"] = talk_seconds
        if parse_ts(version["LastUpdateTimestamp"]) <= parse_ts(version["DisconnectTimestamp"]):
            version["LastUpdateTimestamp"] = iso(
                parse_ts(version["DisconnectTimestamp"]) + timedelta(seconds=1)
            )
    version["Attributes"].update(attributes)
    return version


def external_transfer(ctr: dict[str, Any], *, open_seconds: int, after_contact_work: bool) -> None:
    """The provider cold-transferred the patient to an outside number when the call would have ended;
    the contact stays open ``open_seconds`` longer (the shape of a real CTR: the transfer and the
    after-contact work start at the same second, the disconnect minutes later)."""
    transferred = parse_ts(ctr["DisconnectTimestamp"])
    ctr["TransferCompletedTimestamp"] = iso(transferred)
    ctr["TransferredToEndpoint"] = {"Address": "+12025550188", "Type": "TELEPHONE_NUMBER"}
    ctr["DisconnectTimestamp"] = iso(transferred + timedelta(seconds=open_seconds))
    ctr["LastUpdateTimestamp"] = iso(transferred + timedelta(seconds=open_seconds + 67))
    agent = ctr["Agent"]
    if after_contact_work:
        agent["AfterContactWorkStartTimestamp"] = iso(transferred)
    else:
        # An agent without after-contact work: the completed transfer alone says when the provider left.
        for name in (
            "AfterContactWorkStartTimestamp",
            "AfterContactWorkEndTimestamp",
            "AfterContactWorkDuration",
        ):
            agent[name] = None


def late_after_contact_work(ctr: dict[str, Any], seconds: int) -> None:
    """After-contact work recorded ``seconds`` after the disconnect, as real CTRs often have it."""
    agent = ctr["Agent"]
    started = parse_ts(ctr["DisconnectTimestamp"]) + timedelta(seconds=seconds)
    agent["AfterContactWorkStartTimestamp"] = iso(started)
    agent["AfterContactWorkEndTimestamp"] = iso(started + timedelta(seconds=41))


def transfer_inside_connect(ctr: dict[str, Any]) -> None:
    """The first leg of a transfer to another queue: it ends at the transfer and names the next leg."""
    ctr["TransferCompletedTimestamp"] = ctr["DisconnectTimestamp"]
    ctr["NextContactId"] = f"{ctr['ContactId']}-next"
    ctr["DisconnectReason"] = "CONTACT_FLOW_DISCONNECT"


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
            {0: "OUTBOUND", 10: "CALLBACK", 15: "API"}.get(number % 20, "OUTBOUND")
            if builder is outbound_ctr
            else ("WEBRTC_API" if number % 11 == 3 else "INBOUND")
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
        if builder is billable_ctr and number % 9 == 4:
            external_transfer(ctr, open_seconds=rng.randrange(60, 1500), after_contact_work=True)
        elif builder is billable_ctr and number % 13 == 6:
            external_transfer(ctr, open_seconds=rng.randrange(60, 1500), after_contact_work=False)
        elif builder is billable_ctr and number % 9 == 7:
            late_after_contact_work(ctr, rng.randrange(1, 6))
        elif builder is billable_ctr and number % 17 == 8:
            transfer_inside_connect(ctr)
        deliveries.append(ctr)
    # Republished: changed duration; changed extension; both, twice; a formula-looking extension.
    deliveries.append(republish(deliveries[3], after_seconds=600, talk_seconds=duration(deliveries[3]) + 95))
    deliveries.append(republish(deliveries[9], after_seconds=120, extensionNumber="7301"))
    second = republish(deliveries[12], after_seconds=60, talk_seconds=61, extensionNumber="5120")
    deliveries.append(second)
    deliveries.append(republish(second, after_seconds=3600, talk_seconds=1234, extensionNumber="4417"))
    deliveries.append(republish(deliveries[20], after_seconds=30, extensionNumber=FORMULA_EXTENSION))
    # An external transfer republished with a shorter provider time: the transfer and the disconnect move.
    deliveries.append(republish(deliveries[4], after_seconds=900, talk_seconds=duration(deliveries[4]) - 30))
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


def write_lake(
    root: Path,
    deliveries: Sequence[dict[str, Any]],
    batch_size: int = 7,
    *,
    schema: pa.Schema | None = None,
    first_batch: int = 0,
) -> list[Path]:
    """Write ``deliveries`` as Firehose would: batches, one Parquet object per batch and partition.

    ``schema`` (the registry's by default) is the Glue table's at delivery time: an older one leaves out
    the columns added since. ``first_batch`` numbers the objects of a later delivery apart."""
    written = []
    schema = arrow_schema() if schema is None else schema
    for batch_number, start in enumerate(range(0, len(deliveries), batch_size), start=first_batch):
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
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
            written.append(path)
    return written


def build_lake(root: Path, deliveries: Iterable[dict[str, Any]] | None = None) -> LakeSample:
    copies = list(sample_deliveries() if deliveries is None else deliveries)
    write_lake(root, copies)
    return LakeSample(root=root, deliveries=copies)


def local_day(ctr: dict[str, Any], zone: ZoneInfo | None) -> date:
    moment = parse_ts(ctr["InitiationTimestamp"])
    return moment.astimezone(zone or UTC).date()
