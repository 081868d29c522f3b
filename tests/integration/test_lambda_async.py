# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""Asynchronous (``Event``) Lambda invocations on the embedded AWS are retried and dead-lettered as
Lambda does: 1 + MaximumRetryAttempts attempts, then the function's dead-letter queue and on-failure
destination (``firehose/local_aws/lambda_api.py``), over HTTP with boto3."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firehose.local_aws import lambda_api
from firehose.local_aws.server import EmbeddedAws
from tests.support.pipeline_support import embedded_aws, handler_zip, lambda_role, wait_until  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    # an exception escaping a background invocation's thread fails the test
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
]

PHONE = "+15555550123"  # stands for PHI in the event: it must reach the DLQ, never the logs
EVENT = {"contactId": "c-1", "phone": PHONE}
LOGGER = "firehose.local_aws.lambda_api"


@pytest.fixture
def short_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after 0.2 s and 0.4 s instead of the local 1 s and 2 s (Lambda: 1 and 2 minutes)."""
    monkeypatch.setattr(lambda_api, "RETRY_DELAYS_SECONDS", (0.2, 0.4))


class Functions:
    """Functions with the test handlers, created through the Lambda API, and SQS queues to watch."""

    def __init__(self, aws: EmbeddedAws, tmp_path: Path) -> None:
        self.aws = aws
        self.tmp_path = tmp_path
        self.role = lambda_role(aws.client("iam"), "async-role")
        self.zip = handler_zip(tmp_path)

    def queue(self, name: str) -> tuple[str, str]:
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def function(self, name: str, handler: str, dead_letter_arn: str = "", **environment: str) -> Path:
        """Create the function; the file its attempts are counted in."""
        attempts = self.tmp_path / f"{name}.attempts"
        options: dict[str, Any] = {}
        if dead_letter_arn:
            options["DeadLetterConfig"] = {"TargetArn": dead_letter_arn}
        self.aws.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role,
            Handler=f"tests.support.lambda_handlers.{handler}",
            Code={"ZipFile": self.zip},
            Timeout=10,
            Environment={"Variables": {"ATTEMPTS_LOG": str(attempts), **environment}},
            **options,
        )
        return attempts

    def invoke_event(self, name: str, event: object = EVENT) -> str:
        """Invoke asynchronously; the request ID the Invoke answered."""
        answer = self.aws.client("lambda").invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps(event).encode()
        )
        assert answer["StatusCode"] == 202
        return str(answer["ResponseMetadata"]["RequestId"])

    def messages(self, url: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        sqs = self.aws.client("sqs")
        found: list[dict[str, Any]] = []

        def received() -> bool:
            found.extend(
                sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
                ).get("Messages", [])
            )
            return len(found) >= count

        wait_until(received, timeout=timeout)
        return found

    def queue_is_empty(self, url: str) -> bool:
        attributes = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(value == "0" for value in attributes.values())


def attempt_times(attempts: Path) -> list[float]:
    return [float(line) for line in attempts.read_text().splitlines()] if attempts.exists() else []


@pytest.fixture
def functions(embedded_aws: EmbeddedAws, tmp_path: Path) -> Functions:
    return Functions(embedded_aws, tmp_path)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger=LOGGER)
    yield caplog
    # THEN (always) the event and the handler's message never reach the server's log
    assert PHONE not in caplog.text


def test_a_failing_event_is_tried_three_times_then_lands_in_the_dead_letter_queue(
    functions: Functions, logs: pytest.LogCaptureFixture
) -> None:
    # GIVEN a function that always fails, with an SQS dead-letter queue and no event invoke configuration
    dlq_url, dlq_arn = functions.queue("failing-dlq")
    attempts = functions.function("failing", "failing_handler", dlq_arn)

    # WHEN it is invoked asynchronously (the local waits: 1 s, then 2 s)
    request_id = functions.invoke_event("failing")

    # THEN it is attempted 1 + 2 times (Lambda's default), the retries after the local waits, in order
    [message] = functions.messages(dlq_url, 1)
    times = attempt_times(attempts)
    assert len(times) == 3
    assert times[1] - times[0] >= lambda_api.RETRY_DELAYS_SECONDS[0] * 0.9
    assert times[2] - times[1] >= lambda_api.RETRY_DELAYS_SECONDS[1] * 0.9
    # AND the dead-letter message is the event as invoked, with Lambda's three attributes
    assert json.loads(message["Body"]) == EVENT
    attributes = message["MessageAttributes"]
    assert attributes["RequestID"] == {"DataType": "String", "StringValue": request_id}
    assert attributes["ErrorCode"] == {"DataType": "Number", "StringValue": "200"}
    assert attributes["ErrorMessage"] == {
        "DataType": "String",
        "StringValue": f"attempt 3 failed for {PHONE}",
    }
    # AND the log names the function, the attempts and the error type only
    assert "attempt 1 of 3 failed (RuntimeError)" in logs.text
    assert "sent to its dead-letter queue" in logs.text


def test_maximum_retry_attempts_zero_means_one_attempt(
    functions: Functions, logs: pytest.LogCaptureFixture
) -> None:
    # GIVEN a failing function with a dead-letter queue whose event invoke configuration allows no retry
    dlq_url, dlq_arn = functions.queue("no-retry-dlq")
    attempts = functions.function("no-retry", "failing_handler", dlq_arn)
    functions.aws.client("lambda").put_function_event_invoke_config(
        FunctionName="no-retry", MaximumRetryAttempts=0
    )

    # WHEN it is invoked asynchronously
    functions.invoke_event("no-retry")

    # THEN it is attempted once and dead-lettered at once
    [message] = functions.messages(dlq_url, 1, timeout=5.0)
    assert message["MessageAttributes"]["ErrorMessage"]["StringValue"] == f"attempt 1 failed for {PHONE}"
    time.sleep(0.5)
    assert len(attempt_times(attempts)) == 1


def test_an_event_that_succeeds_on_a_retry_is_not_dead_lettered(
    functions: Functions,
    short_retries: None,
    logs: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a function with a dead-letter queue that fails its first attempt, then succeeds
    dlq_url, dlq_arn = functions.queue("flaky-dlq")
    attempts = functions.function("flaky", "flaky_handler", dlq_arn, FAILURES="1")

    # WHEN it is invoked asynchronously
    functions.invoke_event("flaky")

    # THEN the retry runs it again and it succeeds: two attempts, nothing dead-lettered
    wait_until(lambda: "succeeded on attempt 2" in logs.text, timeout=10)
    time.sleep(0.6)  # past the second retry's wait: no third attempt
    assert len(attempt_times(attempts)) == 2
    assert functions.queue_is_empty(dlq_url)


def test_without_a_dead_letter_queue_the_event_is_dropped_after_its_attempts(
    functions: Functions, short_retries: None, logs: pytest.LogCaptureFixture
) -> None:
    # GIVEN a function that always fails, without DeadLetterConfig or destinations
    attempts = functions.function("no-dlq", "failing_handler")

    # WHEN it is invoked asynchronously
    functions.invoke_event("no-dlq")

    # THEN it is attempted three times, then dropped, the server unharmed (no thread exception)
    wait_until(lambda: "dropped (no dead-letter queue" in logs.text, timeout=10)
    assert len(attempt_times(attempts)) == 3
    assert not [record for record in logs.records if record.levelno >= logging.ERROR]
    # AND the server still runs the function's next invocation
    functions.invoke_event("no-dlq")
    wait_until(lambda: len(attempt_times(attempts)) == 6, timeout=10)


def test_an_on_failure_sqs_destination_receives_lambdas_invocation_record(
    functions: Functions, short_retries: None, logs: pytest.LogCaptureFixture
) -> None:
    # GIVEN a failing function whose event invoke configuration sends failures to an SQS queue
    url, arn = functions.queue("on-failure")
    functions.function("with-destination", "failing_handler")
    functions.aws.client("lambda").put_function_event_invoke_config(
        FunctionName="with-destination",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": arn}},
    )

    # WHEN it is invoked asynchronously
    request_id = functions.invoke_event("with-destination")

    # THEN after 1 + 1 attempts the queue receives the invocation record, in Lambda's shape
    [message] = functions.messages(url, 1, timeout=10)
    record = json.loads(message["Body"])
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:with-destination:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 2,
    }
    assert record["requestPayload"] == EVENT
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"] == {
        "errorMessage": f"attempt 2 failed for {PHONE}",
        "errorType": "RuntimeError",
    }


def test_an_sns_dead_letter_topic_receives_the_event_with_its_attributes(
    functions: Functions,
    short_retries: None,
    logs: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a failing function whose dead-letter target is an SNS topic, an SQS queue subscribed to it
    sns = functions.aws.client("sns")
    topic = sns.create_topic(Name="dead-letters")["TopicArn"]
    url, arn = functions.queue("topic-subscriber")
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    functions.function("topic-dlq", "failing_handler", topic)
    functions.aws.client("lambda").put_function_event_invoke_config(
        FunctionName="topic-dlq", MaximumRetryAttempts=0
    )

    # WHEN it is invoked asynchronously
    request_id = functions.invoke_event("topic-dlq")

    # THEN the event is published to the topic with the three attributes
    [message] = functions.messages(url, 1, timeout=10)
    assert json.loads(message["Body"]) == EVENT
    assert message["MessageAttributes"]["RequestID"]["StringValue"] == request_id
    assert message["MessageAttributes"]["ErrorCode"]["StringValue"] == "200"


def test_stopping_the_server_abandons_a_waiting_retry_at_once(
    embedded_aws: EmbeddedAws,
    functions: Functions,
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a failing function with a dead-letter queue, whose first retry waits 30 s
    monkeypatch.setattr(lambda_api, "RETRY_DELAYS_SECONDS", (30.0, 30.0))
    _, dlq_arn = functions.queue("shutdown-dlq")
    attempts = functions.function("slow-retry", "failing_handler", dlq_arn)
    functions.invoke_event("slow-retry")
    wait_until(lambda: "retrying in 30 s" in logs.text, timeout=10)

    # WHEN the embedded AWS stops while the retry waits
    started = time.monotonic()
    embedded_aws.stop()

    # THEN it stops at once, the event abandoned after its one attempt: not run again, not dead-lettered
    assert time.monotonic() - started < 10
    assert len(attempt_times(attempts)) == 1
    assert "abandoned on shutdown after 1 attempt(s)" in logs.text
