# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""The local Firehose runtime's processing: the event a transform receives, response validation with
Firehose's error codes, retries, and processing-failed error documents."""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path

import pytest

from firehose.local_aws.server import EmbeddedAws
from firehose.runtime.lambda_invoker import InvocationError, LambdaFunction, LocalLambda
from tests.support.pipeline_support import (
    DirectStack,
    embedded_aws,  # noqa: F401
    lambda_processor,
    objects,
    put_records,
    runtime,
)

pytestmark = pytest.mark.integration

HANDLER = "tests.support.lambda_handlers.handler"
MB = 1024 * 1024


def _error_documents(aws: EmbeddedAws, bucket: str, output_type: str) -> list[dict[str, object]]:
    found = objects(aws, bucket, f"errors/{output_type}/")
    return [json.loads(line) for body in found.values() for line in body.splitlines()]


def test_the_transform_receives_the_exact_firehose_event(embedded_aws: EmbeddedAws, tmp_path: Path) -> None:
    # GIVEN a delivery stream whose Lambda processor records the events it receives
    stack = DirectStack(embedded_aws, tmp_path)
    log = tmp_path / "events.jsonl"
    function = stack.function("recorder", HANDLER, {"EVENT_LOG": str(log)})
    stream_arn = stack.delivery_stream(
        "shape",
        Prefix="data/",
        ErrorOutputPrefix="errors/",
        ProcessingConfiguration=lambda_processor(function),
    )
    kinesis = embedded_aws.client("kinesis")

    # WHEN three records are put and the runtime drains
    with runtime(embedded_aws, tmp_path / "state"):
        put = [
            kinesis.put_record(StreamName=stack.stream, Data=f"record-{n}".encode(), PartitionKey=f"pk-{n}")
            for n in range(3)
        ]

    # THEN one event holds every record with the fields and types of Firehose's Kinesis-source event
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(events) == 1
    assert events[0]["function_name"] == "recorder"
    event = events[0]["event"]
    assert set(event) == {"invocationId", "deliveryStreamArn", "sourceKinesisStreamArn", "region", "records"}
    assert event["deliveryStreamArn"] == stream_arn
    assert event["sourceKinesisStreamArn"] == stack.stream_arn
    assert event["region"] == embedded_aws.region
    by_data = {base64.b64decode(record["data"]): record for record in event["records"]}
    assert set(by_data) == {f"record-{n}".encode() for n in range(3)}
    assert len({record["recordId"] for record in event["records"]}) == 3
    for n, response in enumerate(put):
        record = by_data[f"record-{n}".encode()]
        assert set(record) == {"recordId", "approximateArrivalTimestamp", "data", "kinesisRecordMetadata"}
        metadata = record["kinesisRecordMetadata"]
        assert metadata == {
            "shardId": response["ShardId"],
            "partitionKey": f"pk-{n}",
            "approximateArrivalTimestamp": record["approximateArrivalTimestamp"],
            "sequenceNumber": response["SequenceNumber"],
            "subsequenceNumber": 0,
        }
        assert isinstance(record["approximateArrivalTimestamp"], int)
        assert record["approximateArrivalTimestamp"] > 1_600_000_000_000  # epoch milliseconds


