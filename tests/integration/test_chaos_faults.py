"""Chaos mode's faults (``firehose.pipeline.chaos``) on real boto3 clients talking to the embedded AWS over HTTP,
and the transform wrapper the Lambda child processes run under chaos."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from firehose.local_aws.server import EmbeddedAws
from firehose.pipeline import chaos
from firehose.pipeline.chaos import ChaosPlan, ChaoticAws, Faults, InjectedFault, reconcile
from tests.support.pipeline_support import lambda_role

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


def chaotic(aws: EmbeddedAws, **plan: Any) -> ChaoticAws:
    return ChaoticAws(aws, Faults(ChaosPlan(seed=1, **plan)))


def test_s3_puts_fail_on_first_attempts_only(aws: EmbeddedAws) -> None:
    # GIVEN a chaotic S3 client failing every first attempt
    endpoint = chaotic(aws, s3_put_failure=1.0)
    s3 = endpoint.client("s3", max_attempts=0)  # no botocore retry: the runtime retries S3 itself
    s3.create_bucket(Bucket="chaos-puts")
    # WHEN an object is put twice (the runtime's retry)
    with pytest.raises(ClientError) as first:
        s3.put_object(Bucket="chaos-puts", Key="billing/a.csv", Body=b"row\n")
    s3.put_object(Bucket="chaos-puts", Key="billing/a.csv", Body=b"row\n")
    # THEN the first was a real 503 SlowDown, the retry stored the object once
    assert first.value.response["Error"]["Code"] == "SlowDown"
    assert first.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert s3.get_object(Bucket="chaos-puts", Key="billing/a.csv")["Body"].read() == b"row\n"
    assert endpoint.faults.injected["s3_put_failures"] == 1


def test_about_thirty_percent_of_first_puts_fail(aws: EmbeddedAws) -> None:
    # GIVEN the default plan
    endpoint = chaotic(aws)
    s3 = endpoint.client("s3", max_attempts=0)  # no botocore retry: the runtime retries S3 itself
    s3.create_bucket(Bucket="chaos-share")
    failed = 0
    # WHEN 200 distinct objects are put once each
    for index in range(200):
        try:
            s3.put_object(Bucket="chaos-share", Key=f"k{index}", Body=b"x")
        except ClientError:
            failed += 1
    # THEN roughly 30 % of them failed
    assert 40 <= failed <= 80


def test_kinesis_reads_are_throttled_and_botocore_retries_them(aws: EmbeddedAws) -> None:
    # GIVEN a chaotic Kinesis client throttling whenever allowed, and a stream with one record
    endpoint = chaotic(aws, kinesis_throttle=1.0)
    kinesis = endpoint.client("kinesis")
    kinesis.create_stream(StreamName="chaos-reads", ShardCount=1)
    kinesis.put_record(StreamName="chaos-reads", Data=b"{}", PartitionKey="p")
    shard = kinesis.list_shards(StreamName="chaos-reads")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName="chaos-reads", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    # WHEN the shard is read
    response = kinesis.get_records(ShardIterator=iterator)
    # THEN two throttles were answered and retried by botocore before the read succeeded
    assert len(response["Records"]) == 1
    assert response["ResponseMetadata"]["RetryAttempts"] == chaos.MAX_CONSECUTIVE_THROTTLES
    assert endpoint.faults.injected["kinesis_throttles"] == chaos.MAX_CONSECUTIVE_THROTTLES


def test_transform_functions_are_run_under_the_chaotic_handler(aws: EmbeddedAws) -> None:
    # GIVEN a transform function and a lookup function in the embedded Lambda API
    iam = aws.client("iam")
    role = lambda_role(iam, "chaos-fn")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("index.py", "def handler(event, context):\n    return event\n")
    lambda_client = aws.client("lambda")
    for name, handler in (("chaos-transform", chaos.TRANSFORM_HANDLER), ("chaos-lookup", "lookup.handler.x")):
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=handler,
            Code={"ZipFile": archive.getvalue()},
            Environment={"Variables": {"OUTPUT_FORMAT": "csv"}},
        )
    # WHEN the runtime resolves them through a chaotic Lambda client
    chaotic_lambda = chaotic(aws, transform_failure=0.25).client("lambda")
    transform = chaotic_lambda.get_function_configuration(FunctionName="chaos-transform")
    lookup = chaotic_lambda.get_function_configuration(FunctionName="chaos-lookup")
    # THEN the transform runs under the chaotic handler, which knows the real one; others are untouched
    assert transform["Handler"] == chaos.CHAOTIC_HANDLER
    assert transform["Environment"]["Variables"] == {
        "OUTPUT_FORMAT": "csv",
        chaos.ENV_HANDLER: chaos.TRANSFORM_HANDLER,
        chaos.ENV_SEED: "1",
        chaos.ENV_TRANSFORM_FAILURE: "0.25",
    }
    assert lookup["Handler"] == "lookup.handler.x"


calls: list[str] = []


def recording_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.append(event["records"][0]["recordId"])
    return {"records": []}


def test_the_chaotic_handler_fails_a_batch_at_most_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the chaotic handler wrapping a recording handler, failing whenever allowed
    monkeypatch.setenv(chaos.ENV_HANDLER, f"{__name__}.recording_handler")
    monkeypatch.setenv(chaos.ENV_SEED, "1")
    monkeypatch.setenv(chaos.ENV_TRANSFORM_FAILURE, "1.0")
    monkeypatch.setattr(chaos, "_handler", None)
    monkeypatch.setattr(chaos, "_failures", chaos.Counter())
    calls.clear()
    event = {"records": [{"recordId": "r1"}, {"recordId": "r2"}]}
    # WHEN Firehose invokes it with the same batch until it succeeds
    failures = 0
    for _ in range(4):
        try:
            chaos.chaotic_handler(event, None)
            break
        except InjectedFault:
            failures += 1
    # THEN it failed twice, then answered; a failure "after running" did run the real handler
    assert failures == chaos.MAX_BATCH_FAILURES
    assert 1 <= len(calls) <= 3


def test_about_ten_percent_of_invocations_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the default plan's transform failure rate
    monkeypatch.setenv(chaos.ENV_HANDLER, f"{__name__}.recording_handler")
    monkeypatch.setenv(chaos.ENV_SEED, "7")
    monkeypatch.setenv(chaos.ENV_TRANSFORM_FAILURE, str(chaos.TRANSFORM_FAILURE))
    monkeypatch.setattr(chaos, "_handler", None)
    monkeypatch.setattr(chaos, "_failures", chaos.Counter())
    failed = 0
    # WHEN 500 distinct batches are invoked once each
    for index in range(500):
        try:
            chaos.chaotic_handler({"records": [{"recordId": f"b{index}"}]}, None)
        except InjectedFault:
            failed += 1
    # THEN about 10 % failed
    assert 25 <= failed <= 80


def test_restart_points_are_spread_over_the_run() -> None:
    # GIVEN a plan with three restarts WHEN its kill points for 20,000 records are drawn
    points = ChaosPlan(seed=1).restart_points(20_000)
    # THEN there are three, increasing, inside the run and reproducible from the seed
    assert len(points) == 3
    assert points == sorted(points)
    assert points[0] > 0 and points[-1] < 20_000
    assert points == ChaosPlan(seed=1).restart_points(20_000)
    assert ChaosPlan(seed=1, restarts=0).restart_points(100) == []


def test_reconciliation_counts_lost_and_duplicate_rows() -> None:
    # GIVEN three billable contacts and vendor rows missing one and doubling another
    verdict = reconcile(["a", "b", "c"], ["a", "b", "b", "x"])
    # THEN one is lost, one row is a duplicate, one row is unexpected
    assert verdict.as_dict() == {
        "expected": 3,
        "vendor_rows": 4,
        "lost": 1,
        "duplicate_vendor_rows": 1,
        "unexpected": 1,
    }
