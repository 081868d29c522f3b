"""``ctr-billing demo``'s run, from an empty output folder to ``summary.json``, in the order it happens:

1. the output folders are emptied and a local pipeline started (``local.start_pipeline``: the embedded
   AWS, the template deployed on it, the Firehose runtime; under chaos, the runtime that is killed);
2. the records are chosen: simulated contacts (the provider directory seeded with their providers) or
   the lines of a file;
3. they are put into the Kinesis stream (``producer.put_records``), paced so that the slowest delivery
   stream is never far behind, with progress on a terminal, and the runtime drains;
4. the archive lock's queue is waited for and each raw version's Object Lock retention checked
   (``archive_lock``); the raw, vendor and lake buckets are downloaded into the output folder;
5. what they hold is counted beside what the simulator predicted (``summary``) into ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from firehose.local_aws.event_sources import wait_until_drained
from firehose.pipeline import chaos_run
from firehose.pipeline.archive_lock import raw_version_locks
from firehose.pipeline.chaos import ChaosPlan
from firehose.pipeline.errors import PipelineError
from firehose.pipeline.local import LocalPipeline, seed_provider_directory, start_pipeline
from firehose.pipeline.producer import input_records, put_records
from firehose.pipeline.progress import PutProgress
from firehose.pipeline.simulator import ConnectSimulator, billing_settings
from firehose.pipeline.summary import delivered_figures, expected_figures
from firehose.runtime.delivery import DROPPED
from firehose.runtime.processing import PROCESSING_FAILED
from transform.core.columns import DEFAULT_CSV_COLUMNS, LAKE_TABLE

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

DEFAULT_CONTACTS = 5_000
DEFAULT_SEED = 7
DEFAULT_BUFFER_INTERVAL = 1.0
# What a run writes into its output folder (removed first, so nothing of an earlier run is counted).
OUTPUT_FOLDERS = ("raw", "vendor", "lake", "state", "logs")
SUMMARY_FILE = "summary.json"


def _default_build_dir() -> Path:
    return Path(tempfile.gettempdir()) / "ctr-billing-build"


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    contacts: int = DEFAULT_CONTACTS
    seed: int = DEFAULT_SEED
    # Put each line of this file instead of simulated contacts (then nothing is predicted).
    input: Path | None = None
    # Caps every Firehose buffer interval (None: the template's own).
    buffer_interval: float | None = DEFAULT_BUFFER_INTERVAL
    # The seed of chaos mode's faults and kills (None: no chaos).
    chaos: int | None = None
    # Run the scheduled settlement Lambda (Athena on the embedded AWS) for each day the lake holds.
    settle: bool = False
    build_dir: Path = field(default_factory=_default_build_dir)


def run_demo(options: DemoOptions, log: TextIO) -> dict[str, Any]:
    """Run the demo; returns the summary it wrote to ``summary.json``. Status goes to ``log``."""
    started = time.monotonic()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    for folder in OUTPUT_FOLDERS:
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / SUMMARY_FILE).unlink(missing_ok=True)

    print("starting the embedded AWS and deploying cloudformation/template.yaml ...", file=log)
    plan = None if options.chaos is None else ChaosPlan(seed=options.chaos)
    pipeline = start_pipeline(out, options.build_dir, options.buffer_interval, plan, options.contacts)
    try:
        summary = _run(pipeline, options, started, log)
    finally:
        pipeline.stop()
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from firehose.offline.report import demo_report  # plotly, only once the run is done

    report = demo_report(out)
    if report is not None:
        print(f"report of the busiest day: {report}", file=log)
    return summary


def settle_days(pipeline: LocalPipeline, log: TextIO) -> dict[str, int]:
    """Invoke the stack's settlement Lambda, as its schedule would, for each UTC day the lake bucket
    holds a partition of (in order): Athena on the embedded AWS runs its query, and the settled files land
    in the vendor bucket's ``settled/``. Returns the rows settled per day."""
    import boto3
    from botocore.config import Config

    s3: S3Client = pipeline.aws.client("s3")
    days: set[str] = set()
    partition = re.compile(LAKE_TABLE + r"/year=([0-9]{4})/month=([0-9]{2})/day=([0-9]{2})/")
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=pipeline.stack.resources["LakeBucket"], Prefix=LAKE_TABLE + "/"
    ):
        for item in page.get("Contents", []):
            if found := partition.match(item["Key"]):
                days.add("-".join(found.groups()))
    environment = pipeline.aws.environment
    client = boto3.client(
        "lambda",
        endpoint_url=environment["AWS_ENDPOINT_URL"],
        region_name=environment["AWS_REGION"],
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        config=Config(read_timeout=960, retries={"max_attempts": 1}),
    )
    function = pipeline.stack.resources["SettlementExportFunction"]
    settled: dict[str, int] = {}
    for day in sorted(days):
        answer = client.invoke(FunctionName=function, Payload=json.dumps({"date": day}).encode())
        result = json.loads(answer["Payload"].read())
        if "FunctionError" in answer:
            raise PipelineError(f"the settlement Lambda failed for {day}: {result.get('errorType')}")
        settled[day] = int(result["rows"])
        print(f"settled {day}: {result['rows']} rows -> {result['csv']}", file=log)
    return settled


