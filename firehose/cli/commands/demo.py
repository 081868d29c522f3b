"""``ctr-billing demo``: the whole pipeline on this machine, end to end, with simulated Connect traffic.

    ctr-billing demo [--contacts N] [--seed S] [--input FILE] [--out DIR] [--buffer-interval SECONDS]

Starts the embedded AWS, deploys ``cloudformation/template.yaml`` through its CloudFormation API,
seeds the provider directory, puts CTRs into the Kinesis stream (500 per PutRecords), runs the local
Firehose runtime until every delivery stream has drained, downloads the raw, vendor and lake buckets
into DIR/raw, DIR/vendor, DIR/lake (keys kept as paths) and writes DIR/summary.json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from firehose.cli.errors import CommandError
from firehose.local_aws.embedded import DeployedStack, EmbeddedAws, StackDeployError, deploy_stack, lambda_zip
from firehose.pipeline import chaos_run
from firehose.pipeline.chaos import ChaosPlan
from firehose.pipeline.simulator import ConnectSimulator, Provider, billing_settings
from firehose.runtime import FirehoseRuntime, RuntimeFailure, default_options
from transform.core.columns import DEFAULT_CSV_COLUMNS

DEFAULT_CONTACTS = 5_000
DEFAULT_SEED = 7
DEFAULT_OUT = Path("out/demo")
DEFAULT_BUFFER_INTERVAL = 1.0
PUT_BATCH = 500
# Kinesis PutRecords limits: 5 MB per request, 1 MB per record (data + partition key).
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
BUCKET_FOLDERS = {"raw": "RawBucket", "vendor": "VendorBucket", "lake": "LakeBucket"}
STREAMS = ("RawDeliveryStream", "VendorDeliveryStream", "LakeDeliveryStream")
# Outcomes of a record in a delivery stream's counts.
OUTCOMES = ("delivered", "dropped", "processing-failed", "format-conversion-failed", "partitioning-failed")
# Records the producer may run ahead of the slowest delivery stream (the embedded Kinesis holds them).
MAX_BACKLOG = 20_000


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally on simulated (or given) CTRs",
        description=(
            "Start an embedded AWS (moto on 127.0.0.1), deploy the CloudFormation template, put CTRs "
            "into the Kinesis stream, run the local Firehose runtime until it drains, and download "
            "the raw, vendor and lake buckets into --out."
        ),
    )
    parser.add_argument(
        "--contacts",
        metavar="N",
        type=_non_negative,
        default=DEFAULT_CONTACTS,
        help=f"simulated contacts (default: {DEFAULT_CONTACTS})",
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=int,
        default=DEFAULT_SEED,
        help=f"simulator seed (default: {DEFAULT_SEED}; same seed, same CTRs)",
    )
    parser.add_argument(
        "--input",
        metavar="FILE",
        type=Path,
        help="put each line of FILE (without its line ending) as one record, unchanged",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--buffer-interval",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_BUFFER_INTERVAL,
        help=f"cap every Firehose buffer interval for the demo (default: {DEFAULT_BUFFER_INTERVAL}; the template is unchanged)",
    )
    parser.add_argument(
        "--chaos",
        type=int,
        metavar="SEED",
        help="inject seeded faults (S3, Kinesis, transform, 3 kills) and report lost / duplicate vendor rows",
    )
    parser.set_defaults(handler=run)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


# --- a running local pipeline (shared with ``serve``) ----------------------------------------------


@dataclass
class LocalPipeline:
    aws: EmbeddedAws
    stack: DeployedStack
    runtime: FirehoseRuntime

    def stream_name(self) -> str:
        return self.stack.resources["ContactTraceRecordsStream"]

    def slowest_processed(self) -> int:
        """Records the slowest delivery stream has read and finished (delivered, dropped or errored)."""
        counts = self.runtime.counts().values()
        return min((sum(c.get(outcome, 0) for outcome in OUTCOMES) for c in counts), default=0)

    def trim_delivered(self) -> int:
        """Let the embedded Kinesis forget what every delivery stream has delivered (flat memory)."""
        return sum(
            self.aws.trim_kinesis(arn, positions)
            for arn, positions in self.runtime.delivered_positions().items()
        )

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
        configuration = self.aws.client("lambda").get_function_configuration(
            FunctionName=self.stack.resources[logical_id]
        )
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        return {str(key): str(value) for key, value in variables.items()}


def start_pipeline(
    state_dir: Path,
    build_dir: Path,
    buffer_interval: float | None,
    chaos: ChaosPlan | None = None,
    expected: int = 0,
    before_runtime: Callable[[EmbeddedAws, DeployedStack], None] | None = None,
    *,
    isolated: bool = True,
) -> LocalPipeline:
    """Embedded AWS, the deployed stack, then the runtime over it (``before_runtime`` runs in between).

    The embedded AWS runs in a child process by default (``isolated``): this process then talks to it
    only over HTTP, as to real AWS, uses a core of its own for the runtime, and its memory is the
    pipeline's alone; what the embedded AWS stores grows with the data in the child."""
    aws = EmbeddedAws(isolated=isolated).start()
    try:
        stack = deploy_stack(aws, lambda_zip(build_dir), parameters=chaos_run.stack_parameters(chaos))
        if before_runtime is not None:
            before_runtime(aws, stack)
        options = default_options(
            state_dir / "state", log_dir=state_dir / "logs", buffer_interval_seconds=buffer_interval
        )
        runtime = (
            FirehoseRuntime(aws, options).start()
            if chaos is None
            else chaos_run.chaos_runtime(
                aws, options, chaos, expected, stack.outputs["ContactTraceRecordsCSVBucket"]
            )
        )
    except StackDeployError as error:
        aws.stop()
        raise CommandError(f"the stack did not deploy on the embedded AWS: {error}") from error
    except BaseException:
        aws.stop()
        raise
    return LocalPipeline(aws, stack, runtime)


