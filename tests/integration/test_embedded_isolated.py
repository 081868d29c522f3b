# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""The embedded AWS in a child process (``EmbeddedAws(isolated=True)``, as ``ctr-billing demo`` and
``serve`` run it): the template deploys there with the CloudFormation models registered in the serving
process, consumed Kinesis records are forgotten through the server's control route, the server's memory
is measured apart from the caller's, and stopping it ends the process."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from firehose.deploy.template import load_template, resources_of_type
from firehose.local_aws.models import MODELS
from firehose.local_aws.server import TRIM_PATH, EmbeddedAws
from firehose.local_aws.stack import DeployedStack, deploy_stack, lambda_zip
from tests.support.pipeline_support import embedded_aws, put_records  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedAws, DeployedStack]]:
    aws = EmbeddedAws(isolated=True).start()
    try:
        yield aws, deploy_stack(aws, lambda_zip(tmp_path_factory.mktemp("build")))
    finally:
        aws.stop()


def _shard_records(aws: EmbeddedAws, stream: str) -> tuple[str, dict[str, list[int]]]:
    """The stream's ARN and, per shard, the sequence numbers GetRecords returns from TRIM_HORIZON."""
    kinesis = aws.client("kinesis")
    description = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    numbers: dict[str, list[int]] = {}
    for shard in description["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
        numbers[shard["ShardId"]] = [int(record["SequenceNumber"]) for record in records]
    return description["StreamARN"], numbers


def test_the_template_deploys_in_the_child_process_with_every_modelled_type(
    isolated: tuple[EmbeddedAws, DeployedStack],
) -> None:
    # GIVEN an embedded AWS serving from a child process, with the stack deployed through its API
    aws, stack = isolated

    # THEN another process serves, and the types only the project's models create are there
    assert aws.pid != os.getpid()
    assert not {model.cloudformation_type() for model in MODELS} & set(stack.skipped_types)
    firehose = aws.client("firehose")
    declared = resources_of_type(load_template(), "AWS::KinesisFirehose::DeliveryStream")
    for logical_id, _ in declared:
        description = firehose.describe_delivery_stream(DeliveryStreamName=stack.resources[logical_id])
        assert description["DeliveryStreamDescription"]["DeliveryStreamType"] == "KinesisStreamAsSource"
    # and its memory is its own (this process holds none of its stores)
    peak = aws.peak_rss_mb()
    assert peak is not None and peak > 0


def test_consumed_kinesis_records_are_forgotten_across_the_process_boundary(
    isolated: tuple[EmbeddedAws, DeployedStack],
) -> None:
    # GIVEN records put into the stack's stream in the child process
    aws, stack = isolated
    stream = stack.resources["ContactTraceRecordsStream"]
    put_records(aws, stream, (f"record-{index}".encode() for index in range(200)))
    arn, before = _shard_records(aws, stream)
    newest = {shard_id: numbers[-1] for shard_id, numbers in before.items() if numbers}

    # WHEN the caller trims every shard up to its newest record
    removed = aws.trim_kinesis(arn, newest)

    # THEN all but the newest record of each shard are gone (moto numbers the next record from it)
    _, after = _shard_records(aws, stream)
    assert removed == sum(len(numbers) for numbers in before.values()) - len(newest)
    assert after == {shard_id: numbers[-1:] for shard_id, numbers in before.items()}


def test_the_control_route_answers_a_bad_request_with_400(
    isolated: tuple[EmbeddedAws, DeployedStack],
) -> None:
    # GIVEN the control route WHEN it gets a body without a stream
    aws, _ = isolated
    request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
        f"{aws.endpoint}{TRIM_PATH}", data=json.dumps({"delivered": {}}).encode(), method="POST"
    )

    # THEN it answers 400 with the error's type only
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - our own server on 127.0.0.1
    assert raised.value.code == 400
    assert json.loads(raised.value.read()) == {"error": "KeyError"}


def test_trim_goes_through_the_same_route_in_thread(embedded_aws: EmbeddedAws) -> None:
    # GIVEN an in-thread embedded AWS and a one-shard stream holding 10 records
    kinesis = embedded_aws.client("kinesis")
    kinesis.create_stream(StreamName="trim-in-thread", ShardCount=1)
    put_records(embedded_aws, "trim-in-thread", (b"x" for _ in range(10)))
    arn, before = _shard_records(embedded_aws, "trim-in-thread")
    ((shard_id, numbers),) = before.items()

    # WHEN the first 4 are trimmed
    removed = embedded_aws.trim_kinesis(arn, {shard_id: numbers[3]})

    # THEN they are gone and the other 6 remain
    assert removed == 4
    assert _shard_records(embedded_aws, "trim-in-thread")[1] == {shard_id: numbers[4:]}


def test_stopping_ends_the_child_process() -> None:
    # GIVEN a started isolated embedded AWS
    aws = EmbeddedAws(isolated=True).start()
    pid = aws.pid

    # WHEN it is stopped
    aws.stop()

    # THEN its process is gone and it no longer answers
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{aws.endpoint}/moto-api/", timeout=2)  # noqa: S310
