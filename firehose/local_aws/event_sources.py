"""Lambda's SQS event source mappings on the embedded AWS: a poller run by the server, as Lambda polls.

moto records event source mappings (the Lambda API answers them) but would run an SQS mapping inside
SendMessage, in Docker; the fix ``sqs-event-source-mappings-polled`` (``moto_fixes``) stops that, and
this module runs them instead. One background thread, owned by ``ControlRoute`` (started when the
server serves, stopped by ``ControlRoute.close()``), every ``interval`` seconds lists the mappings
through the server's own Lambda API and, for each enabled mapping whose source is an SQS queue:

* receives up to ``BatchSize`` messages (ReceiveMessage, 10 at a time, no long polling) with every
  system and message attribute, with the queue's visibility timeout, as Lambda receives them;
* invokes the function with Lambda's SQS event (``Records[]`` with ``messageId``, ``receiptHandle``,
  ``body``, ``attributes``, ``messageAttributes``, ``md5OfBody``, ``eventSource: "aws:sqs"``,
  ``eventSourceARN``, ``awsRegion``; "Example standard queue message event" in
  https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html) in the same warm execution environment
  Lambda ``Invoke`` uses (``LambdaInvokeRoute.function``);
* on success deletes the batch's messages, except, when the mapping's ``FunctionResponseTypes`` holds
  ``ReportBatchItemFailures``, those the response names in ``batchItemFailures``; a response naming a
  message not in the batch, or an item without a non-empty ``itemIdentifier``, fails the whole batch,
  as Lambda has it (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html);
* on a function error deletes nothing: the messages come back after the visibility timeout, and the
  queue's redrive policy moves a message to its dead-letter queue once it has been received
  ``maxReceiveCount`` times (moto applies it on ReceiveMessage, as SQS does).

The poller never stops the server: errors are caught per mapping and logged with the mapping, the
function and the error's type, never a message body (bodies may hold PHI). With no mappings a pass
is one ListEventSourceMappings request. Tests wait for a queue to drain through the SQS API
(``ApproximateNumberOfMessages`` and ``ApproximateNumberOfMessagesNotVisible``).

Not emulated: ``MaximumBatchingWindowInSeconds`` (a batch is what the queue holds at the poll, up to
``BatchSize``), ``FilterCriteria``, ``ScalingConfig``, the 6 MB payload cap on batches (an oversized
batch fails as an invocation error), FIFO ordering on failures, and Lambda's backoff after errors
(beyond waiting one ``interval`` after a failed batch).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from firehose.runtime.lambda_invoker import InvocationError, LocalLambda

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import EventSourceMappingConfigurationTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.5
RECEIVE_LIMIT = 10  # ReceiveMessage's MaxNumberOfMessages
# The system attributes Lambda passes in a record's ``attributes``, in its order; present ones only.
RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
)


class BatchFailure(Exception):
    """The batch failed as a whole; the message says why, never what a message holds."""


class SqsEventSources:
    """Runs the SQS event source mappings the Lambda API lists, from one background thread."""

    def __init__(
        self,
        client: Callable[..., Any],
        functions: Callable[[str], LocalLambda | None],
        *,
        region: str,
        interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self._client = client
        self._functions = functions
        self._region = region
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue_urls: dict[str, str] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqs-event-sources", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=60)

    def _clients(self) -> tuple[LambdaClient, SQSClient]:
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        return (
            self._client("lambda", region=self._region, config=config),
            self._client("sqs", region=self._region, config=config),
        )

    def _run(self) -> None:
        clients: tuple[LambdaClient, SQSClient] | None = None
        while not self._stop.is_set():
            busy = False
            try:
                if clients is None:
                    clients = self._clients()
                busy = self.poll_once(*clients)
            except Exception as error:  # the poller outlives any error; the next pass tries again
                logger.warning("SQS event sources: listing mappings failed (%s)", type(error).__name__)
            if not busy:
                self._stop.wait(self._interval)

    def poll_once(self, lambda_client: LambdaClient, sqs: SQSClient) -> bool:
        """One pass over the mappings; True when some mapping received messages (poll again at once)."""
        busy = False
        for mapping in _mappings(lambda_client):
            if self._stop.is_set():
                break
            source = mapping.get("EventSourceArn", "")
            if mapping.get("State") != "Enabled" or not source.startswith("arn:") or ":sqs:" not in source:
                continue
            try:
                busy |= self._run_mapping(mapping, sqs)
            except Exception as error:  # one mapping's failure is not the others'
                logger.warning(
                    "SQS event source mapping %s (function %s): poll failed (%s)",
                    mapping.get("UUID"),
                    mapping.get("FunctionArn"),
                    type(error).__name__,
                )
        return busy

    def _queue_url(self, sqs: SQSClient, arn: str) -> str:
        url = self._queue_urls.get(arn)
        if url is None:
            url = self._queue_urls[arn] = queue_url(sqs, arn)
        return url

    def _run_mapping(self, mapping: EventSourceMappingConfigurationTypeDef, sqs: SQSClient) -> bool:
        local = self._functions(mapping["FunctionArn"])
        if local is None:
            logger.warning(
                "SQS event source mapping %s: function %s not found",
                mapping.get("UUID"),
                mapping["FunctionArn"],
            )
            return False
        source = mapping["EventSourceArn"]
        try:
            url = self._queue_url(sqs, source)
        except Exception:
            self._queue_urls.pop(source, None)
            raise
        messages = _receive(sqs, url, int(mapping.get("BatchSize") or RECEIVE_LIMIT))
        if not messages:
            return False
        event = {"Records": [self._record(message, source) for message in messages]}
        try:
            response = local.invoke(event)
            failed = _failed_ids(response, mapping, {message["MessageId"] for message in messages})
        except (InvocationError, BatchFailure) as error:
            reason = (error.error_type or error.code) if isinstance(error, InvocationError) else str(error)
            logger.warning(
                "SQS event source mapping %s (function %s): batch of %d failed (%s); the messages return "
                "after the visibility timeout",
                mapping.get("UUID"),
                local.function.name,
                len(messages),
                reason,
            )
            return False  # wait a pass before the next batch, as Lambda backs off after errors
        done = [message for message in messages if message["MessageId"] not in failed]
        _delete(sqs, url, done)
        return True

    def _record(self, message: MessageTypeDef, source: str) -> dict[str, Any]:
        system = message.get("Attributes") or {}
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": {name: system[name] for name in RECORD_ATTRIBUTES if name in system},
            "messageAttributes": {
                name: _message_attribute(value)
                for name, value in (message.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": source,
            "awsRegion": source.split(":")[3] or self._region,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


def queue_url(sqs: SQSClient, arn: str) -> str:
    """The URL of the queue ``arn`` names (``arn:aws:sqs:REGION:ACCOUNT:NAME``)."""
    _, _, _, _, account, name = arn.split(":", 5)
    url: str = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return url


def _mappings(lambda_client: LambdaClient) -> list[EventSourceMappingConfigurationTypeDef]:
    found: list[EventSourceMappingConfigurationTypeDef] = []
    marker = ""
    while True:
        page = (
            lambda_client.list_event_source_mappings(Marker=marker)
            if marker
            else lambda_client.list_event_source_mappings()
        )
        found.extend(page.get("EventSourceMappings", []))
        marker = page.get("NextMarker", "")
        if not marker:
            return found


def _receive(sqs: SQSClient, url: str, batch_size: int) -> list[MessageTypeDef]:
    messages: list[MessageTypeDef] = []
    while len(messages) < batch_size:
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(RECEIVE_LIMIT, batch_size - len(messages)),
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            break
        messages.extend(received)
    return messages


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda's event holds it: camelCase, binary values base64 text."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    attribute["stringListValues"] = list(value.get("StringListValues") or [])
    attribute["binaryListValues"] = [
        base64.b64encode(item).decode() for item in value.get("BinaryListValues") or []
    ]
    attribute["dataType"] = value["DataType"]
    return attribute


def _failed_ids(response: Any, mapping: EventSourceMappingConfigurationTypeDef, batch: set[str]) -> set[str]:
    """The message IDs a successful invocation reports failed; ``BatchFailure`` if the response is not
    a valid partial batch response. Without ``ReportBatchItemFailures`` the response is not read."""
    if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
        return set()
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise BatchFailure("response is not a JSON object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise BatchFailure("batchItemFailures is not a list")
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or not identifier:
            raise BatchFailure("a batchItemFailures item has no itemIdentifier")
        if identifier not in batch:
            raise BatchFailure("a batchItemFailures itemIdentifier is not a message of the batch")
        failed.add(identifier)
    return failed


def _delete(sqs: SQSClient, url: str, messages: list[MessageTypeDef]) -> None:
    for start in range(0, len(messages), RECEIVE_LIMIT):
        chunk = messages[start : start + RECEIVE_LIMIT]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(chunk)
            ],
        )


def wait_until_drained(sqs: SQSClient, queue_url: str, timeout: float = 30.0) -> None:
    """Wait until ``queue_url`` holds no message, visible or in flight (through the SQS API)."""
    deadline = time.monotonic() + timeout
    while True:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if (
            int(attributes["ApproximateNumberOfMessages"])
            + int(attributes["ApproximateNumberOfMessagesNotVisible"])
            == 0
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue_url} still holds messages after {timeout} s")
        time.sleep(0.1)
