"""The settlement export against the embedded AWS (a moto server over HTTP): an s3:// lake and
destination for ``ctr-billing export``, and the scheduled Lambda with Athena as its engine."""

from __future__ import annotations

import hashlib
import importlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests

from firehose.cli.main import main
from firehose.offline.lake import LocalLake, parquet_files
from tests.support.lake_samples import LakeSample, build_lake
from tests.support.moto_server import REGION
from transform.core.columns import COLUMN_NAMES
from transform.core.settings import SettingsError, TransformSettings
from transform.settlement.export import SETTLEMENT_SQL, SettlementWindow, settle

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 4, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> LakeSample:
    return build_lake(tmp_path_factory.mktemp("demo") / "lake")


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=aws_env)


def bucket(s3: Any, name: str) -> str:
    s3.create_bucket(Bucket=name)
    return name


def upload_lake(s3: Any, lake_bucket: str, sample: LakeSample, prefix: str = "") -> None:
    """The lake bucket as Firehose leaves it: Parquet under billing_rows/, error output beside it."""
    for path in parquet_files(sample.root):
        s3.upload_file(str(path), lake_bucket, prefix + path.relative_to(sample.root).as_posix())
    s3.put_object(Bucket=lake_bucket, Key=prefix + "errors/processing-failed/2026/11/02/x", Body=b"{}")


def local_csv(sample: LakeSample, day: date, zone: str) -> bytes:
    with LocalLake(sample.root) as lake:
        return settle(lake, day, TransformSettings.from_environ({"BILLING_TIMEZONE": zone}), NOW).csv


@pytest.mark.parametrize("prefix", ["", "data/lake/"])
def test_cli_export_reads_an_s3_lake_and_writes_to_s3(
    sample: LakeSample,
    s3: Any,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the sample lake in a bucket (optionally under a prefix), settling in New York time
    lake_bucket = bucket(s3, f"lake-{len(prefix)}")
    vendor_bucket = bucket(s3, f"vendor-{len(prefix)}")
    upload_lake(s3, lake_bucket, sample, prefix)
    monkeypatch.setenv("BILLING_TIMEZONE", "America/New_York")
    # WHEN 2026-11-01 (a 25-hour day spanning two UTC partitions) is exported
    status = main(
        [
            "export",
            "--date",
            "2026-11-01",
            "--lake",
            f"s3://{lake_bucket}/{prefix}",
            "--to",
            f"s3://{vendor_bucket}/settled/",
        ]
    )
    out = capsys.readouterr().out
    # THEN the vendor bucket holds the same CSV a local export of the whole lake gives, and its manifest
    assert status == 0
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket=vendor_bucket)["Contents"])
    assert keys == ["settled/billing-2026-11-01.csv", "settled/billing-2026-11-01.manifest.json"]
    body = s3.get_object(Bucket=vendor_bucket, Key=keys[0])["Body"].read()
    assert body == local_csv(sample, date(2026, 11, 1), "America/New_York")
    manifest = json.loads(s3.get_object(Bucket=vendor_bucket, Key=keys[1])["Body"].read())
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["rows"] == body.count(b"\n") - 1 > 0
    assert f"s3://{vendor_bucket}/settled/billing-2026-11-01.csv" in out


