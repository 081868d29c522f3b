"""``ctr-billing report``: one billing day as a self-contained HTML page of charts.

    ctr-billing report --date YYYY-MM-DD [--lake DIR] [--raw DIR] [--vendor DIR] [--settled DIR]
                       [--out FILE]

Reads a demo's folders (defaults: out/demo/lake, and raw/, vendor/, settled/ beside the lake folder) and
writes one HTML file that opens offline: contacts by outcome and not-billable reason, billed minutes by
provider, calls by hour and call type, hold times, and the reconciliation of streamed, settled and lake
rows. The billing rules' settings (BILLABLE_CHANNELS, MIN_BILLABLE_SECONDS, ...) are read from the
environment, as the Lambda reads them. See docs/report.md.
"""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path
from typing import Any

from firehose.cli.errors import CommandError
from firehose.offline.lake import DEFAULT_LAKE, LakeError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write one billing day's charts as a self-contained HTML file",
        description="Write one billing day's charts as a self-contained HTML file (opens offline).",
    )
    parser.add_argument("--date", metavar="YYYY-MM-DD", required=True, type=_day, help="the billing day")
    parser.add_argument(
        "--lake",
        metavar="DIR",
        type=Path,
        default=DEFAULT_LAKE,
        help=f"lake folder (default: {DEFAULT_LAKE})",
    )
    parser.add_argument(
        "--raw",
        metavar="DIR",
        type=Path,
        help="raw archive folder, for outcomes (default: raw/ beside --lake)",
    )
    parser.add_argument(
        "--vendor",
        metavar="DIR",
        type=Path,
        help="vendor folder, streamed CSV (default: vendor/ beside --lake)",
    )
    parser.add_argument(
        "--settled", metavar="DIR", type=Path, help="settled files folder (default: settled/ beside --lake)"
    )
    parser.add_argument(
        "--out", metavar="FILE", type=Path, default=None, help="HTML file (default: report-DATE.html)"
    )
    parser.set_defaults(handler=run)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected YYYY-MM-DD") from None


def run(args: argparse.Namespace) -> int:
    from firehose.offline.report import ReportError, write_report
    from transform.core.settings import SettingsError, TransformSettings

    lake: Path = args.lake
    beside = lake.parent
    out: Path = args.out or Path(f"report-{args.date.isoformat()}.html")
    try:
        settings = TransformSettings.from_environ(os.environ)
        data = write_report(
            args.date,
            lake,
            out,
            raw=args.raw or beside / "raw",
            vendor=args.vendor or beside / "vendor",
            settled=args.settled or beside / "settled",
            settings=settings,
        )
    except (ReportError, LakeError, SettingsError) as error:
        raise CommandError(str(error)) from error
    print(f"{out}: {data.reconciliation.get('lake_latest_rows', 0):,} billed contacts on {args.date}")
    return 0
