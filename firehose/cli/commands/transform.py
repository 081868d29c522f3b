"""``ctr-billing transform``: the transform Lambda's core over a file of CTRs, offline."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from firehose.cli.errors import CommandError
from firehose.offline.transform import (
    OfflineFormat,
    OfflineSummary,
    make_sink,
    open_lines,
    open_output,
    transform_lines,
)
from transform.core.settings import SettingsError, TransformSettings


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "transform",
        help="transform a file of CTRs (JSON lines, plain or .gz) into billing rows",
        description=(
            "Run the Firehose transform's billing rules over a file of CTRs, one JSON document per line. "
            "Settings come from the same environment variables as the Lambda "
            "(BILLABLE_CHANNELS, MIN_BILLABLE_SECONDS, BILLING_TIMEZONE, EXTENSION_ATTRIBUTE, CSV_COLUMNS). "
            "CSV output starts with a header row. Outputs appear only once complete. "
            "Exit status: 0 when every line was handled, 1 when some lines failed (the output still holds "
            "every billable row; the failures are listed on stderr and kept with --rejects), 2 on an error."
        ),
    )
    parser.add_argument("--input", required=True, help="CTR file (JSON lines; .gz allowed) or - for stdin")
    parser.add_argument(
        "--format",
        choices=[f.value for f in OfflineFormat],
        default="csv",
        help="output format: csv (the vendor CSV), json (the lake's JSON rows) or parquet (default: csv)",
    )
    parser.add_argument("--output", required=True, help="output file, or - for stdout (csv and json only)")
    parser.add_argument("--rejects", help="write the lines that failed (malformed or invalid CTRs) here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (needs --output to be a file)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    output_format = OfflineFormat(args.format)
    if args.json and args.output == "-":
        raise CommandError("--json prints the summary on stdout: give --output a file")
    if output_format is OfflineFormat.PARQUET and args.output == "-":
        raise CommandError("--format parquet needs a file for --output")
    if args.input != "-" and not os.path.isfile(args.input):
        raise CommandError(f"--input {args.input}: no such file")
    _refuse_overwriting_the_input(args)
    try:
        settings = TransformSettings.from_environ(os.environ)
    except SettingsError as error:
        raise CommandError(str(error)) from None

    try:
        summary = _transform(args, output_format, settings)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise CommandError(f"--input {args.input}: not a complete gzip file; nothing was written") from None
    except OSError as error:
        where = error.filename or args.output
        raise CommandError(f"cannot write {where}: {error.strerror or error}; nothing was written") from None

    for number, problem in summary.first_failures:
        print(f"line {number}: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        print(json.dumps(summary.as_dict(), indent=2), file=sys.stderr)
    if args.output != "-":
        print(f"wrote {args.output}", file=sys.stderr)
    return 1 if summary.first_failures else 0


def _transform(
    args: argparse.Namespace, output_format: OfflineFormat, settings: TransformSettings
) -> OfflineSummary:
    with ExitStack() as stack:
        lines = stack.enter_context(open_lines(args.input))
        output = stack.enter_context(open_output(args.output))
        rejects = stack.enter_context(open_output(args.rejects, "w")) if args.rejects else None
        progress = _progress(args)
        if progress is not None:
            stack.callback(progress.close)
        return transform_lines(
            lines,
            make_sink(output_format, output, settings),
            settings,
            rejects=rejects,
            on_line=None if progress is None else lambda: progress.update(1),
        )


def _refuse_overwriting_the_input(args: argparse.Namespace) -> None:
    if args.input == "-":
        return
    source = Path(args.input).resolve()
    for option, path in (("--output", args.output), ("--rejects", args.rejects)):
        if path is not None and path != "-" and Path(path).resolve() == source:
            raise CommandError(f"{option} {path} is the --input file; write the output elsewhere")
    if args.output == args.rejects and args.output not in (None, "-"):
        raise CommandError("--output and --rejects name the same file")


def _progress(args: argparse.Namespace) -> Any:
    """The transform's bar: lines out of the file's lines (counted first; none for stdin)."""
    if args.no_progress or not sys.stderr.isatty():
        return None
    from firehose.pipeline.progress import progress_bar

    total = None if args.input == "-" else count_lines(args.input)
    return progress_bar(sys.stderr, desc="transform", unit=" CTRs", total=total)


def count_lines(path: str) -> int:
    """The lines of a plain or gzip file (a last line without a line ending counts too)."""
    opener: Any = gzip.open if path.endswith(".gz") else open
    lines = 0
    last = b"\n"
    with opener(path, "rb") as source:
        while chunk := source.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")