def test_cli_export_of_a_missing_bucket_is_a_clear_error(
    aws_env: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = main(["export", "--date", "2026-11-01", "--lake", "s3://no-such-bucket", "--to", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert "no-such-bucket" in err
    assert "Traceback" not in err


# --- the scheduled Lambda on Athena ----------------------------------------------------------------


@dataclass
class FakeLambdaContext:
    function_name: str = "settlement"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:settlement"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


def athena_text(value: Any) -> dict[str, str]:
    """A value as Athena's GetQueryResults spells it (NULL has no VarCharValue)."""
    if value is None:
        return {}
    if isinstance(value, datetime):
        return {"VarCharValue": value.strftime("%Y-%m-%d %H:%M:%S.000")}
    return {"VarCharValue": str(value)}


def queue_athena_result(endpoint: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """What Athena would answer (header row first), queued in the moto server for the next query."""
    result: dict[str, Any] = {
        "results": [
            {
                "rows": [
                    {"Data": [{"VarCharValue": name} for name in columns]},
                    *({"Data": [athena_text(value) for value in row]} for row in rows),
                ],
                "column_info": [{"Name": name, "Type": "varchar"} for name in columns],
            }
        ]
    }
    response = requests.post(f"{endpoint}/moto-api/static/athena/query-results", json=result, timeout=10)
    assert response.status_code == 201


@pytest.fixture
def settlement_env(aws_env: str, s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    athena = boto3.client("athena", region_name=REGION, endpoint_url=aws_env)
    # moto's backends are per process, shared by every server a test session starts: a name of its own.
    workgroup = f"settlement-{uuid.uuid4().hex[:8]}"
    athena.create_work_group(
        Name=workgroup,
        Configuration={
            "ResultConfiguration": {"OutputLocation": f"s3://{bucket(s3, 'athena-results')}/results/"}
        },
    )
    env = {
        "ATHENA_WORKGROUP": workgroup,
        "GLUE_DATABASE": "ctr_billing",
        "VENDOR_BUCKET": bucket(s3, "vendor-lambda"),
        "BILLING_TIMEZONE": "America/New_York",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CSV_COLUMNS", raising=False)
    return env


def cold_start() -> ModuleType:
    """The settlement Lambda's module loaded afresh, as a cold start reads the environment set above."""
    import transform.settlement.handler

    return importlib.reload(transform.settlement.handler)


def test_scheduled_lambda_settles_yesterday_with_athena_into_the_vendor_bucket(
    sample: LakeSample, s3: Any, aws_env: str, settlement_env: dict[str, str]
) -> None:
    # GIVEN Athena's answer to the settlement SQL for 2026-11-02 in New York (computed with DuckDB on the
    # same lake, spelled as Athena spells values)
    day = date(2026, 11, 2)
    window = SettlementWindow.for_day(day, TransformSettings.from_environ(settlement_env).billing_timezone)
    with LocalLake(sample.root) as lake:
        answer = lake.query(SETTLEMENT_SQL, window.parameters)
    assert list(answer.columns) == list(COLUMN_NAMES)
    queue_athena_result(aws_env, list(answer.columns), answer.rows)
    # WHEN the schedule fires at 00:15 New York time on 11-03
    response = cold_start().lambda_handler(
        {"scheduled_time": "2026-11-03T05:15:00Z"},
        FakeLambdaContext(),  # type: ignore[arg-type]
    )
    # THEN the day's file equals the local export byte for byte, and its manifest is beside it
    vendor = settlement_env["VENDOR_BUCKET"]
    body = s3.get_object(Bucket=vendor, Key="settled/billing-2026-11-02.csv")["Body"].read()
    assert body == local_csv(sample, day, "America/New_York")
    manifest = json.loads(
        s3.get_object(Bucket=vendor, Key="settled/billing-2026-11-02.manifest.json")["Body"].read()
    )
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest() == response["sha256"]
    assert response["rows"] == manifest["rows"] == len(answer.rows)
    # and Athena ran the one settlement SQL in the workgroup, with the window as quoted literals
    athena = boto3.client("athena", region_name=REGION, endpoint_url=aws_env)
    executions = [
        athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        for query_id in athena.list_query_executions(WorkGroup=settlement_env["ATHENA_WORKGROUP"])[
            "QueryExecutionIds"
        ]
    ]
    assert len(executions) == 1
    assert executions[0]["Query"] == SETTLEMENT_SQL
    assert executions[0]["QueryExecutionContext"]["Database"] == "ctr_billing"
    assert executions[0]["ExecutionParameters"] == [f"'{value}'" for value in window.parameters]


@pytest.mark.parametrize("missing", ["ATHENA_WORKGROUP", "GLUE_DATABASE", "VENDOR_BUCKET"])
def test_a_missing_setting_fails_the_settlement_lambda_s_cold_start_naming_it(
    settlement_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    # GIVEN the export Lambda's environment without one of its settings
    monkeypatch.delenv(missing)
    # WHEN it cold-starts  THEN it fails before any day is settled, naming the variable
    with pytest.raises(SettingsError, match=missing):
        cold_start()


def test_a_bad_billing_time_zone_fails_the_settlement_lambda_s_cold_start(
    settlement_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(SettingsError, match="BILLING_TIMEZONE"):
        cold_start()
