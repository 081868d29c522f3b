"""The Firehose runtime's retries pause with the project's one backoff: S3 writes (never given up, a stop
ends them) and failed Lambda invocations (NumberOfRetries, then error documents)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from firehose.runtime.config import DeliveryStreamConfig, Processor
from firehose.runtime.lambda_invoker import InvocationError
from firehose.runtime.processing import PROCESSING_FAILED, RecordProcessor
from firehose.runtime.s3_writer import WRITE_BACKOFF, DeliveryAborted, S3Writer
from firehose.runtime.source import SourceRecord
from transform.core.backoff import Backoff


class FlakyS3:
    """PutObject that answers 503 SlowDown ``failures`` times, then stores."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []

    def put_object(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append(arguments)
        if len(self.calls) <= self.failures:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "reduce"}}, "PutObject")
        return {}


def test_a_failing_write_is_retried_with_backoff_pauses_until_it_succeeds() -> None:
    # GIVEN a bucket that refuses 30 writes in a row (more than any bounded retry would allow)
    s3 = FlakyS3(failures=30)
    pauses: list[float] = []
    backoff = Backoff(cap_seconds=5.0, random=random.Random(1))
    writer = S3Writer(s3, "bucket", "arn:aws:kms:key", threading.Event(), pauses.append, backoff)  # type: ignore[arg-type]
    # WHEN one object is written
    writer.put("data/key", b"body")
    # THEN it was written in the end, after a pause within the backoff's ceiling before each retry
    assert len(s3.calls) == 31 and writer.retries == 30
    assert len(pauses) == 30
    assert all(0 <= pause <= backoff.ceiling(attempt) for attempt, pause in enumerate(pauses, start=1))
    assert max(pauses) > 2.0  # the ceilings grew to the 5 s cap
    # and with the destination's KMS key
    assert s3.calls[-1]["SSEKMSKeyId"] == "arn:aws:kms:key"


def test_the_runtimes_writes_back_off_to_five_seconds_at_most() -> None:
    assert [WRITE_BACKOFF.ceiling(attempt) for attempt in (1, 2, 6, 7, 50)] == [0.1, 0.2, 3.2, 5.0, 5.0]


def test_a_stop_ends_a_write_being_retried_and_its_wait() -> None:
    # GIVEN a write failing forever, pausing on the abort event (the default)
    abort = threading.Event()
    s3 = FlakyS3(failures=10**9)
    writer = S3Writer(
        s3, "bucket", None, abort, backoff=Backoff(base_seconds=30.0, cap_seconds=30.0, jitter=False)
    )  # type: ignore[arg-type]
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer.put("data/key", b"body")
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=write)
    thread.start()
    # WHEN the runtime aborts during a 30-60 s pause
    while not s3.calls:
        threading.Event().wait(0.01)
    abort.set()
    thread.join(timeout=5)
    # THEN the write stops at once, unacknowledged
    assert not thread.is_alive()
    assert [type(error) for error in errors] == [DeliveryAborted]
    assert "SSEKMSKeyId" not in s3.calls[0]


FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:failing"


class FailingFunction:
    """A Lambda processor (``LocalLambda``'s shape) whose every invocation fails."""

    def __init__(self) -> None:
        self.function = SimpleNamespace(arn=FUNCTION_ARN)
        self.invocations = 0

    def invoke(self, event: dict[str, Any]) -> Any:
        self.invocations += 1
        raise InvocationError("Lambda.FunctionError", "the function raised")


def _config(retries: int) -> DeliveryStreamConfig:
    return DeliveryStreamConfig(
        name="stream",
        arn="arn:aws:firehose:us-east-1:123456789012:deliverystream/stream",
        version_id="1",
        created=datetime(2026, 11, 2, tzinfo=UTC),
        source_stream_arn="arn:aws:kinesis:us-east-1:123456789012:stream/source",
        bucket="bucket",
        prefix="data/",
        error_prefix="errors/",
        buffer_bytes=1024,
        buffer_seconds=1.0,
        compression="UNCOMPRESSED",
        kms_key_arn=None,
        file_extension=None,
        processors=(Processor("Lambda", {"LambdaArn": FUNCTION_ARN, "NumberOfRetries": str(retries)}),),
        dynamic_partitioning=False,
        format_conversion=None,
    )


def test_failed_invocations_are_retried_after_backoff_pauses_then_become_error_documents() -> None:
    # GIVEN a processor with NumberOfRetries 3 whose function always fails
    function = FailingFunction()
    pauses: list[float] = []
    backoff = Backoff(cap_seconds=1.0, random=random.Random(5))
    processor = RecordProcessor(_config(3), "us-east-1", function, pauses.append, backoff)  # type: ignore[arg-type]
    record = SourceRecord(b"{}", "shardId-000000000000", "1", "p", 0)
    # WHEN a batch is processed
    batch = processor.process([record])
    # THEN four attempts, a backoff pause between each two (none after the last), then an error document
    assert function.invocations == 4
    assert len(pauses) == 3
    assert all(0 <= pause <= backoff.ceiling(attempt) for attempt, pause in enumerate(pauses, start=1))
    [error] = batch.errors
    assert error.output_type == PROCESSING_FAILED
    assert error.document["attemptsMade"] == 4


@pytest.mark.parametrize("retries", [0, 1])
def test_no_pause_when_no_retry_follows(retries: int) -> None:
    pauses: list[float] = []
    processor = RecordProcessor(_config(retries), "us-east-1", FailingFunction(), pauses.append)  # type: ignore[arg-type]
    processor.process([SourceRecord(b"{}", "shardId-000000000000", "1", "p", 0)])
    assert len(pauses) == retries