def archive_locks(pipeline: LocalPipeline) -> tuple[int, int]:
    """(raw ``ctr/`` versions, how many hold their Object Lock retention) once the archive lock's queue
    is empty: the stack locks each raw version as it arrives."""
    sqs: SQSClient = pipeline.aws.client("sqs")
    # Versions still waiting after the timeout are counted below as unlocked: a mismatch, not a crash.
    with contextlib.suppress(TimeoutError):
        wait_until_drained(sqs, pipeline.stack.resources["ArchiveLockQueue"], timeout=120.0)
    s3: S3Client = pipeline.aws.client("s3")
    return raw_version_locks(s3, pipeline.stack.resources["RawBucket"])


def _run(pipeline: LocalPipeline, options: DemoOptions, started: float, log: TextIO) -> dict[str, Any]:
    vendor_environment = pipeline.function_environment("TransformCsvFunction")
    simulator: ConnectSimulator | None = None
    tap: chaos_run.BillableTap | None = None
    records: Iterable[tuple[bytes, str]]
    total: int | None = None  # the records to put, for the progress bar (counted only on a terminal)
    if options.input is None:
        # The simulator bills by the vendor transform's own settings, so its truth is what to expect.
        simulator = ConnectSimulator(
            options.contacts, seed=options.seed, **billing_settings(vendor_environment)
        )
        seed_provider_directory(pipeline, simulator.providers)
        records = ((record.data, record.partition_key) for record in simulator.records())
        if log.isatty():  # the same seed gives the same records: count them for the bar's total
            total = sum(
                1
                for _ in ConnectSimulator(
                    options.contacts, seed=options.seed, **billing_settings(vendor_environment)
                ).records()
            )
        if options.chaos is not None:
            tap = chaos_run.BillableTap(vendor_environment)
            records = tap.records(records)
    else:
        records = input_records(options.input)
        if log.isatty():
            with options.input.open("rb") as lines:
                total = sum(1 for _ in lines)

    print(
        f"stack {pipeline.stack.name} deployed; putting records into {pipeline.stream_name()} ...", file=log
    )
    kinesis: KinesisClient = pipeline.aws.client("kinesis")
    pipeline_started = time.monotonic()
    with (
        pipeline.trimming(),
        PutProgress(log, pipeline.runtime.counts, pipeline.stream_labels(), total) as progress,
    ):

        def after_batch(records_put: int) -> None:
            progress.put(records_put)
            pipeline.hold_back(records_put)

        records_put = put_records(kinesis, pipeline.stream_name(), records, after_batch)
        progress.draining(records_put)
        pipeline.drain(timeout=max(120.0, records_put / 100))
    seconds = time.monotonic() - pipeline_started
    memory = pipeline.memory()  # before the downloads below

    raw_versions, raw_versions_locked = archive_locks(pipeline)
    settled = settle_days(pipeline, log) if options.settle else None
    pipeline.download_buckets(options.out)
    streams = pipeline.stream_counts()
    vendor = streams.get("VendorDeliveryStream", {})
    prefixes = pipeline.data_prefixes()
    delivered = delivered_figures(
        options.out, prefixes, vendor_environment.get("CSV_COLUMNS") or ",".join(DEFAULT_CSV_COLUMNS)
    )
    truth = simulator.truth if simulator is not None else None
    expected = expected_figures(
        truth, ledger=bool(vendor_environment.get("LEDGER_TABLE")), delivered=delivered
    )
    summary: dict[str, Any] = {
        "records_put": records_put,
        **expected,
        **delivered,
        "raw_versions": raw_versions,
        "raw_versions_locked": raw_versions_locked,
        "processing_failed": vendor.get(PROCESSING_FAILED, 0),
        "dropped": vendor.get(DROPPED, 0),
        "streams": streams,
        "seconds": round(seconds, 2),
        "records_per_second": round(records_put / seconds, 1) if seconds > 0 else None,
        "total_seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": memory,
        "source": str(options.input) if options.input is not None else "simulator",
        "stack": {"name": pipeline.stack.name, "skipped_resource_types": list(pipeline.stack.skipped_types)},
    }
    if settled is not None:
        summary["settled"] = settled
    if truth is not None:
        summary["simulation"] = {"seed": options.seed, "contacts": options.contacts, **truth.as_dict()}
    if tap is not None:
        s3: S3Client = pipeline.aws.client("s3")
        summary.update(
            chaos_run.chaos_summary(
                pipeline.runtime, tap, s3, pipeline.stack.resources["VendorBucket"], prefixes["vendor"]
            )
        )
    return summary
