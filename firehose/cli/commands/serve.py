"""``ctr-billing serve``: keep the embedded AWS and the local Firehose runtime running until Ctrl-C.

    ctr-billing serve [--port PORT] [--state DIR] [--buffer-interval SECONDS] [--no-seed] [--save DIR] [--json]

Deploys the template as ``demo`` does, prints the endpoint (``--port``, default ``DEFAULT_PORT``), the
environment variables that point the AWS CLI or boto3 at it, the stack's outputs, the buffer interval
each delivery stream waits (the template's 300 s unless ``--buffer-interval``) and example commands
that work with AWS CLI v1 and v2; then every record put into the Kinesis stream flows through the
three delivery streams into the embedded S3. Ctrl-C drains the runtime, writes the buckets to
``--save DIR`` if asked, prints each delivery stream's counts as a table (``--json``: as JSON on
stdout) and stops.

The embedded AWS serves from a child process of its own (``EmbeddedAws(isolated=True)``, through
``firehose.pipeline.local.start_pipeline``): the runtime here talks to it over HTTP like any other
client, each gets a core, and the child ignores Ctrl-C so the drain can still reach it; it stops when
this command ends.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from firehose.cli.errors import CommandError
from firehose.local_aws.server import EmbeddedAwsError
from firehose.pipeline.errors import PipelineError
from firehose.pipeline.local import LocalPipeline, download_bucket, seed_provider_directory, start_pipeline
from firehose.pipeline.simulator import ConnectSimulator

DEFAULT_STATE = Path("out/serve")
# A fixed port, so AWS_ENDPOINT_URL stays the same from one run to the next (0: a free one).
DEFAULT_PORT = 4599
EXAMPLE_CTRS = "firehose/data/example-ctrs.jsonl"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the embedded AWS and the local Firehose runtime until Ctrl-C",
        description=(
            "Start the embedded AWS, deploy the CloudFormation template, run the local Firehose runtime, "
            "and print how to point the AWS CLI or boto3 at it. Ctrl-C drains and stops."
        ),
    )
    parser.add_argument(
        "--port",
        metavar="PORT",
        type=int,
        default=DEFAULT_PORT,
        help=f"port of the embedded AWS on 127.0.0.1 (default: {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        default=DEFAULT_STATE,
        help=f"checkpoints and Lambda logs (default: {DEFAULT_STATE})",
    )
    parser.add_argument(
        "--buffer-interval",
        metavar="SECONDS",
        type=float,
        default=None,
        help="cap every Firehose buffer interval at SECONDS (default: the template's intervals)",
    )
    parser.add_argument(
        "--no-seed",
        action="store_true",
        help="leave the provider directory empty (default: simulated providers)",
    )
    parser.add_argument(
        "--save",
        metavar="DIR",
        type=Path,
        default=None,
        help="at exit, after the drain, write every bucket to DIR/<bucket>/<key>",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the statistics at exit as JSON on stdout (default: a table on stderr)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # A new embedded AWS starts empty: checkpoints of an earlier run name positions it never had.
    shutil.rmtree(args.state / "state", ignore_errors=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("starting the embedded AWS and deploying cloudformation/template.yaml ...", file=sys.stderr)
    try:
        pipeline = start_pipeline(
            args.state,
            Path(tempfile.gettempdir()) / "ctr-billing-build",
            args.buffer_interval,
            port=args.port,
        )
    except (PipelineError, EmbeddedAwsError) as error:
        signal.signal(signal.SIGTERM, previous)
        hint = " (another serve running? pass --port 0 for a free port)" if args.port else ""
        raise CommandError(f"{error}{hint}") from error
    try:
        if not args.no_seed:
            seed_provider_directory(pipeline, ConnectSimulator(0).providers)
        print("\n".join(banner(pipeline, args.buffer_interval)), flush=True)
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        print("draining ...", file=sys.stderr)
        pipeline.runtime.stop(drain=True, timeout=120)
        if args.save is not None:
            saved = save_buckets(pipeline, args.save)
            print(f"buckets written to {args.save}/: {', '.join(saved) or 'none'}", file=sys.stderr)
        counts = pipeline.stream_counts()
        if args.json:
            print(json.dumps({"delivery_streams": counts}, indent=2, sort_keys=True))
        else:
            print(statistics_table(counts), file=sys.stderr)
    finally:
        pipeline.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def banner(pipeline: LocalPipeline, buffer_interval: float | None) -> list[str]:
    environment = pipeline.aws.environment
    outputs = pipeline.stack.outputs
    stream = pipeline.stream_name()
    vendor_bucket = outputs.get("ContactTraceRecordsCSVBucket", "")
    intervals = []
    for worker in pipeline.runtime.workers:
        seconds = worker.config.buffer_seconds
        effective = seconds if buffer_interval is None else min(seconds, buffer_interval)
        note = "the template's" if effective == seconds else f"--buffer-interval; the template's {seconds:g}s"
        intervals.append(f"  {worker.config.name}: {effective:g}s ({note})")
    waits = (
        "records reach the buckets after each delivery stream's buffer interval:"
        if buffer_interval is not None
        else "records reach the buckets after the template's buffer intervals (start with "
        "--buffer-interval 5 to wait seconds instead):"
    )
    return [
        f"embedded AWS endpoint: {pipeline.aws.endpoint}",
        "",
        "point the AWS CLI (v1 or v2) or boto3 at it:",
        *(f"  export {name}={shlex.quote(value)}" for name, value in environment.items()),
        "",
        f"stack {pipeline.stack.name} outputs:",
        *(f"  {key}: {value}" for key, value in sorted(outputs.items())),
        "",
        waits,
        *intervals,
        "",
        "for example (AWS CLI v1 and v2):",
        f"  head -1 {EXAMPLE_CTRS} | aws kinesis put-record --stream-name {stream} "
        "--partition-key demo --data fileb:///dev/stdin",
        f"  aws s3 ls s3://{vendor_bucket}/ --recursive",
        "  aws logs tail /aws/lambda/ctr-billing-transform-csv   # v2; v1: aws logs filter-log-events "
        "--log-group-name /aws/lambda/ctr-billing-transform-csv",
        "  aws cloudwatch list-metrics --namespace CtrBilling",
        "",
        "Ctrl-C drains the delivery streams and stops.",
    ]


def save_buckets(pipeline: LocalPipeline, target: Path) -> list[str]:
    """Every bucket of the embedded S3 under ``target``/<bucket>/<key>; returns the buckets' names."""
    s3 = pipeline.aws.client("s3")
    names = [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])]
    for name in names:
        download_bucket(s3, name, target / name)
    return names


COLUMNS = ("records_read", "delivered", "dropped", "processing-failed", "objects_written", "invocations")


def statistics_table(counts: dict[str, dict[str, Any]]) -> str:
    """Each delivery stream's counts as a table: the common columns first, any other count after."""
    extra = sorted({key for row in counts.values() for key in row if key not in (*COLUMNS, "name")})
    columns = [column for column in COLUMNS if any(column in row for row in counts.values())] + extra
    header = ["delivery stream", *columns]
    rows = [
        [row.get("name", label), *(str(row.get(column, 0)) for column in columns)]
        for label, row in counts.items()
    ]
    widths = [max(len(str(line[index])) for line in [header, *rows]) for index in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join(
            [first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))]
        )

    return "\n".join([line(header), line(["-" * width for width in widths]), *(line(row) for row in rows)])
