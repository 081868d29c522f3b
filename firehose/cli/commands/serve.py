"""``ctr-billing serve``: keep the embedded AWS and the local Firehose runtime running until Ctrl-C.

    ctr-billing serve [--state DIR] [--buffer-interval SECONDS] [--no-seed]

Deploys the template as ``demo`` does, prints the endpoint, the environment variables that point the
AWS CLI or boto3 at it, and the stack's outputs; then every record put into the Kinesis stream flows
through the three delivery streams into the embedded S3. Ctrl-C drains the runtime and stops.

The embedded AWS serves from a child process of its own (``EmbeddedAws(isolated=True)``, through
``firehose.pipeline.local.start_pipeline``): the runtime here talks to it over HTTP like any other
client, each gets a core, and the child ignores Ctrl-C so the drain can still reach it; it stops when
this command ends.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from firehose.cli.errors import CommandError
from firehose.pipeline.errors import PipelineError
from firehose.pipeline.local import seed_provider_directory, start_pipeline
from firehose.pipeline.simulator import ConnectSimulator

DEFAULT_STATE = Path("out/serve")


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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # A new embedded AWS starts empty: checkpoints of an earlier run name positions it never had.
    shutil.rmtree(args.state / "state", ignore_errors=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("starting the embedded AWS and deploying cloudformation/template.yaml ...", file=sys.stderr)
    try:
        pipeline = start_pipeline(
            args.state, Path(tempfile.gettempdir()) / "ctr-billing-build", args.buffer_interval
        )
    except PipelineError as error:
        signal.signal(signal.SIGTERM, previous)
        raise CommandError(str(error)) from error
    try:
        if not args.no_seed:
            seed_provider_directory(pipeline, ConnectSimulator(0).providers)
        environment = pipeline.aws.environment
        lines = [
            f"embedded AWS endpoint: {pipeline.aws.endpoint}",
            "",
            "point the AWS CLI or boto3 at it:",
            *(f"  export {name}={shlex.quote(value)}" for name, value in environment.items()),
            "",
            f"stack {pipeline.stack.name} outputs:",
            *(f"  {key}: {value}" for key, value in sorted(pipeline.stack.outputs.items())),
            "",
            "for example:",
            f"  aws kinesis put-record --stream-name {pipeline.stream_name()} --partition-key demo "
            '--cli-binary-format raw-in-base64-out --data "$(head -1 firehose/data/example-ctrs.jsonl)"',
            "",
            f"delivery streams running: {', '.join(worker.config.name for worker in pipeline.runtime.workers)}",
            "Ctrl-C drains the delivery streams and stops.",
        ]
        print("\n".join(lines), flush=True)
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        print("draining ...", file=sys.stderr)
        pipeline.runtime.stop(drain=True, timeout=120)
        for name, counts in sorted(pipeline.runtime.counts().items()):
            print(f"  {name}: {counts}", file=sys.stderr)
    finally:
        pipeline.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
