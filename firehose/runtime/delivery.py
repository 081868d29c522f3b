"""One delivery stream at work: read the source, buffer for the processor, process, buffer for S3,
convert, write, checkpoint. One thread per delivery stream; Lambda transforms run in child processes."""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firehose.runtime.config import DeliveryStreamConfig
from firehose.runtime.lambda_invoker import LocalLambda
from firehose.runtime.parquet import ParquetConverter, glue_arrow_schema
from firehose.runtime.processing import PROCESSING_FAILED, ErrorDocument, Output, RecordProcessor
from firehose.runtime.s3_writer import (
    DeliveryAborted,
    PrefixError,
    S3Writer,
    compress,
    default_extension,
    evaluate_prefix,
    object_key,
    utc_from_ms,
)
from firehose.runtime.source import CheckpointStore, KinesisSource, SourceRecord

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_glue.type_defs import GetTableRequestTypeDef
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    state_dir: Path
    log_dir: Path
    # Caps every buffer interval (processor and destination) without touching the stream's configuration.
    buffer_interval_seconds: float | None = None
    poll_seconds: float = 0.1
    # Records per GetRecords (Kinesis allows 10,000). A worker handles what one poll read (one call per
    # shard) before it reads again, so this bounds the records a delivery stream holds at once to
    # shards x read_limit, whatever the backlog in the stream: the runtime's memory stays flat however
    # many records are put. 1,000 records is about two Lambda processor buffers of 1 MB of CTRs.
    read_limit: int = 1_000
    # How often each source lists its stream's shards again, to find shards added by resharding (a
    # closed shard read to its end triggers a listing at once).
    discover_seconds: float = 30.0


# Outcome names used in counts (and summary.json). Error outcomes are also the error output types
# (``!{firehose:error-output-type}``).
READ = "records_read"
DELIVERED = "delivered"
DROPPED = "dropped"
FORMAT_CONVERSION_FAILED = "format-conversion-failed"
PARTITIONING_FAILED = "partitioning-failed"
# Once a record is counted under one of these, its delivery stream is done with it.
FINAL_OUTCOMES = (DELIVERED, DROPPED, PROCESSING_FAILED, FORMAT_CONVERSION_FAILED, PARTITIONING_FAILED)


def processed(counts: Mapping[str, int]) -> int:
    """Records a delivery stream has finished with, from its counts (``DeliveryStreamWorker.snapshot``)."""
    return sum(counts.get(outcome, 0) for outcome in FINAL_OUTCOMES)


@dataclass(slots=True)
class _Buffer:
    opened: float
    oldest_arrival_ms: int
    items: list[tuple[SourceRecord, bytes]] = field(default_factory=list)
    size: int = 0

    def add(self, source: SourceRecord, data: bytes) -> None:
        self.items.append((source, data))
        self.size += len(data)
        self.oldest_arrival_ms = min(self.oldest_arrival_ms, source.arrival_ms)


