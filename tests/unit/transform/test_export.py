"""The daily settlement export (``transform.settlement.export`` + ``ctr-billing export``) on a local lake."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from firehose.cli.main import main
from firehose.offline.lake import LocalLake
from tests.support.lake_samples import (
    FORMULA_EXTENSION,
    NEW_YORK,
    LakeSample,
    call_type,
    duration,
    extension,
    local_day,
    parse_ts,
)
from transform.core.columns import COLUMN_NAMES, DEFAULT_CSV_COLUMNS
from transform.core.settings import TransformSettings
from transform.settlement.athena import AthenaEngine, AthenaQueryError, settlement_day
from transform.settlement.export import (
    SETTLEMENT_SQL,
    SettlementError,
    SettlementWindow,
    previous_day,
    row_value,
    settle,
)
from transform.settlement.queries import named_queries

DAYS = (date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3))
NOW = datetime(2026, 11, 4, 5, 10, tzinfo=UTC)


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> TransformSettings:
    monkeypatch.setenv("BILLING_TIMEZONE", "America/New_York")
    monkeypatch.delenv("CSV_COLUMNS", raising=False)
    return TransformSettings.from_environ({"BILLING_TIMEZONE": "America/New_York"})


def csv_lines(body: bytes) -> list[list[str]]:
    # The sample holds no quoted cells, so a split is an independent reading.
    return [line.split(",") for line in body.decode().splitlines()]


def expected_rows(sample: LakeSample, day: date) -> list[list[str]]:
    """The default CSV columns of the latest version of each contact initiated on ``day`` in New York."""
    latest = sorted(
        (ctr for ctr in sample.latest_ctrs() if local_day(ctr, NEW_YORK) == day),
        key=lambda ctr: (parse_ts(ctr["InitiationTimestamp"]), ctr["ContactId"]),
    )
    rows = []
    for ctr in latest:
        ext = extension(ctr)
        rows.append(
            [
                call_type(ctr),
                parse_ts(ctr["InitiationTimestamp"]).astimezone(NEW_YORK).isoformat(),
                str(duration(ctr)),
                ctr["CustomerEndpoint"]["Address"],
                "'" + ext if ext.startswith("=") else ext,
                str(int(ctr["Agent"].get("CustomerHoldDuration") or 0)),
            ]
        )
    return rows


# --- the settlement itself -------------------------------------------------------------------------


@pytest.mark.parametrize("day", DAYS)
def test_export_rows_are_the_latest_versions_of_the_local_day_in_initiation_order(
    sample: LakeSample, lake: LocalLake, new_york: TransformSettings, day: date
) -> None:
    # WHEN a day is settled in New York time
    settlement = settle(lake, day, new_york, NOW)
    # THEN a header, then exactly the day's contacts, latest values, ordered by initiation
    lines = csv_lines(settlement.csv)
    assert lines[0] == list(DEFAULT_CSV_COLUMNS)
    assert lines[1:] == expected_rows(sample, day)
    assert settlement.rows == len(lines) - 1 > 0


def test_every_contact_is_settled_exactly_once_across_the_days(
    sample: LakeSample, lake: LocalLake, new_york: TransformSettings
) -> None:
    # GIVEN the New York days around the sample (2026-10-31 holds the contacts before 04:00Z on 11-01)
    days = (date(2026, 10, 31), *DAYS)
    # WHEN each is settled with every column
    settings = TransformSettings.from_environ(
        {"BILLING_TIMEZONE": "America/New_York", "CSV_COLUMNS": ",".join(COLUMN_NAMES)}
    )
    settled = [line for day in days for line in csv_lines(settle(lake, day, settings, NOW).csv)[1:]]
    # THEN each contact appears once, however many copies and versions the lake holds
    contact_ids = [line[COLUMN_NAMES.index("contact_id")] for line in settled]
    assert sorted(contact_ids) == sorted(ctr["ContactId"] for ctr in sample.latest_ctrs())


def test_a_republished_contact_appears_once_with_its_latest_values(
    sample: LakeSample, lake: LocalLake, new_york: TransformSettings
) -> None:
    # GIVEN a contact republished twice (duration and extension changed each time)
    versions = [ctr for ctr in sample.deliveries if ctr["ContactId"] == sample.deliveries[12]["ContactId"]]
    assert len({ctr["LastUpdateTimestamp"] for ctr in versions}) == 3
    latest = max(versions, key=lambda ctr: ctr["LastUpdateTimestamp"])
    day = local_day(latest, NEW_YORK)
    # WHEN its day is settled
    lines = csv_lines(settle(lake, day, new_york, NOW).csv)[1:]
    # THEN one line holds it, with the latest duration and extension
    initiated = parse_ts(latest["InitiationTimestamp"]).astimezone(NEW_YORK).isoformat()
    mine = [line for line in lines if line[1] == initiated]
    assert len(mine) == 1
    assert mine[0][2] == str(duration(latest)) == "1234"
    assert mine[0][4] == extension(latest)


def test_a_formula_looking_value_is_neutralised_and_a_phone_number_is_not(
    sample: LakeSample, lake: LocalLake, new_york: TransformSettings
) -> None:
    # GIVEN the contact republished with the extension "=2+5"
    ctr = next(c for c in sample.latest_ctrs() if extension(c) == FORMULA_EXTENSION)
    # WHEN its day is settled
    body = settle(lake, local_day(ctr, NEW_YORK), new_york, NOW).csv.decode()
    # THEN the cell starts with a quote; E.164 numbers keep their '+'
    assert f",'{FORMULA_EXTENSION}," in body
    assert f",{ctr['CustomerEndpoint']['Address']}," in body
    assert f",{FORMULA_EXTENSION}," not in body


def test_the_manifest_describes_the_csv(lake: LocalLake, new_york: TransformSettings) -> None:
    # WHEN a day is settled
    settlement = settle(lake, date(2026, 11, 2), new_york, NOW)
    manifest = json.loads(settlement.manifest)
    # THEN the manifest names the day, counts data rows, hashes the CSV's bytes, lists the columns
    assert settlement.manifest.count(b"\n") == 1  # one line: Athena's JSON SerDe reads it as one row
    assert manifest["date"] == "2026-11-02"
    assert manifest["rows"] == settlement.csv.count(b"\n") - 1
    assert manifest["sha256"] == hashlib.sha256(settlement.csv).hexdigest()
    assert manifest["columns"] == list(DEFAULT_CSV_COLUMNS)
    assert manifest["generated_at"] == "2026-11-04T05:10:00Z"
    assert (manifest["window_start_utc"], manifest["window_end_utc"]) == (
        "2026-11-02 05:00:00",
        "2026-11-03 05:00:00",
    )
    assert (settlement.csv_name, settlement.manifest_name) == (
        "billing-2026-11-02.csv",
        "billing-2026-11-02.manifest.json",
    )


def test_the_export_sql_returns_the_latest_view_rows_of_the_window(lake: LocalLake) -> None:
    # GIVEN every UTC day of the sample
    columns = ", ".join(COLUMN_NAMES)
    view_sql = (
        f"SELECT {columns} FROM latest_billing_rows "  # noqa: S608
        "WHERE initiation_timestamp >= CAST(? AS timestamp) AND initiation_timestamp < CAST(? AS timestamp) "
        "ORDER BY initiation_timestamp, contact_id"
    )
    for day in DAYS:
        window = SettlementWindow.for_day(day, None)
        # WHEN the export's SQL and the latest-version view are read for that window
        exported = lake.query(SETTLEMENT_SQL, window.parameters).rows
        viewed = lake.query(view_sql, window.parameters[-2:]).rows
        # THEN they are the same rows
        assert exported == viewed
        assert exported


def test_the_billing_day_follows_the_time_zone_across_daylight_saving() -> None:
    # 2026-11-01 in New York lasts 25 hours (EDT -4 until 02:00, then EST -5)
    window = SettlementWindow.for_day(date(2026, 11, 1), NEW_YORK, "America/New_York")
    assert (window.start, window.end) == (
        datetime(2026, 11, 1, 4, tzinfo=UTC),
        datetime(2026, 11, 2, 5, tzinfo=UTC),
    )
    assert window.parameters == (
        "2026",
        "11",
        "01",
        "2026",
        "11",
        "02",
        "2026-11-01 04:00:00",
        "2026-11-02 05:00:00",
    )
    # In UTC the day is one partition
    utc = SettlementWindow.for_day(date(2026, 11, 1), None)
    assert utc.partition_days == (date(2026, 11, 1), date(2026, 11, 1))


def test_engine_values_are_typed_by_the_registry() -> None:
    # Athena returns text; DuckDB returns naive UTC datetimes and ints
    assert row_value("initiation_timestamp", "2026-11-02 14:13:58.000") == datetime(
        2026, 11, 2, 14, 13, 58, tzinfo=UTC
    )
    naive = row_value("initiation_timestamp", datetime(2026, 11, 2, 14, 13, 58))
    assert isinstance(naive, datetime) and naive.tzinfo is UTC
    assert row_value("duration_seconds", "1011") == 1011
    assert row_value("hold_seconds", None) is None
    assert row_value("provider_extension", "") == ""
    with pytest.raises(SettlementError, match="duration_seconds") as error:
        row_value("duration_seconds", "+12025550143")
    assert "+12025550143" not in str(error.value)


def test_the_scheduled_run_settles_the_day_that_just_ended_in_the_billing_zone() -> None:
    settings = TransformSettings.from_environ({"BILLING_TIMEZONE": "America/New_York"})
    # 00:15 in New York on 11-03 is 05:15Z: the day to settle is 11-02
    assert settlement_day({"scheduled_time": "2026-11-03T05:15:00Z"}, settings, NOW) == date(2026, 11, 2)
    assert settlement_day({"date": "2026-10-30"}, settings, NOW) == date(2026, 10, 30)
    assert settlement_day({}, settings, NOW) == previous_day(NOW, NEW_YORK) == date(2026, 11, 3)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        settlement_day({"date": "yesterday"}, settings, NOW)


# --- ctr-billing export ----------------------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_export_writes_the_files_and_a_rerun_is_byte_identical(
    sample: LakeSample, new_york: TransformSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the day is exported twice into a folder
    args = ["export", "--date", "2026-11-02", "--lake", str(sample.root), "--to", str(tmp_path / "out")]
    status, out, _ = run_cli(args, capsys)
    first = (tmp_path / "out" / "billing-2026-11-02.csv").read_bytes()
    first_manifest = json.loads((tmp_path / "out" / "billing-2026-11-02.manifest.json").read_bytes())
    assert run_cli(args, capsys)[0] == 0
    second = (tmp_path / "out" / "billing-2026-11-02.csv").read_bytes()
    second_manifest = json.loads((tmp_path / "out" / "billing-2026-11-02.manifest.json").read_bytes())
    # THEN both runs wrote the same CSV, described by the same manifest apart from generated_at
    assert status == 0
    assert first == second
    assert csv_lines(first)[1:] == expected_rows(sample, date(2026, 11, 2))
    first_manifest.pop("generated_at")
    second_manifest.pop("generated_at")
    assert first_manifest == second_manifest
    assert first_manifest["sha256"] == hashlib.sha256(first).hexdigest()
    # and the summary holds counts and the hash, never a phone number
    assert f"{first_manifest['rows']} rows" in out
    assert "+1202" not in out
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "billing-2026-11-02.csv",
        "billing-2026-11-02.manifest.json",
    ]


def test_cli_export_defaults_to_settled_beside_the_lake_and_honours_csv_columns(
    sample: LakeSample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a copy of the lake (the shared one must not gain a settled/ folder) and CSV_COLUMNS, UTC
    lake_copy = shutil.copytree(sample.root, tmp_path / "lake")
    monkeypatch.setenv("CSV_COLUMNS", "contact_id,duration_seconds")
    monkeypatch.delenv("BILLING_TIMEZONE", raising=False)
    # WHEN exported without --to
    assert run_cli(["export", "--date", "2026-11-03", "--lake", str(lake_copy)], capsys)[0] == 0
    # THEN the files are in settled/ beside the lake, with those columns
    body = (tmp_path / "settled" / "billing-2026-11-03.csv").read_text()
    lines = [line.split(",") for line in body.splitlines()]
    assert lines[0] == ["contact_id", "duration_seconds"]
    expected = {
        ctr["ContactId"]: str(duration(ctr))
        for ctr in sample.latest_ctrs()
        if local_day(ctr, None) == date(2026, 11, 3)
    }
    assert dict(lines[1:]) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-13-01"], "--date must be YYYY-MM-DD"),
        (["--date", "2026-11-02", "--lake", "/nonexistent/lake"], "no lake folder"),
        (["--date", "2026-11-02", "--lake", "s3://bucket"], "--to is required"),
    ],
)
def test_cli_export_errors_are_one_line_without_traceback(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(["export", *args], capsys)
    assert status == 2
    assert message in err
    assert "Traceback" not in err


def test_cli_export_names_a_bad_setting(
    sample: LakeSample, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CSV_COLUMNS", "call_type,no_such_column")
    status, _, err = run_cli(["export", "--date", "2026-11-02", "--lake", str(sample.root)], capsys)
    assert status == 2
    assert "CSV_COLUMNS" in err


# --- reconciliation against the settled files ------------------------------------------------------


def test_vendor_reconciliation_compares_the_lake_with_the_settled_files(
    sample: LakeSample, new_york: TransformSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN 11-01 and 11-02 settled (New York days), and 11-02's manifest then tampered to one row fewer
    settled = tmp_path / "settled"
    for day in ("2026-11-01", "2026-11-02"):
        assert (
            run_cli(["export", "--date", day, "--lake", str(sample.root), "--to", str(settled)], capsys)[0]
            == 0
        )
    tampered = settled / "billing-2026-11-02.manifest.json"
    manifest: dict[str, Any] = json.loads(tampered.read_text())
    manifest["rows"] -= 1
    tampered.write_text(json.dumps(manifest) + "\n")
    # WHEN the reconciliation runs
    with LocalLake(sample.root, settled) as lake:
        rows = lake.query(named_queries()["vendor_reconciliation"]).records()
    # THEN the settled days show their lake and file counts, and the lake's other rows, per UTC day,
    # show as not settled
    per_local_day: dict[date, int] = {}
    for ctr in sample.latest_ctrs():
        per_local_day[local_day(ctr, NEW_YORK)] = per_local_day.get(local_day(ctr, NEW_YORK), 0) + 1
    unsettled: dict[str, int] = {}
    for ctr in sample.latest_ctrs():
        if local_day(ctr, NEW_YORK) not in (date(2026, 11, 1), date(2026, 11, 2)):
            key = f"{parse_ts(ctr['InitiationTimestamp']):%Y-%m-%d}"
            unsettled[key] = unsettled.get(key, 0) + 1
    assert [(r["billing_date"], r["status"]) for r in rows if r["status"] != "not settled"] == [
        ("2026-11-01", "match"),
        ("2026-11-02", "mismatch"),
    ]
    by_date = {r["billing_date"]: r for r in rows if r["status"] != "not settled"}
    assert (
        by_date["2026-11-01"]["lake_rows"]
        == by_date["2026-11-01"]["settled_rows"]
        == per_local_day[date(2026, 11, 1)]
    )
    assert by_date["2026-11-02"]["lake_rows"] == per_local_day[date(2026, 11, 2)]
    assert by_date["2026-11-02"]["settled_rows"] == per_local_day[date(2026, 11, 2)] - 1
    assert {r["billing_date"]: r["lake_rows"] for r in rows if r["status"] == "not settled"} == unsettled


class _FailedAthenaQuery:
    """The Athena calls ``AthenaEngine`` makes, for a query that fails on a patient's phone number."""

    def start_query_execution(self, **request: Any) -> dict[str, str]:
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        return {
            "QueryExecution": {
                "Status": {
                    "State": "FAILED",
                    "StateChangeReason": "INVALID_CAST_ARGUMENT: Value cannot be cast to date: +12025550143",
                    "AthenaError": {"ErrorCategory": 2, "ErrorType": 1005, "Retryable": False},
                }
            }
        }


def test_a_failed_athena_query_is_reported_without_athena_s_reason() -> None:
    # GIVEN Athena failing a settlement query with a reason that quotes a phone number
    engine = AthenaEngine(_FailedAthenaQuery(), "work-group", "database", sleep=lambda _: None)  # type: ignore[arg-type]
    # WHEN the engine runs it
    with pytest.raises(AthenaQueryError) as error:
        engine.fetch("SELECT 1", [])
    # THEN the error (which reaches CloudWatch) names the query, its state and Athena's error codes only
    message = str(error.value)
    assert "q-1 FAILED" in message
    assert "category 2" in message and "type 1005" in message
    assert "2025550143" not in message
