"""A local pipeline: the embedded AWS, the template deployed on it, and the Firehose runtime over it.

What ``ctr-billing demo`` (``firehose.pipeline.demo``) and ``ctr-billing serve`` both start, and what
they ask of it while it runs: where to put records, how far the delivery streams have got, what the
buckets hold.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack, StackDeployError, deploy_stack, lambda_zip
from firehose.pipeline import chaos_run
from firehose.pipeline.chaos import ChaosPlan
from firehose.pipeline.errors import PipelineError
from firehose.pipeline.simulator import Provider
from firehose.runtime import FirehoseRuntime, RuntimeFailure, default_options
from firehose.runtime.delivery import processed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client

# The template's buckets and the delivery stream writing each, by the folder the demo downloads it into.
DESTINATIONS = {
    "raw": ("RawBucket", "RawDeliveryStream"),
    "vendor": ("VendorBucket", "VendorDeliveryStream"),
    "lake": ("LakeBucket", "LakeDeliveryStream"),
}
STREAMS = tuple(stream for _, stream in DESTINATIONS.values())
# Records the producer may run ahead of the slowest delivery stream (the embedded Kinesis holds them).
MAX_BACKLOG = 20_000
# How often what every delivery stream has delivered is trimmed from the embedded Kinesis.
TRIM_SECONDS = 0.5
# How often the runtime reads the delivery streams' configurations again (UpdateDestination, new
# delivery streams): changes apply well within one buffer interval, as in AWS.
WATCH_SECONDS = 1.0


@dataclass
class LocalPipeline:
    aws: EmbeddedAws
    stack: DeployedStack
    runtime: FirehoseRuntime

    def stream_name(self) -> str:
        return self.stack.resources["ContactTraceRecordsStream"]

    def stream_labels(self) -> dict[str, str]:
        """Delivery stream names as deployed -> the template's logical ids."""
        return {self.stack.resources[logical]: logical for logical in STREAMS}

    def stream_counts(self) -> dict[str, dict[str, Any]]:
        """Each delivery stream's counts and name as deployed, by the template's logical id."""
        labels = self.stream_labels()
        return {
            labels.get(name, name): {"name": name, **counts}
            for name, counts in sorted(self.runtime.counts().items())
        }

    def slowest_processed(self) -> int:
        """Records the slowest delivery stream has read and finished (delivered, dropped or errored)."""
        return min((processed(counts) for counts in self.runtime.counts().values()), default=0)

    def trim_delivered(self) -> int:
        """Let the embedded Kinesis forget what every delivery stream has delivered (flat memory)."""
        return sum(
            self.aws.trim_kinesis(arn, positions)
            for arn, positions in self.runtime.delivered_positions().items()
        )

    def hold_back(self, put: int, stall_seconds: float = 30.0) -> None:
        """Wait while the slowest delivery stream is more than ``MAX_BACKLOG`` records behind ``put`` (and
        let the embedded Kinesis forget what all have delivered), so memory stays flat however many
        records are put. Gives up waiting if nothing moves for ``stall_seconds``: pacing must never hang
        the producer."""
        done = self.slowest_processed()
        moved = time.monotonic()
        while put - done > MAX_BACKLOG and time.monotonic() - moved < stall_seconds:
            self.trim_delivered()
            time.sleep(0.05)
            now = self.slowest_processed()
            if now != done:
                done, moved = now, time.monotonic()

    @contextmanager
    def trimming(self, every: float = TRIM_SECONDS) -> Iterator[None]:
        """Trim what has been delivered in the background while the block runs."""
        stop = threading.Event()

        def trim() -> None:
            while not stop.wait(every):
                self.trim_delivered()

        thread = threading.Thread(target=trim, name="kinesis-trimmer", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def drain(self, timeout: float) -> None:
        try:
            self.runtime.drain(timeout=timeout)
        except RuntimeFailure as error:
            raise PipelineError(str(error)) from error

    def memory(self) -> dict[str, float | None]:
        """Peak RSS (MiB) so far of this process, of the largest Lambda worker, and of the embedded AWS
        (None when it serves from this process)."""
        workers = self.runtime.lambda_peak_rss_mb().values()
        return {
            "pipeline_process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "lambda_worker_mb": max(workers, default=None),
            "embedded_aws_mb": self.aws.peak_rss_mb() if self.aws.isolated else None,
        }

    def function_environment(self, logical_id: str) -> dict[str, str]:
        client: LambdaClient = self.aws.client("lambda")
        configuration = client.get_function_configuration(FunctionName=self.stack.resources[logical_id])
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        return {str(key): str(value) for key, value in variables.items()}

    def data_prefix(self, logical_id: str) -> str:
        """The folders of a delivery stream's data prefix before its first expression (e.g. ``billing/``)."""
        client: FirehoseClient = self.aws.client("firehose")
        description = client.describe_delivery_stream(DeliveryStreamName=self.stack.resources[logical_id])[
            "DeliveryStreamDescription"
        ]
        prefix = description["Destinations"][0]["ExtendedS3DestinationDescription"].get("Prefix", "")
        static = prefix.split("!{", 1)[0]
        return static[: static.rfind("/") + 1]

    def data_prefixes(self) -> dict[str, str]:
        """``data_prefix`` of the delivery stream writing each bucket, by the bucket's folder."""
        return {folder: self.data_prefix(stream) for folder, (_, stream) in DESTINATIONS.items()}

    def download_buckets(self, out: Path) -> None:
        """The raw, vendor and lake buckets into ``out``/raw, vendor, lake (object keys kept as paths)."""
        s3: S3Client = self.aws.client("s3")
        for folder, (bucket, _) in DESTINATIONS.items():
            download_bucket(s3, self.stack.resources[bucket], out / folder)

    def stop(self) -> None:
        """Stop at once (nothing is drained): the runtime, then the embedded AWS."""
        try:
            self.runtime.stop(drain=False)
        finally:
            self.aws.stop()


def start_pipeline(
    state_dir: Path,
    build_dir: Path,
    buffer_interval: float | None,
    chaos: ChaosPlan | None = None,
    expected: int = 0,
    before_runtime: Callable[[EmbeddedAws, DeployedStack], None] | None = None,
    *,
    isolated: bool = True,
    port: int = 0,
) -> LocalPipeline:
    """Embedded AWS, the deployed stack, then the runtime over it (``before_runtime`` runs in between).

    The embedded AWS runs in a child process by default (``isolated``): this process then talks to it
    only over HTTP, as to real AWS, uses a core of its own for the runtime, and its memory is the
    pipeline's alone; what the embedded AWS stores grows with the data in the child. Under ``chaos``
    the runtime is the one that is killed and restarted (``expected`` records spread its kills).
    Otherwise the runtime's configuration is live (``WATCH_SECONDS``) and the Lambdas' logs and EMF
    metrics go to the embedded CloudWatch. ``port`` 0 is a free one."""
    aws = EmbeddedAws(isolated=isolated, port=port).start()
    try:
        stack = deploy_stack(aws, lambda_zip(build_dir), parameters=chaos_run.stack_parameters(chaos))
        if before_runtime is not None:
            before_runtime(aws, stack)
        options = default_options(
            state_dir / "state", log_dir=state_dir / "logs", buffer_interval_seconds=buffer_interval
        )
        runtime = (
            FirehoseRuntime(aws, options, watch_seconds=WATCH_SECONDS, ship_logs=True).start()
            if chaos is None
            else chaos_run.chaos_runtime(
                aws, options, chaos, expected, stack.outputs["ContactTraceRecordsCSVBucket"]
            )
        )
    except StackDeployError as error:
        aws.stop()
        raise PipelineError(f"the stack did not deploy on the embedded AWS: {error}") from error
    except BaseException:
        aws.stop()
        raise
    return LocalPipeline(aws, stack, runtime)


def seed_provider_directory(pipeline: LocalPipeline, providers: Iterable[Provider]) -> int:
    """The provider directory's entries for the simulated providers, written with the directory
    module's own checks (``firehose.offline.directory_files.seed_directory``)."""
    from firehose.offline.directory_files import seed_directory

    table = pipeline.stack.outputs.get("ProviderDirectoryTable") or pipeline.stack.resources.get(
        "ProviderDirectoryTable"
    )
    if not table:
        return 0
    dynamodb: DynamoDBClient = pipeline.aws.client("dynamodb")
    return seed_directory(dynamodb, table, [provider.directory_entry() for provider in providers])


def download_bucket(s3: S3Client, bucket: str, target: Path) -> list[str]:
    """Every object of the bucket under ``target``, its key as the path; returns the keys."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            path = target / key
            # A key such as ``../x`` must not write outside the output folder.
            if not path.resolve().is_relative_to(target.resolve()):
                raise PipelineError(f"object key escapes the output folder in bucket {bucket}")
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(path))
            keys.append(key)
    return keys
