"""``ctr-billing demo``: the whole pipeline on this machine, end to end, with simulated Connect traffic.

    ctr-billing demo [--contacts N] [--seed S] [--input FILE] [--out DIR] [--buffer-interval SECONDS]
                     [--chaos SEED] [--settle]

Starts the embedded AWS, deploys ``cloudformation/template.yaml`` through its CloudFormation API,
seeds the provider directory, puts CTRs into the Kinesis stream (500 per PutRecords), runs the local
Firehose runtime until every delivery stream has drained, downloads the raw, vendor and lake buckets
into DIR/raw, DIR/vendor, DIR/lake (keys kept as paths) and writes DIR/summary.json. The run itself is
``firehose.pipeline.demo``; this module parses the arguments and prints the table and the verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firehose.cli.errors import CommandError
from firehose.pipeline.demo import (
    DEFAULT_BUFFER_INTERVAL,
    DEFAULT_CONTACTS,
    DEFAULT_SEED,
    DemoOptions,
    run_demo,
)
from firehose.pipeline.errors import PipelineError
from firehose.pipeline.summary import mismatches, summary_lines

DEFAULT_OUT = Path("out/demo")


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
    parser.add_argument(
        "--settle",
        action="store_true",
        help="then run the settlement Lambda (Athena on the embedded AWS) for each day the lake holds; "
        "the settled files land in the vendor bucket's settled/ and DIR/vendor/settled/",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (the keys of DIR/summary.json) instead of the table",
    )
    parser.set_defaults(handler=run)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def run(args: argparse.Namespace) -> int:
    # Refused before anything starts: a refused run leaves an earlier run's output as it was.
    if args.input is not None and not args.input.is_file():
        raise CommandError(f"--input {args.input} is not a file")
    if args.buffer_interval is not None and args.buffer_interval < 0:
        raise CommandError("--buffer-interval must not be negative")
    if args.chaos is not None and args.input is not None:
        raise CommandError("--chaos runs on simulated contacts; it cannot be combined with --input")
    options = DemoOptions(
        out=args.out,
        contacts=args.contacts,
        seed=args.seed,
        input=args.input,
        buffer_interval=args.buffer_interval,
        chaos=args.chaos,
        settle=args.settle,
    )
    try:
        summary = run_demo(options, sys.stderr)
    except PipelineError as error:
        raise CommandError(str(error)) from error
    if getattr(args, "json", False):
        print(json.dumps(summary, sort_keys=True))
    else:
        print("\n".join(summary_lines(summary, args.out)))
    problems = mismatches(summary, chaos=args.chaos is not None)
    if problems:
        print(f"demo: not as expected: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0
