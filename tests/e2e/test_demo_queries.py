"""The named queries and the vendor CSV of one ``ctr-billing demo``, checked against the simulator's truth.

One demo runs for the whole module (1,000 contacts, seed 11: two UTC days, 2026-11-02 and -03). The
truth is recomputed here, independently of the transform: the same ``ConnectSimulator`` (same contacts,
seed and the stack's billing settings) is re-run, its CTRs are parsed as JSON, and the billing columns
are derived from the CTR fields as DESIGN.md §3 defines them. Which contacts are billable and how each
was generated (e.g. routed through the queue) is the simulator's own knowledge, recorded as it decides.
Every query runs through the CLI, as a user runs it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from firehose.deploy.template import lambda_environment, load_template
from firehose.pipeline.simulator import ConnectSimulator, Contact, Kind, SimulatedRecord, billing_settings
from tests.support.demo_runner import ROOT, run_demo
from transform.settlement.queries import named_queries

pytestmark = pytest.mark.e2e

CONTACTS = 1000  # enough simulated traffic (from 13:00 UTC) to run past midnight into a second UTC day
SEED = 11
FIRST_DAY = "2026-11-02"
# DESIGN.md §3: these initiation methods bill as OUTBOUND, and API on VOICE; anything else as INBOUND.
OUTBOUND_METHODS = frozenset({"OUTBOUND", "CALLBACK", "EXTERNAL_OUTBOUND", "CAMPAIGN_PREVIEW"})
TIMESTAMP_COLUMNS = frozenset(
    {
        "initiation_timestamp",
        "connected_to_agent_timestamp",
        "disconnect_timestamp",
        "last_update_timestamp",
        "provider_left_timestamp",
    }
)


# --- the truth ---------------------------------------------------------------------------------------


class RecordingSimulator(ConnectSimulator):
    """The simulator, remembering per contact what it only keeps as counters: how the contact was
    generated and whether it decided (from those facts) that the contact is billable."""

    def __init__(self, contacts: int, **options: Any) -> None:
        super().__init__(contacts, **options)
        self.kinds: dict[str, Kind] = {}
        self.billable: dict[str, bool] = {}
        self.provider_seconds: dict[str, int] = {}

    def _publish(self, rng: random.Random, contact: Contact) -> Iterator[SimulatedRecord]:
        self.kinds[contact.contact_id] = contact.kind
        self.provider_seconds[contact.contact_id] = contact.provider_seconds
        return super()._publish(rng, contact)

    def _billable(self, contact: Contact) -> bool:
        billable = super()._billable(contact)
        self.billable[contact.contact_id] = billable
        return billable


def stack_environment(logical_id: str) -> dict[str, str]:
    """A Lambda's environment as the demo deploys it: the template's parameter defaults (the demo passes
    no billing parameters); table names and other resource references are left out."""
    template = load_template()
    defaults = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    environment = {}
    for name, value in lambda_environment(template, logical_id).items():
        if isinstance(value, str):
            environment[name] = value
        elif isinstance(value, dict) and value.get("Ref") in defaults:
            environment[name] = defaults[value["Ref"]]
    return environment


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def billing_row(ctr: Mapping[str, Any], directory: Mapping[str, str], attribute: str) -> dict[str, Any]:
    """Every registry column of a billable CTR, derived from its fields (DESIGN.md §3); timestamps as
    aware UTC datetimes, absent text as ''."""
    agent = ctr["Agent"]
    agent_id = agent["ARN"].rsplit("/", 1)[-1]
    initiated = parse_time(ctr["InitiationTimestamp"])
    connected = parse_time(agent["ConnectedToAgentTimestamp"])
    disconnected = parse_time(ctr["DisconnectTimestamp"])
    # The provider left at the after-contact work's start, else at a completed transfer, never after the
    # disconnect.
    left_at = agent.get("AfterContactWorkStartTimestamp") or ctr.get("TransferCompletedTimestamp")
    left = disconnected if left_at is None else min(parse_time(left_at), disconnected)
    method = ctr["InitiationMethod"]
    outbound = method in OUTBOUND_METHODS or (method == "API" and ctr["Channel"] == "VOICE")
    endpoint = ctr.get("CustomerEndpoint") or {}
    return {
        "call_type": "OUTBOUND" if outbound else "INBOUND",
        "initiation_timestamp": initiated,
        "duration_seconds": (left - connected) // timedelta(seconds=1),
        "patient_phone": endpoint.get("Address", "") if endpoint.get("Type") == "TELEPHONE_NUMBER" else "",
        "provider_extension": (ctr.get("Attributes") or {}).get(attribute) or directory.get(agent_id, ""),
        "hold_seconds": int(agent.get("CustomerHoldDuration") or 0),
        "contact_id": ctr["ContactId"],
        "initial_contact_id": ctr.get("InitialContactId") or "",
        "previous_contact_id": ctr.get("PreviousContactId") or "",
        "channel": ctr["Channel"],
        "initiation_method": ctr["InitiationMethod"],
        "connected_to_agent_timestamp": connected,
        "disconnect_timestamp": disconnected,
        "last_update_timestamp": parse_time(ctr["LastUpdateTimestamp"]),
        "agent_id": agent_id,
        "agent_username": agent.get("Username") or "",
        "queue_name": (ctr.get("Queue") or {}).get("Name") or "",
        "number_of_holds": int(agent.get("NumberOfHolds") or 0),
        "disconnect_reason": ctr.get("DisconnectReason") or "",
        "provider_left_timestamp": left,
        "contact_duration_seconds": (disconnected - initiated) // timedelta(seconds=1),
        "next_contact_id": ctr.get("NextContactId") or "",
        "year": f"{initiated:%Y}",
        "month": f"{initiated:%m}",
        "day": f"{initiated:%d}",
    }


def lake_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A billing row as ``ctr-billing query --format json`` prints a lake row: Glue timestamps are UTC
    without a zone."""
    return {
        name: value.astimezone(UTC).replace(tzinfo=None).isoformat() if name in TIMESTAMP_COLUMNS else value
        for name, value in row.items()
    }


