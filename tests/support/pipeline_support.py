"""Shared helpers of the embedded-AWS pipeline tests: the server, the deployed stack, Kinesis puts,
bucket reads, and stacks built directly through the APIs for runtime behaviours the template fixes."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack, deploy_stack, lambda_zip
from firehose.pipeline import producer
from firehose.runtime import FirehoseRuntime, default_options

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


@pytest.fixture
def embedded_aws() -> Iterator[EmbeddedAws]:
    aws = EmbeddedAws().start()
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture
def deployed(embedded_aws: EmbeddedAws, tmp_path: Path) -> DeployedStack:
    return deploy_stack(embedded_aws, lambda_zip(tmp_path / "build"))


def put_records(aws: EmbeddedAws, stream: str, payloads: Iterable[bytes]) -> int:
    """The payloads put with the pipeline's own producer, spread over the shards by partition key."""
    records = ((payload, f"key-{index}") for index, payload in enumerate(payloads))
    return producer.put_records(aws.client("kinesis"), stream, records)


def objects(aws: EmbeddedAws, bucket: str, prefix: str = "") -> dict[str, bytes]:
    s3 = aws.client("s3")
    found: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def runtime(aws: EmbeddedAws, state_dir: Path, **options: Any) -> FirehoseRuntime:
    options.setdefault("buffer_interval_seconds", 0.5)
    options.setdefault("poll_seconds", 0.05)
    return FirehoseRuntime(aws, default_options(state_dir, **options))


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def handler_zip(tmp_path: Path) -> bytes:
    """moto's CreateFunction needs a zip; the runtime runs the handler from the project's modules."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "")
    return buffer.getvalue()


class DirectStack:
    """A Kinesis stream, a bucket, a KMS key and Lambda functions created through the APIs; delivery
    streams are added per test with the exact configuration the behaviour under test needs."""

    def __init__(self, aws: EmbeddedAws, tmp_path: Path) -> None:
        self.aws = aws
        self.stream = "source-stream"
        kinesis = aws.client("kinesis")
        kinesis.create_stream(StreamName=self.stream, ShardCount=2)
        self.stream_arn = kinesis.describe_stream(StreamName=self.stream)["StreamDescription"]["StreamARN"]
        self.bucket = "destination-bucket"
        aws.client("s3").create_bucket(Bucket=self.bucket)
        self.key_arn = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
        self.role = "arn:aws:iam::123456789012:role/firehose"
        self._zip = handler_zip(tmp_path)
        iam = aws.client("iam")
        self.lambda_role = lambda_role(iam, "lambda-role")

    def function(
        self, name: str, handler: str, environment: dict[str, str] | None = None, timeout: int = 60
    ) -> str:
        response = self.aws.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.lambda_role,
            Handler=handler,
            Code={"ZipFile": self._zip},
            Timeout=timeout,
            Environment={"Variables": environment or {}},
        )
        return str(response["FunctionArn"])

    def delivery_stream(self, name: str, **destination: Any) -> str:
        config: dict[str, Any] = {
            "RoleARN": self.role,
            "BucketARN": f"arn:aws:s3:::{self.bucket}",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
            **destination,
        }
        response = self.aws.client("firehose").create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="KinesisStreamAsSource",
            KinesisStreamSourceConfiguration={"KinesisStreamARN": self.stream_arn, "RoleARN": self.role},
            ExtendedS3DestinationConfiguration=config,
        )
        return str(response["DeliveryStreamARN"])


def lambda_processor(function_arn: str, **parameters: str) -> dict[str, Any]:
    values = {"LambdaArn": function_arn, **parameters}
    return {
        "Enabled": True,
        "Processors": [
            {
                "Type": "Lambda",
                "Parameters": [
                    {"ParameterName": key, "ParameterValue": value} for key, value in values.items()
                ],
            }
        ],
    }


def lambda_role(iam: IAMClient, name: str) -> str:
    """The ARN of a new role Lambda may assume (moto's Lambda wants one for CreateFunction)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    return arn