@pytest.mark.parametrize(
    ("mode", "error_code"),
    [
        ("duplicate-id", "Lambda.DuplicatedRecordId"),
        ("missing-id", "Lambda.MissingRecordId"),
        ("unknown-id", "Lambda.MissingRecordId"),
        ("bad-result", "Lambda.JsonProcessingException"),
        ("bad-base64", "Lambda.JsonProcessingException"),
        ("ok-without-data", "Lambda.JsonProcessingException"),
        ("ok-with-null-data", "Lambda.JsonProcessingException"),
        ("no-records", "Lambda.JsonProcessingException"),
        ("raise", "Lambda.FunctionError"),
    ],
)
def test_an_invalid_response_sends_the_whole_batch_to_processing_failed_with_firehose_error_code(
    embedded_aws: EmbeddedAws, tmp_path: Path, mode: str, error_code: str
) -> None:
    # GIVEN a transform that answers invalidly, and no retries
    stack = DirectStack(embedded_aws, tmp_path)
    function = stack.function(f"bad-{mode}", HANDLER, {"MODE": mode})
    stack.delivery_stream(
        "validated",
        Prefix="data/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(function, NumberOfRetries="0"),
    )
    payloads = [f"payload-{n}".encode() for n in range(4)]

    # WHEN records are put and the runtime drains
    with runtime(embedded_aws, tmp_path / "state") as pipeline:
        put_records(embedded_aws, stack.stream, payloads)

    # THEN no data object exists, and every record has an error document with the code and its raw data
    assert objects(embedded_aws, stack.bucket, "data/") == {}
    documents = _error_documents(embedded_aws, stack.bucket, "processing-failed")
    assert sorted(base64.b64decode(str(d["rawData"])) for d in documents) == sorted(payloads)
    for document in documents:
        assert document["errorCode"] == error_code
        assert document["attemptsMade"] == 1
        assert document["lambdaArn"] == function
        assert set(document) == {
            "attemptsMade",
            "arrivalTimestamp",
            "errorCode",
            "errorMessage",
            "attemptEndingTimestamp",
            "rawData",
            "lambdaArn",
        }
    assert pipeline.counts()["validated"]["processing-failed"] == len(payloads)