@dataclass(frozen=True)
class Truth:
    kinds: dict[str, Kind]
    versions: dict[str, list[dict[str, Any]]]  # every published version of each billable contact
    latest: dict[str, dict[str, Any]]  # the billing row of each billable contact's latest version
    directory: dict[str, str]  # agent id -> extension, the provider directory the demo seeds
    environment: dict[str, str]  # the vendor transform's billing settings

    @property
    def zone_name(self) -> str:
        return self.environment.get("BILLING_TIMEZONE") or "UTC"

    def vendor_cells(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        """The row's vendor CSV cells (CSV_COLUMNS, timestamps in BILLING_TIMEZONE)."""
        columns = self.environment["CSV_COLUMNS"].split(",")
        zone = ZoneInfo(self.zone_name)
        cells = []
        for name in columns:
            value = row[name]
            if name in TIMESTAMP_COLUMNS:
                local = value.astimezone(zone)
                text = f"{value:%Y-%m-%dT%H:%M:%SZ}" if self.zone_name == "UTC" else local.isoformat()
            else:
                text = str(value)
            cells.append(text)
        return tuple(cells)


def compute_truth(records_put: int) -> Truth:
    environment = stack_environment("TransformCsvFunction")
    settings = billing_settings(environment)
    simulator = RecordingSimulator(CONTACTS, seed=SEED, **settings)
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    records = 0
    for record in simulator.records():
        records += 1
        document = json.loads(record.data)
        if "ContactId" in document and simulator.billable[document["ContactId"]]:
            versions[document["ContactId"]].append(document)
    # the regenerated traffic is the demo's traffic
    assert records == records_put
    assert len(versions) == simulator.truth.billable_contacts
    directory = {provider.agent_id: provider.extension for provider in simulator.providers}
    attribute = settings["extension_attribute"]
    latest = {
        contact_id: billing_row(
            max(published, key=lambda ctr: parse_time(ctr["LastUpdateTimestamp"])), directory, attribute
        )
        for contact_id, published in versions.items()
    }
    # the provider time read from the CTRs as DESIGN.md §3 says is the time the simulator generated
    assert {cid: row["duration_seconds"] for cid, row in latest.items()} == {
        cid: simulator.provider_seconds[cid] for cid in latest
    }
    return Truth(simulator.kinds, dict(versions), latest, directory, environment)


@dataclass(frozen=True)
class Demo:
    out: Path
    truth: Truth

    @property
    def lake(self) -> Path:
        return self.out / "lake"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo-queries") / "demo"
    result = run_demo("--contacts", str(CONTACTS), "--seed", str(SEED), "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    return Demo(out, compute_truth(summary["records_put"]))


# --- the CLI -----------------------------------------------------------------------------------------


def run_cli(*arguments: str, env: Mapping[str, str] | None = None) -> str:
    """``python -m firehose.cli.main ARGS`` from the repository root; its stdout (it must succeed)."""
    result = subprocess.run(
        [sys.executable, "-m", "firehose.cli.main", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
        check=False,
    )
    assert result.returncode == 0, f"ctr-billing {arguments[0]} failed: {result.stderr}"
    return result.stdout


def query_json(lake: Path, *what: str) -> list[dict[str, Any]]:
    output = run_cli("query", *what, "--lake", str(lake), "--format", "json")
    return [json.loads(line) for line in output.splitlines()]


def minutes(seconds: int) -> Decimal:
    """``round(sum(duration_seconds) / 60.0, 2)``."""
    return (Decimal(seconds) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def assert_minutes_rows(rows: list[dict[str, Any]], expected: list[dict[str, Any]], query: str) -> None:
    """Rows equal, ``billable_minutes`` to the cent (a float in JSON)."""
    assert [{k: v for k, v in row.items() if k != "billable_minutes"} for row in rows] == expected, query
    for row, want in zip(rows, expected, strict=True):
        assert row["billable_minutes"] == pytest.approx(float(minutes(want["billable_seconds"])), abs=1e-9)


# --- one truth check per named query -------------------------------------------------------------------


def check_latest_billing_rows(demo: Demo) -> None:
    # WHEN the named view is run (the CLI shows the view's rows), and the view is read directly
    named = query_json(demo.lake, "--named", "latest_billing_rows")
    rows = query_json(demo.lake, "SELECT * FROM latest_billing_rows")
    assert sorted(named, key=lambda row: row["contact_id"]) == sorted(rows, key=lambda row: row["contact_id"])
    # THEN it holds exactly one row per billable contact: its latest version, every column as in the CTR
    expected = [lake_json(demo.truth.latest[contact_id]) for contact_id in sorted(demo.truth.latest)]
    assert sorted(rows, key=lambda row: row["contact_id"]) == expected


def check_monthly_minutes_by_provider(demo: Demo) -> None:
    rows = query_json(demo.lake, "--named", "monthly_minutes_by_provider")
    calls: Counter[tuple[str, str, str]] = Counter()
    seconds: Counter[tuple[str, str, str]] = Counter()
    for row in demo.truth.latest.values():
        key = (row["year"], row["month"], row["provider_extension"])
        calls[key] += 1
        seconds[key] += row["duration_seconds"]
    expected = [
        {
            "year": year,
            "month": month,
            "provider_extension": extension,
            "calls": calls[year, month, extension],
            "billable_seconds": seconds[year, month, extension],
        }
        for year, month, extension in sorted(calls)
    ]
    assert len(expected) == len(demo.truth.directory)  # every provider took billable calls
    assert_minutes_rows(rows, expected, "monthly_minutes_by_provider")


def check_daily_calls_by_call_type(demo: Demo) -> None:
    rows = query_json(demo.lake, "--named", "daily_calls_by_call_type")
    calls: Counter[tuple[str, str]] = Counter()
    seconds: Counter[tuple[str, str]] = Counter()
    for row in demo.truth.latest.values():
        key = (f"{row['initiation_timestamp']:%Y-%m-%d}", row["call_type"])
        calls[key] += 1
        seconds[key] += row["duration_seconds"]
    expected = [
        {
            "call_date": day,
            "call_type": call_type,
            "calls": calls[day, call_type],
            "billable_seconds": seconds[day, call_type],
        }
        for day, call_type in sorted(calls)
    ]
    assert {day for day, _ in calls} == {FIRST_DAY, "2026-11-03"}  # the demo spans two UTC days
    assert_minutes_rows(rows, expected, "daily_calls_by_call_type")


def check_republished_contacts(demo: Demo) -> None:
    rows = query_json(demo.lake, "--named", "republished_contacts")
    truth = demo.truth
    expected = []
    for contact_id, published in truth.versions.items():
        updates = sorted({parse_time(ctr["LastUpdateTimestamp"]) for ctr in published})
        if len(updates) < 2:
            continue
        by_update = {parse_time(ctr["LastUpdateTimestamp"]): ctr for ctr in published}
        attribute = truth.environment.get("EXTENSION_ATTRIBUTE") or "extensionNumber"
        first = billing_row(by_update[updates[0]], truth.directory, attribute)
        latest = billing_row(by_update[updates[-1]], truth.directory, attribute)
        watched = (
            "duration_seconds",
            "provider_extension",
            "hold_seconds",
            "disconnect_timestamp",
            "agent_id",
        )
        expected.append(
            {
                "contact_id": contact_id,
                "versions": len(updates),
                "first_update": lake_json(first)["last_update_timestamp"],
                "latest_update": lake_json(latest)["last_update_timestamp"],
                "changed_columns": ",".join(name for name in watched if first[name] != latest[name]),
                "first_duration_seconds": first["duration_seconds"],
                "latest_duration_seconds": latest["duration_seconds"],
                "first_provider_extension": first["provider_extension"],
                "latest_provider_extension": latest["provider_extension"],
            }
        )
    expected.sort(key=lambda row: (row["latest_update"], row["contact_id"]))
    assert expected  # the demo republished some billable contacts
    assert rows == expected


def check_vendor_reconciliation(demo: Demo) -> None:
    truth = demo.truth
    per_day = Counter(f"{row['initiation_timestamp']:%Y-%m-%d}" for row in truth.latest.values())
    assert sorted(per_day) == [FIRST_DAY, "2026-11-03"]
    settled = demo.lake.parent / "settled"
    assert not settled.exists()  # nothing settled yet

    # GIVEN no settled file: every day of the lake is 'not settled', with its latest-version rows
    before = query_json(demo.lake, "--named", "vendor_reconciliation")
    assert before == [
        {"billing_date": day, "lake_rows": per_day[day], "settled_rows": None, "status": "not settled"}
        for day in sorted(per_day)
    ]

    # WHEN the first day is exported (to settled/ beside the lake, the default) with the stack's settings
    billing_env = {name: truth.environment[name] for name in ("BILLING_TIMEZONE", "CSV_COLUMNS")}
    run_cli("export", "--date", FIRST_DAY, "--lake", str(demo.lake), env=billing_env)

    # THEN its file holds the day's contacts as the vendor sees them
    window_start = datetime.combine(
        date.fromisoformat(FIRST_DAY), datetime.min.time(), ZoneInfo(truth.zone_name)
    )
    window_end = window_start + timedelta(days=1)
    in_window = [
        row for row in truth.latest.values() if window_start <= row["initiation_timestamp"] < window_end
    ]
    lines = list(csv.reader(io.StringIO((settled / f"billing-{FIRST_DAY}.csv").read_text(encoding="utf-8"))))
    assert lines[0] == truth.environment["CSV_COLUMNS"].split(",")
    assert Counter(map(tuple, lines[1:])) == Counter(truth.vendor_cells(row) for row in in_window)
    manifest = json.loads((settled / f"billing-{FIRST_DAY}.manifest.json").read_text())
    assert manifest["rows"] == len(in_window)

    # and the reconciliation reports it a match, and the day not exported 'not settled'
    after = query_json(demo.lake, "--named", "vendor_reconciliation")
    assert after == [
        {
            "billing_date": FIRST_DAY,
            "lake_rows": len(in_window),
            "settled_rows": len(in_window),
            "status": "match",
        },
        {
            "billing_date": "2026-11-03",
            "lake_rows": per_day["2026-11-03"],
            "settled_rows": None,
            "status": "not settled",
        },
    ]


TRUTH_CHECKS: dict[str, Callable[[Demo], None]] = {
    "latest_billing_rows": check_latest_billing_rows,
    "monthly_minutes_by_provider": check_monthly_minutes_by_provider,
    "daily_calls_by_call_type": check_daily_calls_by_call_type,
    "republished_contacts": check_republished_contacts,
    "vendor_reconciliation": check_vendor_reconciliation,
}


@pytest.mark.parametrize("name", sorted(named_queries()))
def test_named_query_on_the_demo_lake_answers_what_the_simulator_generated(demo: Demo, name: str) -> None:
    # GIVEN the demo's lake and the truth recomputed from the simulator's CTRs
    # WHEN the named query runs through the CLI THEN its answer is the truth
    check = TRUTH_CHECKS.get(name)
    assert check is not None, f"named query {name} has no truth check in {Path(__file__).name}"
    check(demo)


# --- the vendor CSV ----------------------------------------------------------------------------------


def vendor_rows(out: Path) -> list[tuple[str, ...]]:
    """The demo's streamed vendor CSV rows (no header), GZIP or not."""
    rows: list[tuple[str, ...]] = []
    for path in sorted((out / "vendor" / "billing").rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        rows.extend(tuple(row) for row in csv.reader(io.StringIO(data.decode("utf-8"))))
    return rows


def test_every_vendor_row_is_a_billable_contact_with_its_provider_extension(demo: Demo) -> None:
    # GIVEN the billable contacts' expected vendor rows, each one distinct
    truth = demo.truth
    expected = {contact_id: truth.vendor_cells(row) for contact_id, row in truth.latest.items()}
    assert len(set(expected.values())) == len(expected)

    # WHEN the demo's vendor CSV is read
    rows = vendor_rows(demo.out)

    # THEN it holds exactly one row per billable contact (the billing ledger is on), as expected
    assert Counter(rows) == Counter(expected.values())
    # and every row names a provider extension
    extension = truth.environment["CSV_COLUMNS"].split(",").index("provider_extension")
    assert all(row[extension] for row in rows)


def test_queue_routed_calls_carry_the_extension_of_the_provider_who_took_them(demo: Demo) -> None:
    # GIVEN the billable calls the simulator routed through the queue: their CTRs name no extension
    truth = demo.truth
    attribute = truth.environment.get("EXTENSION_ATTRIBUTE") or "extensionNumber"
    queued = [contact_id for contact_id in truth.latest if truth.kinds[contact_id] is Kind.INBOUND_QUEUE]
    assert queued
    assert not any(
        attribute in (ctr.get("Attributes") or {}) for cid in queued for ctr in truth.versions[cid]
    )

    # WHEN the demo's vendor CSV is read
    rows = Counter(vendor_rows(demo.out))

    # THEN each such call's row is there with the extension the directory gives its provider (agent)
    for contact_id in queued:
        row = truth.latest[contact_id]
        assert row["provider_extension"] == truth.directory[row["agent_id"]] != ""
        assert rows[truth.vendor_cells(row)] == 1, (
            f"no vendor row with its provider's extension: {contact_id}"
        )


def test_each_kind_of_contact_is_billed_as_the_rules_say(demo: Demo) -> None:
    # GIVEN the demo's latest lake rows, by how the simulator generated each contact
    rows = {row["contact_id"]: row for row in query_json(demo.lake, "SELECT * FROM latest_billing_rows")}
    truth = demo.truth
    by_kind: dict[Kind, list[dict[str, Any]]] = defaultdict(list)
    for contact_id, row in rows.items():
        by_kind[truth.kinds[contact_id]].append(row)
    # THEN every kind that reaches a provider on voice is billed, chats (not a billable channel) are not
    assert set(by_kind) == set(Kind) - {Kind.VOICEMAIL, Kind.ABANDONED, Kind.API_CHAT, Kind.MONITOR}
    assert Kind.API_CHAT in set(truth.kinds.values())
    # and a cold transfer to an outside number ends provider time at the transfer, not the disconnect
    for row in by_kind[Kind.EXTERNAL_TRANSFER]:
        assert row["provider_left_timestamp"] < row["disconnect_timestamp"]
        assert row["duration_seconds"] < row["contact_duration_seconds"]
    # while a provider who stayed in a conference is billed to the disconnect
    for row in by_kind[Kind.CONFERENCE]:
        assert row["provider_left_timestamp"] == row["disconnect_timestamp"]
    # and API voice calls are outbound, in-app (WEBRTC_API) calls inbound
    assert {row["call_type"] for row in by_kind[Kind.API_OUTBOUND]} == {"OUTBOUND"}
    assert {row["call_type"] for row in by_kind[Kind.IN_APP_CALL]} == {"INBOUND"}
    # and the first leg of a transfer inside Connect names the next leg
    assert any(row["next_contact_id"] in rows for row in by_kind[Kind.TRANSFER])
