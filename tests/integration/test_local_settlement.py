# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""The scheduled settlement Lambda runs in the embedded AWS against Athena-on-DuckDB, the production
code path, and writes the same settled file as ``ctr-billing export`` (issue 14, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firehose.cli.main import main
from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack
from firehose.offline.lake import parquet_files
from tests.support.lake_samples import LakeSample, build_lake
from tests.support.pipeline_support import deployed, embedded_aws  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

DAY = "2026-11-02"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> LakeSample:
    return build_lake(tmp_path_factory.mktemp("settlement") / "lake")


def test_the_settlement_lambda_writes_what_export_writes(
    embedded_aws: EmbeddedAws,
    deployed: DeployedStack,
    sample: LakeSample,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the lake bucket as the lake delivery stream leaves it
    s3 = embedded_aws.client("s3")
    lake_bucket = deployed.resources["LakeBucket"]
    for path in parquet_files(sample.root):
        s3.upload_file(str(path), lake_bucket, path.relative_to(sample.root).as_posix())
    function = deployed.resources["SettlementExportFunction"]
    lambda_client = embedded_aws.client("lambda")
    environment = lambda_client.get_function_configuration(FunctionName=function)["Environment"]["Variables"]

    # WHEN the scheduled settlement Lambda is invoked for the day (its redrive event)
    answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps({"date": DAY}).encode())
    result = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, result
    assert result["rows"] > 0
    vendor = deployed.resources["VendorBucket"]
    settled = s3.get_object(Bucket=vendor, Key=f"settled/billing-{DAY}.csv")["Body"].read()

    # THEN its file is byte for byte the one `ctr-billing export` writes from the same lake and settings
    for name, value in {**embedded_aws.environment, **environment}.items():
        monkeypatch.setenv(name, str(value))
    assert main(["export", "--date", DAY, "--lake", f"s3://{lake_bucket}", "--to", str(tmp_path)]) == 0
    assert settled == (tmp_path / f"billing-{DAY}.csv").read_bytes()
    assert s3.head_object(Bucket=vendor, Key=f"settled/billing-{DAY}.manifest.json")["ContentLength"] > 0
    # AND both files were written locked, in the template's mode, for its retention from the write
    for name in (f"billing-{DAY}.csv", f"billing-{DAY}.manifest.json"):
        head = s3.head_object(Bucket=vendor, Key=f"settled/{name}")
        assert head["ObjectLockMode"] == environment["OBJECT_LOCK_MODE"] == "GOVERNANCE"
        held = head["ObjectLockRetainUntilDate"] - head["LastModified"]
        assert abs(held.total_seconds() - int(environment["OBJECT_LOCK_RETENTION_DAYS"]) * 86400) < 120
