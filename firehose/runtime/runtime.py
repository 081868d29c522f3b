"""The local Firehose runtime: every delivery stream the embedded Firehose API describes, at work.

Nothing here names a resource: delivery streams come from ListDeliveryStreams/DescribeDeliveryStream,
their Lambda processors from GetFunctionConfiguration, their Parquet schema from Glue's GetTable.

With ``watch_seconds`` the configuration is live, as in AWS: every ``watch_seconds`` the runtime lists
and describes the delivery streams again; one created since starts (from LATEST at its creation), one
whose ``VersionId`` changed (``UpdateDestination``: buffering hints, processors, prefixes) is drained
under its old configuration and continues from its checkpoints under the new one, and one deleted
stops. Changes thus apply within ``watch_seconds`` plus one drain, well inside one buffer interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from firehose.runtime.config import DeliveryStreamConfig
from firehose.runtime.delivery import DeliveryStreamWorker, WorkerOptions
from firehose.runtime.lambda_invoker import LambdaFunction, LocalLambda
from firehose.runtime.log_shipper import LogShipper

if TYPE_CHECKING:
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client


class AwsEndpoint(Protocol):
    region: str

    def client(self, service: str, *, max_attempts: int = 3) -> Any: ...

    @property
    def environment(self) -> dict[str, str]: ...


class RuntimeFailure(RuntimeError):
    """A delivery stream's worker failed or did not drain in time."""


