"""The producer: records into the Kinesis stream with PutRecords, as Amazon Connect streams its CTRs.

The one Kinesis put loop of the project (``ctr-billing demo``, chaos runs, benchmarks): batches within
PutRecords' limits, and the records Kinesis refuses in a partly failed call (throttling, an internal
failure: PutRecords answers 200 with per-record ``ErrorCode``) put again after a ``Backoff`` pause.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firehose.pipeline.errors import PipelineError
from transform.core.backoff import Backoff

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

# Kinesis PutRecords limits: 500 records and 5 MB per request, 1 MB per record (data + partition key).
PUT_BATCH = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_ATTEMPTS = 10


class ProducerError(PipelineError):
    """Records could not be put into the stream."""


def put_records(
    kinesis: KinesisClient,
    stream: str,
    records: Iterable[tuple[bytes, str]],
    after_batch: Callable[[int], object] | None = None,
    *,
    backoff: Backoff | None = None,
    sleep: Callable[[float], object] = time.sleep,
    max_attempts: int = MAX_ATTEMPTS,
) -> int:
    """Put every ``(data, partition key)`` in order, in batches of at most 500 records and 5 MB; returns
    how many were put. ``after_batch`` gets the running total after each batch is fully in (the demo
    paces itself and shows progress there)."""
    pauses = backoff or Backoff()
    put = 0
    batch: list[PutRecordsRequestEntryTypeDef] = []
    size = 0
    for data, partition_key in records:
        record_size = len(data) + len(partition_key.encode())
        if record_size > MAX_RECORD_BYTES:
            raise ProducerError(f"record {put + len(batch) + 1} is over Kinesis's 1 MB record limit")
        if batch and (len(batch) == PUT_BATCH or size + record_size > MAX_BATCH_BYTES):
            put += _put_batch(kinesis, stream, batch, pauses, sleep, max_attempts)
            if after_batch is not None:
                after_batch(put)
            batch, size = [], 0
        batch.append({"Data": data, "PartitionKey": partition_key})
        size += record_size
    if batch:
        put += _put_batch(kinesis, stream, batch, pauses, sleep, max_attempts)
        if after_batch is not None:
            after_batch(put)
    return put


def _put_batch(
    kinesis: KinesisClient,
    stream: str,
    batch: list[PutRecordsRequestEntryTypeDef],
    backoff: Backoff,
    sleep: Callable[[float], object],
    max_attempts: int,
) -> int:
    pending = batch
    for attempt in range(1, max_attempts + 1):
        response = kinesis.put_records(StreamName=stream, Records=pending)
        if not response["FailedRecordCount"]:
            return len(batch)
        # Only the refused entries go again, so nothing already in the stream is put twice.
        pending = [
            entry for entry, result in zip(pending, response["Records"], strict=True) if "ErrorCode" in result
        ]
        if attempt < max_attempts:
            sleep(backoff.pause(attempt))
    raise ProducerError(f"Kinesis kept refusing records; giving up after {max_attempts} attempts")


def input_records(path: Path) -> Iterator[tuple[bytes, str]]:
    """Each line of the file, without its line ending, as one record's bytes, unchanged."""
    with path.open("rb") as source:
        for number, line in enumerate(source, start=1):
            data = line.rstrip(b"\n")
            data = data.removesuffix(b"\r")
            yield data, f"line-{number}"


def ctr_records(ctrs: Iterable[Mapping[str, Any]]) -> Iterator[tuple[bytes, str]]:
    """CTRs as Connect streams them: compact JSON, partitioned by contact."""
    for ctr in ctrs:
        yield json.dumps(ctr, separators=(",", ":")).encode(), str(ctr.get("ContactId"))