def seed_provider_directory(pipeline: LocalPipeline, providers: Iterable[Provider]) -> int:
    """Hook: the provider directory's entries for the simulated providers, written with the directory
    module's own checks (``firehose.offline.directory_files.seed_directory``)."""
    from firehose.offline.directory_files import seed_directory

    table = pipeline.stack.outputs.get("ProviderDirectoryTable") or pipeline.stack.resources.get(
        "ProviderDirectoryTable"
    )
    if not table:
        return 0
    return seed_directory(pipeline.aws.client("dynamodb"), table, [p.directory_entry() for p in providers])


# --- producing records -----------------------------------------------------------------------------


def input_records(path: Path) -> Iterator[tuple[bytes, str]]:
    """Each line of the file, without its line ending, as one record's bytes, unchanged."""
    with path.open("rb") as source:
        for number, line in enumerate(source, start=1):
            data = line.rstrip(b"\n")
            data = data.removesuffix(b"\r")
            yield data, f"line-{number}"


def put_all(
    kinesis: Any, stream: str, records: Iterable[tuple[bytes, str]], progress: Callable[[int], None]
) -> int:
    """PutRecords in batches of 500 (and under 5 MB); records Kinesis refuses are retried."""
    put = 0
    batch: list[dict[str, Any]] = []
    size = 0
    for data, partition_key in records:
        record_size = len(data) + len(partition_key.encode())
        if record_size > MAX_RECORD_BYTES:
            raise CommandError(f"record {put + len(batch) + 1} is over Kinesis's 1 MB record limit")
        if batch and (len(batch) == PUT_BATCH or size + record_size > MAX_BATCH_BYTES):
            put += _put_batch(kinesis, stream, batch)
            progress(put)
            batch, size = [], 0
        batch.append({"Data": data, "PartitionKey": partition_key})
        size += record_size
    if batch:
        put += _put_batch(kinesis, stream, batch)
        progress(put)
    return put


def _put_batch(kinesis: Any, stream: str, batch: list[dict[str, Any]]) -> int:
    pending = batch
    for attempt in range(10):
        response = kinesis.put_records(StreamName=stream, Records=pending)
        if not response["FailedRecordCount"]:
            return len(batch)
        pending = [
            record
            for record, result in zip(pending, response["Records"], strict=True)
            if "ErrorCode" in result
        ]
        time.sleep(0.05 * 2**attempt)
    raise CommandError("Kinesis kept refusing records; giving up after 10 attempts")


# --- results ---------------------------------------------------------------------------------------


def download_bucket(s3: Any, bucket: str, target: Path) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = item["Key"]
            path = target / key
            if not path.resolve().is_relative_to(target.resolve()):
                raise CommandError(f"object key escapes the output folder in bucket {bucket}")
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(path))
            keys.append(key)
    return keys


def count_lines(folder: Path, pattern: str, *, gzipped: bool) -> int:
    total = 0
    for path in sorted(folder.glob(pattern)):
        if not path.is_file():
            continue
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as source:
            total += sum(1 for _ in source)
    return total


def count_parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(folder.rglob("*.parquet")))


