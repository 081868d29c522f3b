"""``ctr-billing rebill`` on a demo's raw archive, checked against the day ``ctr-billing export`` settled from
the same demo's lake: two independent paths (stream -> lake -> SQL, raw -> core -> SQL) must agree byte
for byte when nothing changed, and a change of rules or settings must show up as exactly the corrections
it implies, worked out here from the settled file and the raw CTRs themselves.

One demo (300 contacts) runs for the module. Its lake was enriched by the provider directory the demo
seeded, so the rebills here get the same directory (the simulator's providers) in DynamoDB on a moto
server, as ``DIRECTORY_TABLE``. The demo's objects arrive at the wall-clock hour while the simulated
contacts are on 2026-11-02, so ``--window-days`` reaches the arrival day.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from firehose.offline.directory_files import seed_directory
from firehose.pipeline.simulator import ConnectSimulator
from tests.support.demo_runner import ROOT, run_demo
from tests.support.lookup_fixtures import directory_table_definition
from tests.support.moto_server import REGION

pytestmark = pytest.mark.e2e

CONTACTS = 300
SEED = 7
DAY = "2026-11-02"  # the simulator's traffic starts at 13:00 UTC that day and lasts a few hours
COLUMNS = (
    "contact_id,call_type,initiation_timestamp,duration_seconds,patient_phone,provider_extension,hold_seconds"
)
# Variables the rebills set themselves: none may leak in from the environment running the tests.
BILLING_VARIABLES = (
    "CSV_COLUMNS",
    "BILLING_TIMEZONE",
    "MIN_BILLABLE_SECONDS",
    "BILLABLE_CHANNELS",
    "EXTENSION_ATTRIBUTE",
    "DIRECTORY_TABLE",
    "LEDGER_TABLE",
)


@dataclass(frozen=True)
class Demo:
    out: Path
    summary: dict[str, Any]
    settled: Path  # the folder ``ctr-billing export`` wrote the day into
    directory: dict[str, str]  # agent id -> extension, as seeded for the demo and for the rebills
    aws: dict[str, str]  # the environment reaching the directory on the moto server

    @property
    def settled_csv(self) -> bytes:
        return (self.settled / f"billing-{DAY}.csv").read_bytes()


def cli(*arguments: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m firehose.cli.main ARGS`` from the repository root, with only the billing settings given."""
    environ = {name: value for name, value in os.environ.items() if name not in BILLING_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "firehose.cli.main", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**environ, **env},
        check=False,
    )


def window_days(raw: Path, day: date) -> int:
    """The ``--window-days`` reaching the last hour the demo's objects arrived (their keys' dates)."""
    arrivals = {
        date(int(path.parts[-5]), int(path.parts[-4]), int(path.parts[-3]))
        for path in (raw / "ctr").rglob("*.gz")
    }
    assert arrivals, "the demo archived nothing"
    assert min(arrivals) >= day - timedelta(days=1), "this machine's clock is before the simulated day"
    return (max(arrivals) - day).days


def create_directory(endpoint: str, providers: Mapping[str, str]) -> str:
    """The provider directory table (the template's key schema) holding the simulator's providers."""
    dynamodb = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    table = f"providers-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=table, **directory_table_definition())
    entries = [{"agentId": agent, "extension": extension} for agent, extension in providers.items()]
    assert seed_directory(dynamodb, table, entries) == len(entries)
    return table


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Demo:
    folder = tmp_path_factory.mktemp("rebill-demo")
    out = folder / "demo"
    result = run_demo("--contacts", str(CONTACTS), "--seed", str(SEED), "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    # The day as the vendor got it: settled from the demo's lake, with contact_id to match rows by.
    exported = cli(
        "export", "--date", DAY, "--lake", str(out / "lake"), "--to", str(folder / "settled"),
        env={"CSV_COLUMNS": COLUMNS},
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    providers = {p.agent_id: p.extension for p in ConnectSimulator(CONTACTS, seed=SEED).providers}
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "DIRECTORY_TABLE": create_directory(moto_endpoint, providers),
    }
    return Demo(out, summary, folder / "settled", providers, aws)


def rebill(demo: Demo, to: Path, *, directory: bool = True, **settings: str) -> dict[str, Any]:
    """Rebill DAY from the demo's raw archive against the settled file; the JSON summary."""
    env = {"CSV_COLUMNS": COLUMNS, **settings, **demo.aws}
    if not directory:
        del env["DIRECTORY_TABLE"]
    result = cli(
        "rebill", "--date", DAY, "--raw", str(demo.out / "raw"), "--to", str(to),
        "--settled", str(demo.settled), "--window-days", str(window_days(demo.out / "raw", date.fromisoformat(DAY))),
        "--json",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode(), newline="")))


def corrections(folder: Path) -> list[dict[str, str]]:
    return rows((folder / f"corrections-{DAY}.csv").read_bytes())


def raw_ctrs(raw: Path) -> dict[str, dict[str, Any]]:
    """The latest archived version of each contact, read straight from the GZIP JSON lines."""
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted((raw / "ctr").rglob("*.gz")):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            document = json.loads(line)
            contact_id = document.get("ContactId")
            if not isinstance(contact_id, str):
                continue
            current = latest.get(contact_id)
            if current is None or document["LastUpdateTimestamp"] > current["LastUpdateTimestamp"]:
                latest[contact_id] = document
    return latest


