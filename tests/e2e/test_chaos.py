"""``ctr-billing demo --chaos SEED`` as a user runs it: faults everywhere, three kills and restarts from
the checkpoints, and still every billable contact billed exactly once."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.support.demo_runner import run_demo

pytestmark = pytest.mark.e2e


def test_a_chaos_demo_loses_nothing_and_bills_nothing_twice(tmp_path: Path) -> None:
    # GIVEN an output folder WHEN a small chaos demo runs
    out = tmp_path / "chaos"
    result = run_demo("--chaos", "1", "--contacts", "1500", "--seed", "3", "--out", str(out))

    # THEN it succeeds and its summary reports no lost contact and no duplicate vendor row
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost"] == 0
    assert summary["duplicate_vendor_rows"] == 0
    assert summary["vendor_rows"] == summary["billable_expected"] == summary["chaos"]["billable_contacts"] > 0
    # AND the faults happened: the runtime was killed and restarted three times, reads were throttled
    assert summary["chaos"]["seed"] == 1
    assert summary["chaos"]["restarts"] == 3
    assert summary["chaos"]["kinesis_throttles"] > 0

    # AND the downloaded vendor files, read as a user would, hold one row per contact (contact_id first)
    rows = [
        row for path in sorted((out / "vendor" / "billing").rglob("*.csv")) for row in csv.reader(path.open())
    ]
    assert len(rows) == summary["vendor_rows"]
    assert max(Counter(row[0] for row in rows).values()) == 1


def test_chaos_needs_simulated_contacts(tmp_path: Path) -> None:
    # GIVEN a file of records WHEN chaos is asked for with --input THEN the demo refuses, saying why
    records = tmp_path / "ctrs.jsonl"
    records.write_text("{}\n")
    result = run_demo("--chaos", "1", "--input", str(records), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "--chaos" in result.stderr