def sum_parquet_column(folder: Path, column: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for path in sorted(folder.rglob("*.parquet")):
        total += pc.sum(pq.read_table(path, columns=[column])[column]).as_py() or 0
    return total


@dataclass(frozen=True)
class VendorFigures:
    """Sums over the streamed vendor CSV rows; None when CSV_COLUMNS leaves the column out."""

    seconds: int | None
    outbound_rows: int | None


def vendor_figures(folder: Path, csv_columns: str) -> VendorFigures:
    columns = [name.strip() for name in csv_columns.split(",")]
    duration = columns.index("duration_seconds") if "duration_seconds" in columns else None
    call_type = columns.index("call_type") if "call_type" in columns else None
    seconds = outbound = 0
    for path in sorted(folder.glob("**/*")):
        if not path.is_file():
            continue
        with path.open(newline="", encoding="utf-8") as source:
            for row in csv.reader(source):
                if duration is not None:
                    seconds += int(row[duration])
                if call_type is not None:
                    outbound += row[call_type] == "OUTBOUND"
    return VendorFigures(
        seconds if duration is not None else None, outbound if call_type is not None else None
    )


def data_prefix(pipeline: LocalPipeline, logical_id: str) -> str:
    """The folders of a delivery stream's data prefix before its first expression (e.g. ``billing/``)."""
    description = pipeline.aws.client("firehose").describe_delivery_stream(
        DeliveryStreamName=pipeline.stack.resources[logical_id]
    )["DeliveryStreamDescription"]
    prefix: str = description["Destinations"][0]["ExtendedS3DestinationDescription"].get("Prefix", "")
    static = prefix.split("!{", 1)[0]
    return static[: static.rfind("/") + 1]


def hold_back(pipeline: LocalPipeline, put: int, stall_seconds: float = 30.0) -> None:
    """Wait while the slowest delivery stream is more than ``MAX_BACKLOG`` records behind ``put`` (and
    let the embedded Kinesis forget what all have delivered). Gives up waiting if nothing moves for
    ``stall_seconds``: pacing must never hang the producer."""
    processed = pipeline.slowest_processed()
    moved = time.monotonic()
    while put - processed > MAX_BACKLOG and time.monotonic() - moved < stall_seconds:
        pipeline.trim_delivered()
        time.sleep(0.05)
        now = pipeline.slowest_processed()
        if now != processed:
            processed, moved = now, time.monotonic()


class Progress:
    """One status line, rewritten in place on a terminal, every half second while the demo runs."""

    def __init__(self, stream: TextIO, total: int | None, pipeline: LocalPipeline) -> None:
        self._stream = stream
        self._total = total
        self._pipeline = pipeline
        self.put = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tty = stream.isatty()
        self._last = 0.0

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._show(final=True)

    def update(self, put: int) -> None:
        """Called after each PutRecords; holds the producer back while the slowest delivery stream is
        more than ``MAX_BACKLOG`` records behind, so memory stays flat however many contacts are put."""
        self.put = put
        hold_back(self._pipeline, put)

    def _run(self) -> None:
        interval = 0.5 if self._tty else 5.0
        shown = time.monotonic()
        while not self._stop.wait(0.5):
            self._pipeline.trim_delivered()
            if time.monotonic() - shown >= interval:
                self._show()
                shown = time.monotonic()

    def _show(self, final: bool = False) -> None:
        counts = self._pipeline.runtime.counts()
        names = {self._pipeline.stack.resources[logical]: logical for logical in STREAMS}
        parts = [
            f"{names.get(name, name).removesuffix('DeliveryStream').lower()} {sum(c.get(k, 0) for k in ('delivered', 'dropped', 'processing-failed', 'format-conversion-failed'))}"
            for name, c in sorted(counts.items())
        ]
        total = f"/{self._total}" if self._total is not None else ""
        line = f"put {self.put}{total} records | delivered: {', '.join(parts)}"
        if self._tty:
            self._stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if args.input is not None and not args.input.is_file():
        raise CommandError(f"--input {args.input} is not a file")
    if args.buffer_interval is not None and args.buffer_interval < 0:
        raise CommandError("--buffer-interval must not be negative")
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("raw", "vendor", "lake", "state", "logs"):
        shutil.rmtree(out / folder, ignore_errors=True)
    (out / "summary.json").unlink(missing_ok=True)

    print("starting the embedded AWS and deploying cloudformation/template.yaml ...", file=sys.stderr)
    build_dir = Path(tempfile.gettempdir()) / "ctr-billing-build"
    if args.chaos is not None and args.input is not None:
        raise CommandError("--chaos runs on simulated contacts; it cannot be combined with --input")
    chaos = None if args.chaos is None else ChaosPlan(seed=args.chaos)
    pipeline = start_pipeline(out, build_dir, args.buffer_interval, chaos, args.contacts)
    try:
        summary = _run_pipeline(pipeline, args, out, started)
    finally:
        pipeline.runtime.stop(drain=False)
        pipeline.aws.stop()
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _print_summary(summary, out)
    problems = mismatches(summary, chaos=args.chaos is not None)
    if problems:
        print(f"demo: not as expected: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


# (label, what was delivered, what was expected): the counts a demo checks, as summary.json keys. The
# seconds and OUTBOUND rows check the billing rules themselves (provider time, call type) against what the
# simulator generated; they are judged only when the vendor CSV has those columns.
CHECKED_COUNTS = (
    ("raw records archived", "raw_records", "records_put"),
    ("vendor CSV rows", "vendor_rows", "billable_expected"),
    ("vendor billed seconds", "vendor_seconds", "vendor_seconds_expected"),
    ("vendor OUTBOUND rows", "vendor_outbound_rows", "vendor_outbound_expected"),
    ("lake Parquet rows", "lake_rows", "lake_rows_expected"),
    ("lake billed seconds", "lake_seconds", "lake_seconds_expected"),
)


def mismatches(summary: Mapping[str, Any], *, chaos: bool) -> list[str]:
    """What a run delivered differently from what was put and predicted (empty: all as expected).

    Under chaos the lake may hold re-delivered rows (it is at least once, like Firehose to S3; its views
    and the daily export fold them), so only the vendor's exactness and nothing lost are required there.
    """
    problems = [
        f"{label} {summary.get(actual)} != {summary[wanted]}"
        for label, actual, wanted in CHECKED_COUNTS
        if summary.get(wanted) is not None
        and summary.get(actual) != summary[wanted]
        and not (
            chaos
            and actual.startswith("lake_")
            and summary.get(actual) is not None
            and summary[actual] > summary[wanted]
        )
    ]
    problems += [
        f"{counter.replace('_', ' ')} {summary[counter]}"
        for counter in ("lost", "duplicate_vendor_rows")
        if summary.get(counter)
    ]
    return problems


def _run_pipeline(
    pipeline: LocalPipeline, args: argparse.Namespace, out: Path, started: float
) -> dict[str, Any]:
    vendor_environment = pipeline.function_environment("TransformCsvFunction")
    simulator: ConnectSimulator | None = None
    if args.input is None:
        simulator = ConnectSimulator(args.contacts, seed=args.seed, **billing_settings(vendor_environment))
        seed_provider_directory(pipeline, simulator.providers)
        records: Iterable[tuple[bytes, str]] = ((r.data, r.partition_key) for r in simulator.records())
        tap = chaos_run.BillableTap(vendor_environment)
        records = tap.records(records) if args.chaos is not None else records
        total = None
    else:
        records = input_records(args.input)
        total = None
    print(
        f"stack {pipeline.stack.name} deployed; putting records into {pipeline.stream_name()} ...",
        file=sys.stderr,
    )
    kinesis = pipeline.aws.client("kinesis")
    pipeline_started = time.monotonic()
    with Progress(sys.stderr, total, pipeline) as progress:
        records_put = put_all(kinesis, pipeline.stream_name(), records, progress.update)
        try:
            pipeline.runtime.drain(timeout=max(120.0, records_put / 100))
        except RuntimeFailure as error:
            raise CommandError(str(error)) from error
    seconds = time.monotonic() - pipeline_started
    memory = pipeline.memory()  # before the downloads below

    s3 = pipeline.aws.client("s3")
    for folder, logical_id in BUCKET_FOLDERS.items():
        download_bucket(s3, pipeline.stack.resources[logical_id], out / folder)

    names = {pipeline.stack.resources[logical]: logical for logical in STREAMS}
    counts = pipeline.runtime.counts()
    streams = {names.get(name, name): {"name": name, **count} for name, count in sorted(counts.items())}
    vendor = streams.get("VendorDeliveryStream", {})
    raw_prefix = data_prefix(pipeline, "RawDeliveryStream")
    vendor_prefix = data_prefix(pipeline, "VendorDeliveryStream")
    lake_prefix = data_prefix(pipeline, "LakeDeliveryStream")
    vendor_sums = vendor_figures(
        out / "vendor" / vendor_prefix, vendor_environment.get("CSV_COLUMNS") or ",".join(DEFAULT_CSV_COLUMNS)
    )
    summary: dict[str, Any] = {
        "records_put": records_put,
        "billable_expected": None,
        "vendor_seconds_expected": None,
        "vendor_outbound_expected": None,
        "lake_rows_expected": None,
        "lake_seconds_expected": None,
        "vendor_rows": count_lines(out / "vendor" / vendor_prefix, "**/*", gzipped=False),
        "vendor_seconds": vendor_sums.seconds,
        "vendor_outbound_rows": vendor_sums.outbound_rows,
        "lake_rows": count_parquet_rows(out / "lake" / lake_prefix),
        "lake_seconds": sum_parquet_column(out / "lake" / lake_prefix, "duration_seconds"),
        "raw_records": count_lines(out / "raw" / raw_prefix, "**/*.gz", gzipped=True),
        "processing_failed": vendor.get("processing-failed", 0),
        "dropped": vendor.get("dropped", 0),
        "streams": streams,
        "seconds": round(seconds, 2),
        "records_per_second": round(records_put / seconds, 1) if seconds > 0 else None,
        "total_seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": memory,
        "source": str(args.input) if args.input is not None else "simulator",
        "stack": {"name": pipeline.stack.name, "skipped_resource_types": list(pipeline.stack.skipped_types)},
    }
    if simulator is not None:
        truth = simulator.truth
        ledger = bool(vendor_environment.get("LEDGER_TABLE"))
        # With the billing ledger the vendor gets one row per billable contact; without, one per version.
        summary["billable_expected"] = truth.billable_contacts if ledger else truth.billable_records
        if vendor_sums.seconds is not None:
            summary["vendor_seconds_expected"] = (
                truth.billable_seconds if ledger else truth.billable_record_seconds
            )
        if vendor_sums.outbound_rows is not None:
            summary["vendor_outbound_expected"] = (
                truth.outbound_contacts if ledger else truth.outbound_records
            )
        summary["lake_rows_expected"] = truth.billable_records
        summary["lake_seconds_expected"] = truth.billable_record_seconds
        summary["simulation"] = {"seed": args.seed, "contacts": args.contacts, **truth.as_dict()}
        if args.chaos is not None:
            summary.update(chaos_run.chaos_summary(pipeline.runtime, tap, out / "vendor" / vendor_prefix))
    return summary


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    rows = [
        ("records put", summary["records_put"], ""),
        *(
            (label, summary.get(actual), summary.get(wanted))
            for label, actual, wanted in CHECKED_COUNTS
            if summary.get(actual) is not None
        ),
        ("vendor processing-failed", summary["processing_failed"], ""),
        ("vendor dropped (not billable / duplicates / not CTRs)", summary["dropped"], ""),
    ]
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{'':{width}}  {'actual':>9}  {'expected':>9}"]
    for label, actual, expected in rows:
        shown = "" if expected in ("", None) else str(expected)
        mark = "" if shown == "" else ("  ok" if str(actual) == shown else "  MISMATCH")
        lines.append(f"{label:{width}}  {actual!s:>9}  {shown:>9}{mark}")
    lines += _kinds_table((summary.get("simulation") or {}).get("kinds") or {})
    lines.append(
        f"{summary['records_put']} records in {summary['seconds']} s "
        f"({summary['records_per_second']} records/s end to end; {summary['total_seconds']} s with start-up)"
    )
    memory = summary.get("peak_rss_mb") or {}
    if memory.get("embedded_aws_mb") is not None:
        lines.append(
            f"peak memory: pipeline {memory['pipeline_process_mb']} MB, largest Lambda worker "
            f"{memory['lambda_worker_mb']} MB, embedded AWS (holds the stored data) {memory['embedded_aws_mb']} MB"
        )
    lines += [
        "",
        f"raw archive (GZIP JSON lines):   {out / 'raw'}",
        f"vendor CSV (and errors/):        {out / 'vendor'}",
        f"data lake Parquet (and errors/): {out / 'lake'}",
        f"transform logs:                  {out / 'logs'}",
        f"summary:                         {out / 'summary.json'}",
    ]
    print("\n".join(lines))


def _kinds_table(kinds: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The simulated contacts by kind: how many, how many billable, and for those the provider minutes
    billed beside the minutes the contacts were open (an external transfer stays open after the provider
    has gone)."""
    if not kinds:
        return []
    width = max(len("contacts by kind"), *(len(kind) for kind in kinds))
    lines = [
        "",
        f"{'contacts by kind':{width}}  {'contacts':>8}  {'billable':>8}  {'billed min':>10}  {'open min':>8}",
    ]
    for kind, figures in kinds.items():
        lines.append(
            f"{kind:{width}}  {figures['contacts']:>8}  {figures['billable']:>8}  "
            f"{figures['billable_seconds'] / 60:>10.0f}  {figures['contact_seconds_of_billable'] / 60:>8.0f}"
        )
    return [*lines, ""]