def test_with_unchanged_settings_the_rebill_is_byte_identical_to_the_settled_export(
    demo: Demo, tmp_path: Path
) -> None:
    # GIVEN the demo's raw archive and the day settled from its lake
    # WHEN the day is rebilled with the stack's settings (and its directory)
    summary = rebill(demo, tmp_path / "review")
    # THEN the rebilled file is the settled one byte for byte, and the corrections are only a header
    body = (tmp_path / "review" / f"billing-{DAY}.csv").read_bytes()
    assert body == demo.settled_csv
    assert rows(body)  # the day is not empty
    assert (tmp_path / "review" / f"corrections-{DAY}.csv").read_bytes() == (
        b"contact_id,change,column,settled,rebilled\n"
    )
    assert summary["corrections"]["lines"] == 0
    # and every archived record was read, and billed as the lake stream billed it
    assert summary["lines"] == demo.summary["records_put"]
    assert summary["outcomes"]["BillableContact"] == demo.summary["lake_rows"]
    assert summary["failures"] == []
    settled_manifest = json.loads((demo.settled / f"billing-{DAY}.manifest.json").read_text())
    manifest = json.loads((tmp_path / "review" / f"billing-{DAY}.manifest.json").read_text())
    assert {k: v for k, v in manifest.items() if k != "generated_at"} == {
        k: v for k, v in settled_manifest.items() if k != "generated_at"
    }


def test_a_stricter_minimum_removes_exactly_the_short_calls(demo: Demo, tmp_path: Path) -> None:
    # GIVEN the settled calls shorter than two minutes with the provider, read from the settled file
    minimum = 120
    settled = rows(demo.settled_csv)
    short = sorted(row["contact_id"] for row in settled if int(row["duration_seconds"]) < minimum)
    assert short and len(short) < len(settled)
    # WHEN the day is rebilled with MIN_BILLABLE_SECONDS=120
    summary = rebill(demo, tmp_path / "review", MIN_BILLABLE_SECONDS=str(minimum))
    # THEN the corrections remove exactly those calls, and change or add nothing
    assert corrections(tmp_path / "review") == [
        {"contact_id": contact_id, "change": "removed", "column": "", "settled": "", "rebilled": ""}
        for contact_id in short
    ]
    assert summary["corrections"] | {"settled": None, "file": None} == {
        "added": 0,
        "removed": len(short),
        "changed": 0,
        "lines": len(short),
        "settled": None,
        "file": None,
    }
    assert summary["billing"]["rows"] == len(settled) - len(short)
    assert summary["not_billable"]["BelowMinimumDuration"] >= len(short)


def test_a_billing_time_zone_changes_every_initiation_timestamp_to_local_time(
    demo: Demo, tmp_path: Path
) -> None:
    # GIVEN a day settled in UTC whose contacts all fall on the same day in New York (13:00Z onwards)
    settled = {row["contact_id"]: row for row in rows(demo.settled_csv)}
    # WHEN it is rebilled with BILLING_TIMEZONE=America/New_York
    rebill(demo, tmp_path / "review", BILLING_TIMEZONE="America/New_York")
    # THEN each contact has one changed line, its initiation time: the same instant, now in local time
    lines = corrections(tmp_path / "review")
    assert [line["contact_id"] for line in lines] == sorted(settled)
    for line in lines:
        assert (line["change"], line["column"]) == ("changed", "initiation_timestamp")
        assert line["settled"] == settled[line["contact_id"]]["initiation_timestamp"]
        assert line["settled"].endswith("Z") and line["rebilled"].endswith("-05:00")  # EST since 11-01
        assert datetime.fromisoformat(line["rebilled"]) == datetime.fromisoformat(line["settled"])
        assert datetime.fromisoformat(line["rebilled"]).utcoffset() == timedelta(hours=-5)
        assert datetime.fromisoformat(line["settled"]).tzinfo == UTC


def test_without_the_directory_exactly_the_extensions_it_filled_change(demo: Demo, tmp_path: Path) -> None:
    # GIVEN which settled contacts' CTRs carry no extension attribute (their extension came from the
    # directory): read from the raw archive itself
    latest = raw_ctrs(demo.out / "raw")
    settled = rows(demo.settled_csv)
    expected = []
    for row in sorted(settled, key=lambda row: row["contact_id"]):
        ctr = latest[row["contact_id"]]
        if not (ctr.get("Attributes") or {}).get("extensionNumber"):
            agent_id = ctr["Agent"]["ARN"].rsplit("/", 1)[-1]
            expected.append(
                {
                    "contact_id": row["contact_id"],
                    "change": "changed",
                    "column": "provider_extension",
                    "settled": demo.directory[agent_id],
                    "rebilled": "",
                }
            )
    assert expected and len(expected) < len(settled)
    # WHEN the day is rebilled without DIRECTORY_TABLE
    summary = rebill(demo, tmp_path / "review", directory=False)
    # THEN exactly those contacts' extensions change, from the directory's to empty
    assert corrections(tmp_path / "review") == expected
    assert summary["corrections"]["changed"] == len(expected)
    assert summary["corrections"]["added"] == summary["corrections"]["removed"] == 0
