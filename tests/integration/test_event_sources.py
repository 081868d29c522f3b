"""Lambda's SQS event source mappings run on the embedded AWS as Lambda runs them
(``firehose.local_aws.event_sources``): the queue is polled, the function gets Lambda's SQS event in
its warm worker, successes are deleted, failures come back and end in the dead-letter queue; and a
template's bucket notifies its queue of new objects under the configured prefix."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firehose.local_aws.event_sources import wait_until_drained
from firehose.local_aws.server import EmbeddedAws
from tests.support.pipeline_support import handler_zip, lambda_role, objects, wait_until

pytestmark = pytest.mark.integration

HANDLER = "tests.support.lambda_handlers.sqs_handler"
RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def role(aws: EmbeddedAws) -> str:
    return lambda_role(aws.client("iam"), "sqs-event-source-role")


class Source:
    """A queue (1 s visibility timeout) with a dead-letter queue after 2 receives, a bucket, and the
    recording function; the mapping is created by each test."""

    def __init__(self, aws: EmbeddedAws, role: str, tmp_path: Path) -> None:
        self.aws = aws
        self.sqs = aws.client("sqs")
        name = f"es-{uuid.uuid4().hex[:10]}"
        self.dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = self._arn(self.dlq_url)
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}
        self.url = self.sqs.create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)}
        )["QueueUrl"]
        self.arn = self._arn(self.url)
        self.bucket = name
        aws.client("s3").create_bucket(Bucket=name)
        self.log = tmp_path / "events.jsonl"
        self.function = aws.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=HANDLER,
            Code={"ZipFile": handler_zip(tmp_path)},
            Timeout=30,
            Environment={"Variables": {"EVENT_LOG": str(self.log), "OUTPUT_BUCKET": name}},
        )["FunctionArn"]

    def _arn(self, url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def map(self, *, report_failures: bool) -> str:
        options: dict[str, Any] = {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
        mapping = self.aws.client("lambda").create_event_source_mapping(
            EventSourceArn=self.arn,
            FunctionName=self.function,
            BatchSize=10,
            **(options if report_failures else {}),
        )
        return str(mapping["UUID"])

    def send(self, *bodies: str, **options: Any) -> list[str]:
        return [
            self.sqs.send_message(QueueUrl=self.url, MessageBody=body, **options)["MessageId"]
            for body in bodies
        ]

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line)["event"] for line in self.log.read_text().splitlines()]

    def dead_letters(self, count: int) -> list[str]:
        """The bodies in the dead-letter queue, once it holds ``count`` messages."""
        wait_until(lambda: _depth(self.sqs, self.dlq_url) == count, timeout=15)
        received = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in received:
            self.sqs.delete_message(QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(message["Body"] for message in received)


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def source(aws: EmbeddedAws, role: str, tmp_path: Path) -> Source:
    return Source(aws, role, tmp_path)


def test_messages_reach_the_function_in_lambda_s_sqs_event_and_successes_are_deleted(source: Source) -> None:
    # GIVEN a queue holding three messages, one with a string and a binary message attribute
    plain = source.send("first", "second")
    attributed = source.send(
        "third",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "ctr"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )

    # WHEN a mapping with partial batch responses is created on it
    source.map(report_failures=True)
    wait_until_drained(source.sqs, source.url, timeout=15)

    # THEN the function got them in one event of Lambda's SQS shape, and every message was deleted
    events = source.events()
    assert len(events) == 1
    assert set(events[0]) == {"Records"}
    records = {record["messageId"]: record for record in events[0]["Records"]}
    assert set(records) == set(plain + attributed)
    for record in records.values():
        assert set(record) - {"md5OfMessageAttributes"} == RECORD_KEYS
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == source.arn
        assert record["awsRegion"] == source.aws.region
        assert record["receiptHandle"]
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324
        attributes = record["attributes"]
        assert set(attributes) == {
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
        }
        assert attributes["ApproximateReceiveCount"] == "1"
        assert attributes["SentTimestamp"].isdigit()
    assert {records[m]["body"] for m in plain} == {"first", "second"}
    assert records[plain[0]]["messageAttributes"] == {}
    assert records[attributed[0]]["messageAttributes"] == {
        "kind": {"stringValue": "ctr", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }
    assert records[attributed[0]]["md5OfMessageAttributes"]
    # the function ran with its Environment and its clients pointed at the embedded AWS
    assert objects(source.aws, source.bucket) == {
        message_id: record["body"].encode() for message_id, record in records.items()
    }
    assert source.dead_letters(0) == []


def test_a_reported_failure_is_retried_then_dead_lettered_and_the_rest_deleted(source: Source) -> None:
    # GIVEN a mapping with partial batch responses, and a batch where one message is reported failed
    ok, failing, other = source.send("ok", "fail", "other")
    source.map(report_failures=True)

    # WHEN the poller has run until the queue is empty
    dead = source.dead_letters(1)
    wait_until_drained(source.sqs, source.url, timeout=15)

    # THEN only the failed message was retried, received maxReceiveCount (2) times, then moved to the DLQ
    assert dead == ["fail"]
    seen = [
        (r["messageId"], r["attributes"]["ApproximateReceiveCount"])
        for e in source.events()
        for r in e["Records"]
    ]
    assert sorted(seen) == sorted([(ok, "1"), (failing, "1"), (other, "1"), (failing, "2")])


def test_without_partial_batch_responses_a_function_error_deletes_nothing(source: Source) -> None:
    # GIVEN a mapping without ReportBatchItemFailures, and a batch whose invocation raises
    source.send("ok", "raise")
    source.map(report_failures=False)

    # WHEN the poller has run until the dead-letter queue holds them
    dead = source.dead_letters(2)

    # THEN both messages, the one the function handled too, were retried and dead-lettered together
    assert dead == ["ok", "raise"]
    assert [sorted(r["body"] for r in e["Records"]) for e in source.events()] == [["ok", "raise"]] * 2

    # AND a response's batchItemFailures are not read: a "failed" message is deleted
    source.send("fail")
    wait_until(lambda: len(source.events()) == 3, timeout=15)
    wait_until_drained(source.sqs, source.url, timeout=15)
    assert _depth(source.sqs, source.dlq_url) == 0


def test_an_invalid_partial_batch_response_fails_the_whole_batch(source: Source) -> None:
    # GIVEN a mapping with partial batch responses, and a batch whose response names an unknown message
    source.send("ok", "bad-id")
    source.map(report_failures=True)

    # WHEN the poller has run until the dead-letter queue holds them
    dead = source.dead_letters(2)

    # THEN the whole batch was retried and dead-lettered, as Lambda treats such a response
    assert dead == ["bad-id", "ok"]
    assert len(source.events()) == 2
