# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""Athena on the embedded AWS runs queries with the DuckDB lake engine over the lake bucket, over HTTP
with boto3 (issue 14, item 2)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack
from firehose.offline.lake import LocalLake, parquet_files
from tests.support.lake_samples import LakeSample, build_lake
from tests.support.pipeline_support import deployed, embedded_aws  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> LakeSample:
    return build_lake(tmp_path_factory.mktemp("athena") / "lake")


def upload_lake(aws: EmbeddedAws, deployed: DeployedStack, sample: LakeSample) -> None:
    s3 = aws.client("s3")
    for path in parquet_files(sample.root):
        s3.upload_file(str(path), deployed.resources["LakeBucket"], path.relative_to(sample.root).as_posix())


def run(aws: EmbeddedAws, deployed: DeployedStack, sql: str, **request: Any) -> dict[str, Any]:
    athena = aws.client("athena")
    query_id = athena.start_query_execution(
        QueryString=sql,
        WorkGroup=deployed.resources["AthenaWorkGroup"],
        QueryExecutionContext={"Database": deployed.resources["GlueDatabase"]},
        **request,
    )["QueryExecutionId"]
    deadline = time.monotonic() + 60
    while True:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] not in ("QUEUED", "RUNNING") or time.monotonic() > deadline:
            return dict(execution)
        time.sleep(0.1)


def test_a_select_runs_on_the_lake_with_paginated_results_and_encrypted_output(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, sample: LakeSample
) -> None:
    upload_lake(embedded_aws, deployed, sample)
    sql = "SELECT contact_id, initiation_timestamp, year FROM billing_rows ORDER BY contact_id"
    with LocalLake(sample.root) as lake:
        expected = lake.query(sql).rows
    assert len(expected) > 3

    execution = run(embedded_aws, deployed, sql)
    assert execution["Status"]["State"] == "SUCCEEDED"

    athena = embedded_aws.client("athena")
    pages = list(
        athena.get_paginator("get_query_results").paginate(
            QueryExecutionId=execution["QueryExecutionId"], PaginationConfig={"PageSize": 2}
        )
    )
    assert len(pages) > 1
    info = pages[0]["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
    assert [(c["Name"], c["Type"]) for c in info] == [
        ("contact_id", "varchar"),
        ("initiation_timestamp", "timestamp"),
        ("year", "varchar"),
    ]
    rows = [
        [cell.get("VarCharValue") for cell in row["Data"]]
        for page in pages
        for row in page["ResultSet"]["Rows"]
    ]
    assert rows[0] == ["contact_id", "initiation_timestamp", "year"]  # the header row, as Athena returns it
    assert [row[0] for row in rows[1:]] == [row[0] for row in expected]
    assert rows[1][1] == expected[0][1].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    # the results are written to the work group's output location, with its KMS key
    location = execution["ResultConfiguration"]["OutputLocation"]
    bucket, _, key = location[len("s3://") :].partition("/")
    assert bucket == deployed.resources["AthenaResultsBucket"]
    s3 = embedded_aws.client("s3")
    for name in (key, key + ".metadata"):
        head = s3.head_object(Bucket=bucket, Key=name)
        assert head["ServerSideEncryption"] == "aws:kms"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert body.splitlines()[0] == '"contact_id","initiation_timestamp","year"'
    assert len(body.splitlines()) == len(expected) + 1


def test_a_failed_query_reports_no_row_values(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, sample: LakeSample
) -> None:
    upload_lake(embedded_aws, deployed, sample)
    with LocalLake(sample.root) as lake:
        contact = lake.query("SELECT contact_id FROM billing_rows LIMIT 1").rows[0][0]
    execution = run(embedded_aws, deployed, "SELECT CAST(contact_id AS bigint) + 1 FROM billing_rows")
    assert execution["Status"]["State"] == "FAILED"
    reason = execution["Status"]["StateChangeReason"]
    assert reason
    assert contact not in reason
    assert contact.split("-")[0] not in reason
    with pytest.raises(embedded_aws.client("athena").exceptions.InvalidRequestException):
        embedded_aws.client("athena").get_query_results(QueryExecutionId=execution["QueryExecutionId"])

    missing = run(embedded_aws, deployed, "SELECT * FROM no_such_table")
    assert missing["Status"]["State"] == "FAILED"


def test_named_queries_run_by_id_with_execution_parameters(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, sample: LakeSample, tmp_path: Path
) -> None:
    upload_lake(embedded_aws, deployed, sample)
    athena = embedded_aws.client("athena")
    # the stack's named query, by id (its Ref), as `aws athena get-named-query` reads it
    named_id = deployed.resources["LatestBillingRowsQuery"]
    query = athena.get_named_query(NamedQueryId=named_id)["NamedQuery"]
    assert run(embedded_aws, deployed, query["QueryString"])["Status"]["State"] == "SUCCEEDED"

    execution = run(
        embedded_aws,
        deployed,
        "SELECT count(*) AS n FROM latest_billing_rows WHERE year = ?",
        ExecutionParameters=["'2026'"],
    )
    assert execution["Status"]["State"] == "SUCCEEDED"
    rows = athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"])["ResultSet"]["Rows"]
    with LocalLake(sample.root) as lake:
        expected = lake.query("SELECT count(*) FROM latest_billing_rows WHERE year = '2026'").rows[0][0]
    assert rows[1]["Data"][0]["VarCharValue"] == str(expected)

    started = athena.start_query_execution(
        QueryString="SELECT * FROM billing_rows", WorkGroup=deployed.resources["AthenaWorkGroup"]
    )["QueryExecutionId"]
    athena.stop_query_execution(QueryExecutionId=started)
    state = athena.get_query_execution(QueryExecutionId=started)["QueryExecution"]["Status"]["State"]
    assert state in ("CANCELLED", "SUCCEEDED", "FAILED")
