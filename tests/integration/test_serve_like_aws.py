"""``ctr-billing serve`` answers the AWS CLI and boto3 as AWS would (issue 14, items 4-7), over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from firehose.pipeline.local import LocalPipeline, start_pipeline

ROOT = Path(__file__).resolve().parents[2]
CTR = (ROOT / "firehose/data/example-ctrs.jsonl").read_text().splitlines()[0].encode()


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    state = tmp_path_factory.mktemp("serve")
    running = start_pipeline(state, Path(tempfile.gettempdir()) / "ctr-billing-build", 1.0)
    try:
        yield running
    finally:
        running.stop()


def keys(pipeline: LocalPipeline, bucket_output: str, prefix: str = "") -> list[str]:
    s3 = pipeline.aws.client("s3")
    bucket = pipeline.stack.outputs[bucket_output]
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def put_ctr(pipeline: LocalPipeline) -> None:
    pipeline.aws.client("kinesis").put_record(StreamName=pipeline.stream_name(), Data=CTR, PartitionKey="t")


def test_direct_put_to_a_kinesis_sourced_stream_is_refused(pipeline: LocalPipeline) -> None:
    firehose = pipeline.aws.client("firehose")
    vendor = (
        pipeline.stack.outputs["VendorDeliveryStream"]
        if "VendorDeliveryStream" in pipeline.stack.outputs
        else (pipeline.stack.resources["VendorDeliveryStream"])
    )
    with pytest.raises(ClientError) as refused:
        firehose.put_record(DeliveryStreamName=vendor, Record={"Data": CTR})
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidArgumentException"
    assert (
        error["Message"] == "This operation is not permitted on KinesisStreamAsSource delivery stream type."
    )
    with pytest.raises(ClientError, match="InvalidArgumentException"):
        firehose.put_record_batch(DeliveryStreamName=vendor, Records=[{"Data": CTR}])
    time.sleep(2)
    assert not [key for key in keys(pipeline, "ContactTraceRecordsCSVBucket") if "!{" in key]


def test_update_destination_and_new_streams_take_effect(pipeline: LocalPipeline) -> None:
    firehose = pipeline.aws.client("firehose")
    raw = pipeline.stack.resources["RawDeliveryStream"]
    description = firehose.describe_delivery_stream(DeliveryStreamName=raw)["DeliveryStreamDescription"]
    firehose.update_destination(
        DeliveryStreamName=raw,
        CurrentDeliveryStreamVersionId=description["VersionId"],
        DestinationId=description["Destinations"][0]["DestinationId"],
        ExtendedS3DestinationUpdate={
            "Prefix": "changed/",
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 1},
        },
    )
    source = description["Source"]["KinesisStreamSourceDescription"]
    raw_bucket = pipeline.stack.outputs["ContactTraceRecordsBucket"]
    firehose.create_delivery_stream(
        DeliveryStreamName="late-stream",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={
            "KinesisStreamARN": source["KinesisStreamARN"],
            "RoleARN": source["RoleARN"],
        },
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{raw_bucket}",
            "RoleARN": source["RoleARN"],
            "Prefix": "late/",
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 1},
        },
    )
    time.sleep(3)  # the runtime reads configurations every second
    put_ctr(pipeline)
    wait_for(lambda: keys(pipeline, "ContactTraceRecordsBucket", "changed/"))
    wait_for(lambda: keys(pipeline, "ContactTraceRecordsBucket", "late/"))


def test_lambda_logs_and_metrics_reach_cloudwatch(pipeline: LocalPipeline) -> None:
    put_ctr(pipeline)
    logs = pipeline.aws.client("logs")
    group = f"/aws/lambda/{pipeline.stack.outputs['ProcessCTRLambda']}"
    events = wait_for(lambda: logs.filter_log_events(logGroupName=group)["events"])
    assert any("batch transformed" in event["message"] for event in events)
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert all(re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", s["logStreamName"]) for s in streams)
    cloudwatch = pipeline.aws.client("cloudwatch")
    metrics = wait_for(lambda: cloudwatch.list_metrics(Namespace="CtrBilling")["Metrics"])
    metric = metrics[0]
    now = datetime.now(UTC)
    statistics = cloudwatch.get_metric_statistics(
        Namespace="CtrBilling",
        MetricName=metric["MetricName"],
        Dimensions=metric.get("Dimensions", []),
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Sum"],
    )
    assert sum(point["Sum"] for point in statistics["Datapoints"]) >= 1


def test_serve_for_people(tmp_path: Path) -> None:
    save = tmp_path / "saved"
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ctr-billing"),
            "serve",
            "--port",
            "0",
            "--buffer-interval",
            "1",
            "--state",
            str(tmp_path / "state"),
            "--save",
            str(save),
            "--json",
            "--no-seed",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(banner)
        assert "--cli-binary-format" not in text
        assert "1s (--buffer-interval; the template's 300s)" in text
        endpoint = re.search(r"endpoint: (http://\S+)", text).group(1)  # type: ignore[union-attr]
        stream = re.search(r"--stream-name (\S+)", text).group(1)  # type: ignore[union-attr]
        kinesis = boto3.client(
            "kinesis",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        kinesis.put_record(StreamName=stream, Data=CTR, PartitionKey="t")
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    stats = json.loads(out)["delivery_streams"]
    assert stats["RawDeliveryStream"]["delivered"] == 1
    assert any(path.is_file() for path in save.rglob("*"))
