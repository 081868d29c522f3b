"""Record processing as Firehose does it: the transformation event, response validation, retries,
the processors a delivery stream declares, and ``processing-failed`` error documents."""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from firehose.runtime.config import DeliveryStreamConfig, delimiter
from firehose.runtime.lambda_invoker import MAX_PAYLOAD_BYTES, InvocationError, LocalLambda
from firehose.runtime.source import SourceRecord
from transform.core.backoff import Backoff

RESULTS = frozenset({"Ok", "Dropped", "ProcessingFailed"})
# Pauses between attempts at an invocation: short, as the batch holds up its delivery stream meanwhile.
INVOCATION_BACKOFF = Backoff(cap_seconds=1.0)
# The error output type (and count) of records the processor failed.
PROCESSING_FAILED = "processing-failed"


@dataclass(slots=True)
class Output:
    """A record on its way to S3: its data after processing and the source record it came from."""

    source: SourceRecord
    data: bytes
    partition_keys: Mapping[str, str] | None = None


@dataclass(slots=True)
class ErrorDocument:
    source: SourceRecord
    output_type: str  # processing-failed, format-conversion-failed, ...
    document: dict[str, Any]

    def line(self) -> bytes:
        return (json.dumps(self.document, separators=(",", ":")) + "\n").encode()


@dataclass(slots=True)
class ProcessedBatch:
    outputs: list[Output] = field(default_factory=list)
    dropped: list[SourceRecord] = field(default_factory=list)
    errors: list[ErrorDocument] = field(default_factory=list)
    invocations: int = 0
    failed_invocations: int = 0


def record_id(record: SourceRecord) -> str:
    """Unique per record of a stream: the shard's number then the sequence number."""
    return f"{record.shard_id.rsplit('-', 1)[-1]}{record.sequence_number}"


def build_event(config: DeliveryStreamConfig, region: str, records: Sequence[SourceRecord]) -> dict[str, Any]:
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": config.arn,
        "sourceKinesisStreamArn": config.source_stream_arn,
        "region": region,
        "records": [
            _event_record(record, base64.b64encode(record.data).decode("ascii")) for record in records
        ],
    }


def _event_record(record: SourceRecord, data: str) -> dict[str, Any]:
    return {
        "recordId": record_id(record),
        "approximateArrivalTimestamp": record.arrival_ms,
        "data": data,
        "kinesisRecordMetadata": {
            "shardId": record.shard_id,
            "partitionKey": record.partition_key,
            "approximateArrivalTimestamp": record.arrival_ms,
            "sequenceNumber": record.sequence_number,
            "subsequenceNumber": 0,
        },
    }


def event_record_size(record: SourceRecord) -> int:
    """Bytes the record adds to the event's JSON: its entry, base64 data included, and a separator."""
    framing = len(msgspec.json.encode(_event_record(record, "")))
    return framing + (len(record.data) + 2) // 3 * 4 + 1


def event_envelope_size(config: DeliveryStreamConfig, region: str) -> int:
    """Bytes of an event without records."""
    return len(msgspec.json.encode(build_event(config, region, [])))


@dataclass(frozen=True, slots=True)
class Answer:
    result: str
    data: bytes
    partition_keys: Mapping[str, str] | None


def validate_response(response: Any, expected: Sequence[str]) -> dict[str, Answer]:
    """Every requested recordId exactly once with a known result and base64 data, else
    ``InvocationError`` with Firehose's error code (the whole invocation counts as failed)."""
    if not isinstance(response, Mapping) or not isinstance(response.get("records"), list):
        raise InvocationError("Lambda.JsonProcessingException", "the response has no records list")
    wanted = set(expected)
    answers: dict[str, Answer] = {}
    for item in response["records"]:
        if not isinstance(item, Mapping) or not isinstance(item.get("recordId"), str):
            raise InvocationError("Lambda.JsonProcessingException", "a returned record has no recordId")
        identifier = item["recordId"]
        if identifier in answers:
            raise InvocationError(
                "Lambda.DuplicatedRecordId", "multiple records were returned with the same record ID"
            )
        if identifier not in wanted:
            raise InvocationError("Lambda.MissingRecordId", "a returned record ID was not in the request")
        result = item.get("result")
        if result not in RESULTS:
            raise InvocationError(
                "Lambda.JsonProcessingException",
                "a returned record's result is not Ok, Dropped or ProcessingFailed",
            )
        # An Ok record must carry its data (an empty string is an empty record, a missing one an error);
        # the data of Dropped and ProcessingFailed records is never used, so it is only checked if given.
        data = item.get("data")
        if result == "Ok" or data:
            if not isinstance(data, str):
                raise InvocationError(
                    "Lambda.JsonProcessingException", "a returned record's data is missing or not a string"
                )
            try:
                decoded = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                raise InvocationError(
                    "Lambda.JsonProcessingException", "a returned record's data is not base64"
                ) from None
        else:
            decoded = b""
        keys = _partition_keys(item.get("metadata"))
        answers[identifier] = Answer(result, decoded, keys)
    if len(answers) != len(wanted):
        raise InvocationError("Lambda.MissingRecordId", "one or more record IDs were not returned")
    return answers