class FirehoseRuntime:
    def __init__(
        self,
        aws: AwsEndpoint,
        options: WorkerOptions,
        *,
        watch_seconds: float | None = None,
        ship_logs: bool = False,
    ) -> None:
        self._aws = aws
        self._options = options
        self._abort = threading.Event()
        self.workers: list[DeliveryStreamWorker] = []
        self._functions: dict[str, LocalLambda] = {}
        self._watch_seconds = watch_seconds
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        # Held while the set of workers changes (the watcher) or is drained (drain).
        self._workers_lock = threading.RLock()
        # Counts of workers a reconfiguration replaced, by delivery stream: counts() adds them.
        self._retired: dict[str, dict[str, int]] = {}
        self.reconfigurations = 0
        self.watch_errors = 0
        self.log_shipper = LogShipper(aws) if ship_logs else None

    def start(self) -> FirehoseRuntime:
        firehose: FirehoseClient = self._aws.client("firehose")
        for name in _delivery_stream_names(firehose):
            description = firehose.describe_delivery_stream(DeliveryStreamName=name)[
                "DeliveryStreamDescription"
            ]
            worker = self._worker(description)
            if worker is not None:
                self.workers.append(worker)
        for worker in self.workers:
            worker.start()
        if self.log_shipper is not None:
            self.log_shipper.start()
        if self._watch_seconds is not None:
            self._watcher = threading.Thread(target=self._watch, name="firehose-config-watch", daemon=True)
            self._watcher.start()
        return self

    def _worker(self, description: Mapping[str, Any]) -> DeliveryStreamWorker | None:
        if description.get("DeliveryStreamType") != "KinesisStreamAsSource":
            return None
        config = DeliveryStreamConfig.from_description(description)
        processor = config.lambda_processor
        function = None
        if processor is not None:
            lambda_client: LambdaClient = self._aws.client("lambda")
            function = self._function(lambda_client, processor.parameters["LambdaArn"])
        glue: GlueClient = self._aws.client("glue")
        kinesis: KinesisClient = self._aws.client("kinesis")
        # S3 retries are the runtime's own (never give up); botocore's are for the other calls.
        s3: S3Client = self._aws.client("s3", max_attempts=1)
        return DeliveryStreamWorker(
            config,
            region=self._aws.region,
            kinesis=kinesis,
            s3=s3,
            glue=glue,
            function=function,
            options=self._options,
            abort=self._abort,
        )

    def _function(self, lambda_client: LambdaClient, arn: str) -> LocalLambda:
        if arn not in self._functions:
            function = LambdaFunction.resolve(lambda_client, arn)
            log_path = self._options.log_dir / f"{function.name}.log"
            self._functions[arn] = LocalLambda(function, self._aws.environment, log_path)
            if self.log_shipper is not None:
                self.log_shipper.follow(function.name, log_path)
        return self._functions[arn]

    # --- live configuration ------------------------------------------------------------------------

    def _watch(self) -> None:
        assert self._watch_seconds is not None
        firehose: FirehoseClient = self._aws.client("firehose")
        while not self._watch_stop.wait(self._watch_seconds):
            try:
                self.refresh(firehose)
            except Exception:  # a failed look is retried at the next; the runtime keeps running
                self.watch_errors += 1

    def refresh(self, firehose: FirehoseClient | None = None) -> None:
        """Bring the workers in line with what DescribeDeliveryStream says now (see the module's doc)."""
        firehose = firehose or self._aws.client("firehose")
        names = set(_delivery_stream_names(firehose))
        with self._workers_lock:
            if self._watch_stop.is_set():
                return
            current = {worker.config.name: worker for worker in self.workers}
            for name, worker in current.items():
                if name not in names:  # deleted: its records are no longer delivered anywhere
                    worker.stop()
                    self._retire(worker)
            for name in sorted(names):
                description = firehose.describe_delivery_stream(DeliveryStreamName=name)[
                    "DeliveryStreamDescription"
                ]
                old = current.get(name)
                if old is not None and str(description.get("VersionId") or "1") == old.config.version_id:
                    continue
                replacement = self._worker(description)
                if replacement is None:
                    continue
                if old is not None:
                    # What the old configuration buffered is delivered under it; the new one continues
                    # from the checkpoints that delivery leaves.
                    old.request_drain()
                    old.wait_drained(300.0)
                    old.stop()
                    self._retire(old)
                    self.reconfigurations += 1
                self.workers.append(replacement)
                replacement.start()

    def _retire(self, worker: DeliveryStreamWorker) -> None:
        self.workers.remove(worker)
        total = self._retired.setdefault(worker.config.name, {})
        for key, value in worker.snapshot().items():
            total[key] = total.get(key, 0) + value

    def drain(self, timeout: float = 300.0) -> None:
        """Return once every delivery stream has delivered everything in its source so far."""
        with self._workers_lock:
            workers = list(self.workers)
        for worker in workers:
            worker.request_drain()
        deadline = time.monotonic() + timeout
        for worker in workers:
            if not worker.wait_drained(max(0.0, deadline - time.monotonic())):
                self._raise_if_failed()
                raise RuntimeFailure(
                    f"delivery stream {worker.config.name} did not drain within {timeout:.0f}s"
                )
        self._raise_if_failed()
        if self.log_shipper is not None:
            self.log_shipper.flush()

    def _raise_if_failed(self) -> None:
        for worker in self.workers:
            if worker.error is not None:
                raise RuntimeFailure(
                    f"delivery stream {worker.config.name} failed: {type(worker.error).__name__}"
                ) from worker.error

    def stop(self, *, drain: bool = True, timeout: float = 300.0) -> None:
        """Drain and flush (the default), or abandon buffers as a crash would (``drain=False``):
        checkpoints only ever cover delivered records, so a restart re-reads the rest."""
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout)
            self._watcher = None
        try:
            if drain and self.workers:
                self.drain(timeout)
        finally:
            # After a drain nothing is pending; otherwise writes still being retried give up (their
            # records stay unacknowledged and are read again from the checkpoint on restart).
            self._abort.set()
            for worker in self.workers:
                worker.stop()
            for function in self._functions.values():
                function.close()
            if self.log_shipper is not None:
                self.log_shipper.stop()

    def lambda_peak_rss_mb(self) -> dict[str, float]:
        """Per Lambda function, the largest peak RSS (MiB) of its warm execution environments (Linux)."""
        return {function.function.name: function.peak_rss_mb() for function in self._functions.values()}

    def counts(self) -> dict[str, dict[str, int]]:
        counts = {name: dict(retired) for name, retired in self._retired.items()}
        for worker in list(self.workers):
            total = counts.setdefault(worker.config.name, {})
            for key, value in worker.snapshot().items():
                total[key] = total.get(key, 0) + value
        return counts

    def delivered_positions(self) -> dict[str, dict[str, int]]:
        """Per source stream and shard, the sequence number up to which every delivery stream reading it
        has delivered everything (the lowest of their checkpoints; a shard one of them has not
        checkpointed yet is left out)."""
        by_stream: dict[str, list[dict[str, int]]] = {}
        for worker in self.workers:
            watermarks = {
                shard_id: progress.watermark
                for shard_id, progress in list(worker.source.progress.items())
                if progress.watermark is not None
            }
            by_stream.setdefault(worker.config.source_stream_arn, []).append(watermarks)
        positions: dict[str, dict[str, int]] = {}
        for arn, readers in by_stream.items():
            shared = set.intersection(*(set(reader) for reader in readers))
            positions[arn] = {shard: min(reader[shard] for reader in readers) for shard in shared}
        return positions

    def pending(self) -> Mapping[str, int]:
        return {worker.config.name: worker.source.pending for worker in self.workers}

    def __enter__(self) -> FirehoseRuntime:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop(drain=exc_type is None)


def _delivery_stream_names(firehose: FirehoseClient) -> list[str]:
    names: list[str] = []
    page = firehose.list_delivery_streams(Limit=100)
    while True:
        names.extend(page["DeliveryStreamNames"])
        if not page.get("HasMoreDeliveryStreams") or not page["DeliveryStreamNames"]:
            return names
        page = firehose.list_delivery_streams(
            Limit=100, ExclusiveStartDeliveryStreamName=page["DeliveryStreamNames"][-1]
        )


def default_options(state_dir: Path, **overrides: Any) -> WorkerOptions:
    return WorkerOptions(
        state_dir=state_dir, log_dir=overrides.pop("log_dir", state_dir / "logs"), **overrides
    )