class DeliveryStreamWorker:
    def __init__(
        self,
        config: DeliveryStreamConfig,
        *,
        region: str,
        kinesis: KinesisClient,
        s3: S3Client,
        glue: GlueClient,
        function: LocalLambda | None,
        options: WorkerOptions,
        abort: threading.Event,
    ) -> None:
        self.config = config
        self._options = options
        self._abort = abort
        self.source = KinesisSource(
            kinesis,
            config.source_stream_arn,
            config.created,
            CheckpointStore(options.state_dir / "checkpoints" / f"{config.name}.json"),
            read_limit=options.read_limit,
            discover_seconds=options.discover_seconds,
        )
        self._processor = RecordProcessor(config, region, function)
        self._writer = S3Writer(s3, config.bucket, config.kms_key_arn, abort)
        self._converter: ParquetConverter | None = None
        self._catalog_table: dict[str, Any] = {}
        conversion = config.format_conversion
        if conversion is not None:
            arguments: GetTableRequestTypeDef = {
                "DatabaseName": conversion.database,
                "Name": conversion.table,
            }
            if conversion.catalog_id:
                arguments["CatalogId"] = conversion.catalog_id
            table = glue.get_table(**arguments)["Table"]
            self._converter = ParquetConverter(
                glue_arrow_schema(table), conversion.parquet_compression, conversion.case_insensitive
            )
            self._catalog_table = {
                "catalogId": conversion.catalog_id,
                "databaseName": conversion.database,
                "tableName": conversion.table,
                "region": conversion.region or region,
                "versionId": conversion.version_id,
            }
        cap = options.buffer_interval_seconds
        processor_bytes, processor_seconds = config.processor_buffer()
        self._processor_bytes = processor_bytes
        self._processor_seconds = processor_seconds if cap is None else min(processor_seconds, cap)
        self._destination_seconds = config.buffer_seconds if cap is None else min(config.buffer_seconds, cap)
        self._pending: list[SourceRecord] = []
        self._pending_size = 0
        self._pending_since = 0.0
        self._buffers: dict[tuple[str, tuple[tuple[str, str], ...] | str], _Buffer] = {}
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._drain_requested = threading.Event()
        self._drained = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"firehose-{config.name}", daemon=True)

    # --- control -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_drain(self) -> None:
        self.source.request_discovery()  # before the drain is seen: no shard added since is missed
        self._drained.clear()
        self._drain_requested.set()

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._drained.wait(0.05):
            if self.error is not None or not self._thread.is_alive() or time.monotonic() > deadline:
                return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self.counts)
        counts["objects_written"] = counts.get("objects_written", 0)
        counts["s3_retries"] = self._writer.retries
        counts["kinesis_read_errors"] = self.source.read_errors
        return counts

    # --- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        # While one read is transformed and delivered, the next GetRecords runs on the reader thread:
        # the Lambda's round trips and Kinesis reads overlap. At most one read is in flight, so memory
        # stays bounded by shards x read_limit twice over; a read discarded at a stop was never
        # delivered, so the checkpoint is still below it and it is read again after a restart.
        prefetch: Future[list[SourceRecord]] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.config.name}-reader") as reader:
            try:
                while not self._stop.is_set():
                    draining = self._drain_requested.is_set()
                    records = prefetch.result() if prefetch is not None else self.source.poll()
                    prefetch = reader.submit(self.source.poll) if records else None
                    self._loop_once(records, draining, caught_up=prefetch is None and self.source.caught_up)
            except DeliveryAborted:
                pass
            except BaseException as error:  # surfaced by the runtime; the thread must not die silently
                self.error = error

    def _loop_once(self, records: list[SourceRecord], draining: bool, caught_up: bool) -> None:
        if records:
            self._count(READ, len(records))
            self._accept(records)
        now = time.monotonic()
        drain_now = draining and caught_up
        if self._pending and (
            drain_now
            or self._pending_size >= self._processor_bytes
            or now - self._pending_since >= self._processor_seconds
        ):
            self._process_pending()
        self._flush(force=drain_now)
        self.source.checkpoint()
        if drain_now and not self._pending and not self._buffers:
            self._drain_requested.clear()
            self._drained.set()
        if not records:
            self._stop.wait(self._options.poll_seconds)

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def _accept(self, records: list[SourceRecord]) -> None:
        if self.config.lambda_processor is None:
            self._route(self._processor.process(records).outputs)
            return
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(records)
        self._pending_size += sum(len(record.data) for record in records)
        if self._pending_size >= self._processor_bytes:
            self._process_pending()

    def _process_pending(self) -> None:
        # One invocation per buffer of BufferSizeInMBs: split what was read beyond that.
        while self._pending:
            batch: list[SourceRecord] = []
            size = 0
            for record in self._pending:
                if batch and size + len(record.data) > self._processor_bytes:
                    break
                batch.append(record)
                size += len(record.data)
            del self._pending[: len(batch)]
            self._pending_size -= size
            processed = self._processor.process(batch)
            self._count("invocations", processed.invocations)
            self._count("failed_invocations", processed.failed_invocations)
            if processed.dropped:
                self._count(DROPPED, len(processed.dropped))
                self.source.delivered(processed.dropped)
            for document in processed.errors:
                self._add_error(document)
            self._route(processed.outputs)
            self._flush(force=False)  # destination intervals keep running during a long backlog
            self.source.checkpoint()
        self._pending_since = time.monotonic()

    def _route(self, outputs: list[Output]) -> None:
        dynamic = self.config.dynamic_partitioning
        for output in outputs:
            key: tuple[tuple[str, str], ...] = ()
            if dynamic:
                keys = output.partition_keys or {}
                try:
                    evaluate_prefix(
                        self.config.prefix,
                        arrival=utc_from_ms(output.source.arrival_ms),
                        partition_keys=keys,
                        dynamic_partitioning=True,
                    )
                except PrefixError as error:
                    self._add_error(
                        _error_document(
                            output.source,
                            output.data,
                            PARTITIONING_FAILED,
                            "DynamicPartitioning.MissingPartitionKey",
                            str(error),
                        )
                    )
                    continue
                key = tuple(sorted(keys.items()))
            self._buffer(("data", key), output.source, output.data)

    def _add_error(self, document: ErrorDocument) -> None:
        self._buffer(("error", document.output_type), document.source, document.line())

    def _buffer(self, key: tuple[str, Any], source: SourceRecord, data: bytes) -> None:
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = _Buffer(time.monotonic(), source.arrival_ms)
        buffer.add(source, data)
        if buffer.size >= self.config.buffer_bytes:  # SizeInMBs reached: deliver now
            del self._buffers[key]
            self._write(key, buffer)

    def _write(self, key: tuple[str, Any], buffer: _Buffer) -> None:
        if key[0] == "data":
            self._write_data(dict(key[1]), buffer)
        else:
            self._write_errors(str(key[1]), buffer)

    def _flush(self, *, force: bool) -> None:
        now = time.monotonic()
        # Data first: format conversion failures become error documents flushed in the same pass.
        for key in sorted(self._buffers, key=lambda item: item[0] == "error"):
            buffer = self._buffers.get(key)
            if buffer is None:  # written by size while an earlier buffer was written
                continue
            if (
                force
                or buffer.size >= self.config.buffer_bytes
                or now - buffer.opened >= self._destination_seconds
            ):
                del self._buffers[key]
                self._write(key, buffer)
        if force and self._buffers:  # errors produced by the data writes above
            self._flush(force=True)

    def _write_data(self, partition_keys: Mapping[str, str], buffer: _Buffer) -> None:
        config = self.config
        sources = [source for source, _ in buffer.items]
        arrival = utc_from_ms(buffer.oldest_arrival_ms)
        prefix = evaluate_prefix(
            config.prefix,
            arrival=arrival,
            partition_keys=partition_keys or None,
            dynamic_partitioning=config.dynamic_partitioning,
        )
        if self._converter is not None:
            converted = self._converter.convert([data for _, data in buffer.items])
            failed = set(converted.failures)
            for index, reason in converted.failures.items():
                source, data = buffer.items[index]
                document = _error_document(
                    source, data, FORMAT_CONVERSION_FAILED, "DataFormatConversion.MalformedData", reason
                )
                document.document["dataCatalogTable"] = self._catalog_table
                self._add_error(document)
            if converted.parquet is None:
                return
            body = converted.parquet
            extension = config.file_extension or ".parquet"
            sources = [source for index, (source, _) in enumerate(buffer.items) if index not in failed]
        else:
            body = compress(b"".join(data for _, data in buffer.items), config.compression)
            extension = config.file_extension or default_extension(config.compression)
        key = object_key(prefix, config.name, config.version_id, datetime.now(UTC), extension)
        self._writer.put(key, body)
        self._count("objects_written")
        self._count(DELIVERED, len(sources))
        self.source.delivered(sources)

    def _write_errors(self, output_type: str, buffer: _Buffer) -> None:
        config = self.config
        prefix = evaluate_prefix(
            config.error_prefix, arrival=utc_from_ms(buffer.oldest_arrival_ms), error_output_type=output_type
        )
        # Error output is never format-converted; it is compressed like the destination's data.
        compression = "UNCOMPRESSED" if config.format_conversion is not None else config.compression
        body = compress(b"".join(data for _, data in buffer.items), compression)
        key = object_key(
            prefix, config.name, config.version_id, datetime.now(UTC), default_extension(compression)
        )
        self._writer.put(key, body)
        self._count("objects_written")
        self._count(output_type, len(buffer.items))
        self.source.delivered(source for source, _ in buffer.items)


def _error_document(
    source: SourceRecord, data: bytes, output_type: str, code: str, message: str
) -> ErrorDocument:
    now = int(time.time() * 1000)
    return ErrorDocument(
        source,
        output_type,
        {
            "attemptsMade": 1,
            "arrivalTimestamp": source.arrival_ms,
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": now,
            "rawData": base64.b64encode(data).decode("ascii"),
            "sequenceNumber": source.sequence_number,
            "subSequenceNumber": 0,
        },
    )