def test_a_failing_invocation_is_retried_number_of_retries_times_then_goes_to_error_documents(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN a transform that always raises, with NumberOfRetries 2
    stack = DirectStack(embedded_aws, tmp_path)
    function = stack.function("raiser", HANDLER, {"MODE": "raise"})
    stack.delivery_stream(
        "retried",
        Prefix="data/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(function, NumberOfRetries="2"),
    )

    # WHEN one record is put
    with runtime(embedded_aws, tmp_path / "state") as pipeline:
        put_records(embedded_aws, stack.stream, [b"one"])

    # THEN it was tried three times, then written as an error document saying so
    counts = pipeline.counts()["retried"]
    assert counts["invocations"] == 3
    assert counts["failed_invocations"] == 3
    [document] = _error_documents(embedded_aws, stack.bucket, "processing-failed")
    assert document["attemptsMade"] == 3
    assert document["errorCode"] == "Lambda.FunctionError"


def test_an_invocation_that_fails_once_is_retried_and_nothing_goes_to_errors(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN a transform whose first invocation fails
    stack = DirectStack(embedded_aws, tmp_path)
    function = stack.function(
        "flaky", HANDLER, {"MODE": "fail-once", "ATTEMPTS_FILE": str(tmp_path / "attempts")}
    )
    stack.delivery_stream(
        "flaky",
        Prefix="data/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(function),
    )

    # WHEN records are put
    with runtime(embedded_aws, tmp_path / "state"):
        put_records(embedded_aws, stack.stream, [b"a", b"b"])

    # THEN the retry delivered both, and there are no error documents
    data = b"".join(objects(embedded_aws, stack.bucket, "data/").values())
    assert sorted(data.splitlines()) == [b"a", b"b"]
    assert objects(embedded_aws, stack.bucket, "errors/") == {}


def test_records_the_transform_marks_processing_failed_or_dropped(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN two delivery streams: one transform fails every record, the other drops every record
    stack = DirectStack(embedded_aws, tmp_path)
    failing = stack.function("failing", HANDLER, {"MODE": "processing-failed"})
    dropping = stack.function("dropping", HANDLER, {"MODE": "dropped"})
    stack.delivery_stream(
        "failing",
        Prefix="failing/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(failing),
    )
    stack.delivery_stream(
        "dropping",
        Prefix="dropping/",
        ErrorOutputPrefix="dropping-errors/",
        ProcessingConfiguration=lambda_processor(dropping),
    )

    # WHEN records are put
    with runtime(embedded_aws, tmp_path / "state") as pipeline:
        put_records(embedded_aws, stack.stream, [b"x", b"y"])

    # THEN failed records are error documents with Firehose's fields; dropped ones are nowhere
    documents = _error_documents(embedded_aws, stack.bucket, "processing-failed")
    assert sorted(base64.b64decode(str(d["rawData"])) for d in documents) == [b"x", b"y"]
    assert {d["attemptsMade"] for d in documents} == {1}
    counts = pipeline.counts()
    assert counts["failing"]["processing-failed"] == 2
    assert counts["dropping"]["dropped"] == 2
    assert set(objects(embedded_aws, stack.bucket)) == set(objects(embedded_aws, stack.bucket, "errors/"))


def test_a_record_without_the_partition_keys_its_prefix_needs_goes_to_partitioning_failed(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN dynamic partitioning on keys the transform does not return, and a random string in the error prefix
    stack = DirectStack(embedded_aws, tmp_path)
    function = stack.function("no-keys", HANDLER)
    stack.delivery_stream(
        "partitioned",
        Prefix="rows/day=!{partitionKeyFromLambda:day}/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/!{firehose:random-string}/",
        DynamicPartitioningConfiguration={"Enabled": True},
        ProcessingConfiguration=lambda_processor(function),
    )

    # WHEN records are put
    with runtime(embedded_aws, tmp_path / "state") as pipeline:
        put_records(embedded_aws, stack.stream, [b"p", b"q"])

    # THEN nothing is delivered as data; both records are partitioning-failed error documents
    assert objects(embedded_aws, stack.bucket, "rows/") == {}
    found = objects(embedded_aws, stack.bucket, "errors/partitioning-failed/")
    assert found
    for key in found:
        assert re.fullmatch(
            r"errors/partitioning-failed/[A-Za-z0-9]{11}/partitioned-1-\d{4}(-\d\d){5}-[0-9a-f-]{36}", key
        )
    documents = [json.loads(line) for body in found.values() for line in body.splitlines()]
    assert sorted(base64.b64decode(d["rawData"]) for d in documents) == [b"p\n", b"q\n"]
    assert pipeline.counts()["partitioned"]["partitioning-failed"] == 2


def _invocation_sizes(log: Path) -> list[dict[str, int]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_full_three_mb_processor_buffer_of_ctr_sized_records_is_one_invocation(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN a Lambda processor buffering 3 MB (the template's size), and a buffer's worth of 2.3 KB records
    stack = DirectStack(embedded_aws, tmp_path)
    log = tmp_path / "sizes.jsonl"
    function = stack.function("sized", HANDLER, {"SIZE_LOG": str(log)})
    stack.delivery_stream(
        "full-buffer",
        Prefix="data/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(
            function, BufferSizeInMBs="3", BufferIntervalInSeconds="900"
        ),
    )
    payloads = [f"{n:05d}".encode() * 460 + b"abc" for n in range(1365)]  # 2,303 bytes each
    assert 3 * MB - len(payloads[0]) < sum(map(len, payloads)) < 3 * MB

    # WHEN they are put and the runtime drains them as one buffer
    with runtime(embedded_aws, tmp_path / "state", buffer_interval_seconds=None) as pipeline:
        put_records(embedded_aws, stack.stream, payloads)

    # THEN the whole buffer was one invocation (its event, base64 and all, is over 4 MB but under 6 MB)
    [invocation] = _invocation_sizes(log)
    assert invocation["records"] == len(payloads)
    assert 4 * MB < invocation["bytes"] <= 6 * MB
    counts = pipeline.counts()["full-buffer"]
    assert counts["invocations"] == 1
    assert counts["delivered"] == len(payloads)


def test_a_buffer_whose_event_would_pass_six_mb_is_split_into_as_few_invocations_as_fit(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN a 3 MB processor buffer of 100-byte records, whose event framing alone is several MB
    stack = DirectStack(embedded_aws, tmp_path)
    log = tmp_path / "sizes.jsonl"
    function = stack.function("small-records", HANDLER, {"SIZE_LOG": str(log)})
    stack.delivery_stream(
        "split",
        Prefix="data/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(
            function, BufferSizeInMBs="3", BufferIntervalInSeconds="900"
        ),
    )
    payloads = [f"{n:06d}".encode() * 16 + b"abcd" for n in range(30_000)]  # 100 bytes each, 3.0 MB

    # WHEN they are put and the runtime drains them as one buffer
    with runtime(embedded_aws, tmp_path / "state", buffer_interval_seconds=None) as pipeline:
        put_records(embedded_aws, stack.stream, payloads)

    # THEN every event is at most 6 MB, no two consecutive ones would have fit in one, nothing failed
    invocations = _invocation_sizes(log)
    assert len(invocations) >= 2
    assert sum(invocation["records"] for invocation in invocations) == len(payloads)
    assert all(invocation["bytes"] <= 6 * MB for invocation in invocations)
    for first, second in itertools.pairwise(invocations):
        assert first["bytes"] + second["bytes"] > 6 * MB
    counts = pipeline.counts()["split"]
    assert counts["invocations"] == len(invocations)
    assert counts["delivered"] == len(payloads)
    assert sorted(b"".join(objects(embedded_aws, stack.bucket, "data/").values()).splitlines()) == payloads


@pytest.mark.parametrize(
    ("mode", "timeout", "message", "fresh_environment_each_attempt"),
    [
        ("sleep", 1, "Task timed out after 1.00 seconds", True),
        ("oversized-response", 60, "response payload is over the 6 MB limit", False),
    ],
)
def test_a_timeout_or_an_oversized_response_is_retried_then_every_record_is_processing_failed(
    embedded_aws: EmbeddedAws,
    tmp_path: Path,
    mode: str,
    timeout: int,
    message: str,
    fresh_environment_each_attempt: bool,
) -> None:
    # GIVEN a transform that runs past its function's Timeout, or answers with more than 6 MB; 2 retries
    stack = DirectStack(embedded_aws, tmp_path)
    pids = tmp_path / "pids"
    function = stack.function(mode, HANDLER, {"MODE": mode, "PID_LOG": str(pids)}, timeout=timeout)
    stack.delivery_stream(
        "limited",
        Prefix="data/",
        ErrorOutputPrefix="errors/!{firehose:error-output-type}/",
        ProcessingConfiguration=lambda_processor(function, NumberOfRetries="2"),
    )
    payloads = [b"first", b"second"]

    # WHEN records are put
    with runtime(embedded_aws, tmp_path / "state") as pipeline:
        put_records(embedded_aws, stack.stream, payloads)

    # THEN the invocation was tried 1 + NumberOfRetries times, and every record is an error document saying why
    counts = pipeline.counts()["limited"]
    assert counts["invocations"] == counts["failed_invocations"] == 3
    assert counts["processing-failed"] == len(payloads)
    assert objects(embedded_aws, stack.bucket, "data/") == {}
    documents = _error_documents(embedded_aws, stack.bucket, "processing-failed")
    assert sorted(base64.b64decode(str(d["rawData"])) for d in documents) == sorted(payloads)
    for document in documents:
        assert document["attemptsMade"] == 3
        assert document["errorCode"] == "Lambda.FunctionError"
        assert document["errorMessage"] == message
    # and a timed-out execution environment is replaced (a cold start per attempt); a live one is kept warm
    attempts = pids.read_text().split()
    assert len(attempts) == 3
    assert len(set(attempts)) == (3 if fresh_environment_each_attempt else 1)


def test_a_request_over_six_mb_is_refused_before_the_function_runs(tmp_path: Path) -> None:
    # GIVEN a local Lambda function and an event over the 6 MB synchronous request limit
    pids = tmp_path / "pids"
    function = LambdaFunction(
        name="refused",
        arn="arn:aws:lambda:us-east-1:123456789012:function:refused",
        handler=HANDLER,
        environment={"PID_LOG": str(pids)},
        timeout_seconds=60,
        memory_mb=128,
    )
    local = LocalLambda(function, {}, tmp_path / "refused.log")
    event = {"records": [{"recordId": "1", "data": "A" * (6 * MB)}]}

    # WHEN it is invoked
    try:
        with pytest.raises(InvocationError) as refused:
            local.invoke(event)
    finally:
        local.close()

    # THEN the invocation fails with a function error naming the limit, and the handler never ran
    assert refused.value.code == "Lambda.FunctionError"
    assert "6 MB" in refused.value.message
    assert not pids.exists()