def _partition_keys(metadata: Any) -> Mapping[str, str] | None:
    if metadata is None:
        return None
    keys = metadata.get("partitionKeys") if isinstance(metadata, Mapping) else None
    if keys is None:
        return None
    if not isinstance(keys, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in keys.items()
    ):
        raise InvocationError(
            "Lambda.JsonProcessingException", "metadata.partitionKeys is not a map of strings"
        )
    return dict(keys)


def processing_failed(
    record: SourceRecord, *, attempts: int, code: str, message: str, lambda_arn: str, ended_ms: int
) -> ErrorDocument:
    return ErrorDocument(
        record,
        PROCESSING_FAILED,
        {
            "attemptsMade": attempts,
            "arrivalTimestamp": record.arrival_ms,
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": ended_ms,
            "rawData": base64.b64encode(record.data).decode("ascii"),
            "lambdaArn": lambda_arn,
        },
    )


def _as_record(output: Output) -> SourceRecord:
    """The record as the Lambda processor sees it: its source, with the data earlier processors made."""
    source = output.source
    return SourceRecord(
        output.data, source.shard_id, source.sequence_number, source.partition_key, source.arrival_ms
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


class RecordProcessor:
    """Runs a delivery stream's processors, in the order declared, over one buffered batch."""

    def __init__(
        self,
        config: DeliveryStreamConfig,
        region: str,
        function: LocalLambda | None,
        sleep: Callable[[float], object] = time.sleep,
        backoff: Backoff = INVOCATION_BACKOFF,
    ) -> None:
        self._config = config
        self._region = region
        self._function = function
        self._retries = config.number_of_retries()
        self._sleep = sleep
        self._backoff = backoff
        self._max_records_bytes = MAX_PAYLOAD_BYTES - event_envelope_size(config, region)

    def process(self, records: Sequence[SourceRecord]) -> ProcessedBatch:
        batch = ProcessedBatch()
        outputs = [Output(record, record.data) for record in records]
        for processor in self._config.processors:
            if processor.type == "Lambda":
                outputs = self._invoke_in_chunks(outputs, batch)
            elif processor.type == "AppendDelimiterToRecord":
                suffix = delimiter(processor)
                for output in outputs:
                    output.data += suffix
        batch.outputs = outputs
        return batch

    def _invoke_in_chunks(self, outputs: list[Output], batch: ProcessedBatch) -> list[Output]:
        """One invocation per buffer, as Firehose does, unless its event would be over Lambda's
        synchronous request limit: then as many invocations as it takes to stay under it."""
        survivors: list[Output] = []
        chunk: list[Output] = []
        records: list[SourceRecord] = []  # the chunk's records as the Lambda sees them
        size = 0
        for output in outputs:
            record = _as_record(output)
            encoded = event_record_size(record)
            if chunk and size + encoded > self._max_records_bytes:
                survivors.extend(self._invoke(chunk, records, batch))
                chunk, records, size = [], [], 0
            chunk.append(output)
            records.append(record)
            size += encoded
        if chunk:
            survivors.extend(self._invoke(chunk, records, batch))
        return survivors

    def _invoke(
        self, outputs: list[Output], records: list[SourceRecord], batch: ProcessedBatch
    ) -> list[Output]:
        assert self._function is not None
        lambda_arn = self._function.function.arn
        identifiers = [record_id(record) for record in records]
        attempts = 0
        last_error: InvocationError | None = None
        while attempts <= self._retries:
            attempts += 1
            batch.invocations += 1
            try:
                response = self._function.invoke(build_event(self._config, self._region, records))
                answers = validate_response(response, identifiers)
            except InvocationError as error:
                batch.failed_invocations += 1
                last_error = error
                if attempts <= self._retries:
                    self._sleep(self._backoff.pause(attempts))
                continue
            survivors: list[Output] = []
            ended = _now_ms()
            for output, identifier in zip(outputs, identifiers, strict=True):
                answer = answers[identifier]
                if answer.result == "Ok":
                    survivors.append(Output(output.source, answer.data, answer.partition_keys))
                elif answer.result == "Dropped":
                    batch.dropped.append(output.source)
                else:
                    batch.errors.append(
                        processing_failed(
                            output.source,
                            attempts=attempts,
                            code="Lambda.ProcessingFailed",
                            message="The Lambda function returned the record with result ProcessingFailed.",
                            lambda_arn=lambda_arn,
                            ended_ms=ended,
                        )
                    )
            return survivors
        assert last_error is not None
        ended = _now_ms()
        for output in outputs:
            batch.errors.append(
                processing_failed(
                    output.source,
                    attempts=attempts,
                    code=last_error.code,
                    message=last_error.message,
                    lambda_arn=lambda_arn,
                    ended_ms=ended,
                )
            )
        return []
