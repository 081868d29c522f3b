"""``ctr-billing rebill``: recompute a billing day from the raw archive, and what changed since it was settled.

The work is ``firehose.offline.rebill``'s (archive, run, corrections); this module reads the options and
the settings (the Lambda's environment variables), writes the files and prints what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from firehose.cli.arguments import billing_day, whole_number
from firehose.cli.commands.export import destination_at
from firehose.cli.errors import CommandError
from firehose.offline.lake import LakeError
from firehose.offline.rebill.archive import DEFAULT_WINDOW_DAYS, RebillError, open_archive
from firehose.offline.rebill.corrections import (
    Corrections,
    corrections,
    corrections_name,
    is_settled_prefix,
    parse_billing_csv,
    read_settled,
    settled_columns_needed,
)
from firehose.offline.rebill.run import Rebilled, rebill
from firehose.pipeline.progress import progress_bar
from transform.core.settings import SettingsError, TransformSettings
from transform.settlement.export import SettlementDestination, SettlementError, publish


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rebill",
        help="recompute a billing day from the raw archive with the current rules and settings",
        description=(
            "Read the raw-archive objects that arrived from the day before --date through --window-days "
            "days after it, bill every CTR with the current rules and settings (the Lambda's environment "
            "variables, DIRECTORY_TABLE included), keep the latest version of each contact initiated that "
            "day in BILLING_TIMEZONE as the settled export does, and write billing-DATE.csv and its "
            "manifest in the export's format. With --settled, also write corrections-DATE.csv: the "
            "contacts added, removed and changed (column by column) against the settled file. "
            "Nothing is written into a settled/ prefix: corrections are reviewed before anything is sent."
        ),
    )
    parser.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the billing day")
    parser.add_argument(
        "--raw",
        required=True,
        metavar="DIR|s3://BUCKET[/ctr/]",
        help="raw archive: a folder (a demo's DIR/raw, or its ctr/) or s3://BUCKET[/ctr/]",
    )
    parser.add_argument(
        "--to",
        required=True,
        metavar="DIR|s3://BUCKET/PREFIX",
        help="folder or s3://bucket/prefix for the files (never a settled/ prefix)",
    )
    parser.add_argument(
        "--settled",
        metavar="DIR|s3://BUCKET/PREFIX",
        help="folder or s3:// prefix holding the settled billing-DATE.csv to compare with (needs "
        "contact_id among CSV_COLUMNS)",
    )
    parser.add_argument(
        "--window-days",
        type=whole_number,
        default=DEFAULT_WINDOW_DAYS,
        metavar="N",
        help=f"read objects that arrived up to N days after --date (default: {DEFAULT_WINDOW_DAYS})",
    )
    parser.add_argument(
        "--jobs",
        type=whole_number,
        metavar="N",
        help="processes reading objects (default: one per core; small archives are read in-process)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    started = time.monotonic()
    day = billing_day(args.date)
    try:
        settings = TransformSettings.from_environ(os.environ)
    except SettingsError as error:
        raise CommandError(str(error)) from None
    if args.jobs == 0:
        raise CommandError("--jobs must be at least 1")
    if args.settled is not None:
        settled_columns_needed(settings)
    destination = _destination(args.to, args.settled)

    from botocore.exceptions import BotoCoreError, ClientError

    try:
        archive = open_archive(args.raw)
        settled = read_settled(args.settled, day) if args.settled is not None else None
        if settled is not None:
            parse_billing_csv(settled[1], "settled")  # refused now rather than after the whole archive
        with progress_bar(
            sys.stderr, desc="rebill", unit="B", bytes_=True, enabled=not getattr(args, "no_progress", False)
        ) as bar:

            def on_progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = rebill(
                archive,
                day,
                settings,
                datetime.now(UTC),
                window_days=args.window_days,
                jobs=args.jobs,
                on_progress=on_progress,
            )
        changes = corrections(settled[1], result.settlement.csv) if settled is not None else None
        csv_location, manifest_location = publish(result.settlement, destination)
        written: dict[str, Any] = {"csv": csv_location, "manifest": manifest_location}
        if changes is not None:
            # Written like the day's file (it holds the same PHI), beside it, never into settled/.
            written["corrections"] = destination.put(
                corrections_name(day), changes.csv, "text/csv; charset=utf-8"
            )
    except (RebillError, LakeError, SettlementError) as error:
        raise CommandError(str(error)) from None
    except ClientError as error:
        # S3's or DynamoDB's own words: an error code and the bucket, key or table, never content.
        raise CommandError(f"AWS refused ({_targets(args)}): {error}") from None
    except (BotoCoreError, OSError) as error:
        raise CommandError(f"cannot rebill ({_targets(args)}): {error}") from None
    except RuntimeError as error:  # the directory's DirectoryError: its operation and error code only
        raise CommandError(f"cannot rebill: {error}") from None

    summary = _summary(args, result, written, settled[0] if settled else None, changes, started)
    if args.json:
        out.write(json.dumps(summary, sort_keys=True) + "\n")
    else:
        _print(summary, out)
    return 0


def _destination(to: str, settled: str | None) -> SettlementDestination:
    if is_settled_prefix(to):
        raise CommandError(
            f"--to {to} is a settled/ prefix: rebill never writes where settled files go; "
            "review the corrections, then export or copy deliberately"
        )
    if settled is not None and _same_place(to, settled):
        raise CommandError("--to must not be the --settled location: the settled file would be replaced")
    return destination_at(to)


def _same_place(to: str, settled: str) -> bool:
    if to.startswith("s3://") or settled.startswith("s3://"):
        return to.rstrip("/") == settled.rstrip("/")
    settled_path = Path(settled)
    folder = settled_path.parent if settled_path.is_file() else settled_path
    return Path(to).resolve() == folder.resolve()


def _targets(args: argparse.Namespace) -> str:
    parts = [f"raw {args.raw}", f"destination {args.to}"]
    if args.settled:
        parts.append(f"settled {args.settled}")
    return ", ".join(parts)


def _summary(
    args: argparse.Namespace,
    result: Rebilled,
    written: dict[str, Any],
    settled: str | None,
    changes: Corrections | None,
    started: float,
) -> dict[str, Any]:
    settlement = result.settlement
    return {
        "date": settlement.day.isoformat(),
        "raw": args.raw,
        "arrived_from": result.window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "arrived_before": result.window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "jobs": result.jobs,
        **result.counts.as_dict(),
        "billing": {
            "rows": settlement.rows,
            "sha256": settlement.sha256,
            "csv": written["csv"],
            "manifest": written["manifest"],
        },
        "corrections": None
        if changes is None
        else {"settled": settled, "file": written["corrections"], **changes.as_dict()},
        "seconds": round(time.monotonic() - started, 2),
    }


def _print(summary: dict[str, Any], out: TextIO) -> None:
    lines = [
        f"rebilled {summary['date']} from {summary['objects']} raw objects that arrived "
        f"{summary['arrived_from']} .. {summary['arrived_before']} ({summary['raw']})",
        f"  lines read: {summary['lines']}",
    ]
    lines += [f"  {outcome}: {count}" for outcome, count in summary["outcomes"].items()]
    lines += [f"    {reason}: {count}" for reason, count in summary["not_billable"].items()]
    lines.append(f"  billable versions initiated on other days: {summary['billable_other_days']}")
    lines.append(f"  rows of the day's partitions: {summary['rows_written']}")
    if summary["rows_unwritable"]:
        lines.append(f"  rows Parquet refused (format-conversion-failed): {summary['rows_unwritable']}")
    billing = summary["billing"]
    lines.append(f"{billing['csv']}: {billing['rows']} rows, sha256 {billing['sha256']}")
    lines.append(billing["manifest"])
    changes = summary["corrections"]
    if changes is not None:
        lines.append(
            f"{changes['file']}: against {changes['settled']}: {changes['added']} contacts added, "
            f"{changes['removed']} removed, {changes['changed']} changed ({changes['lines']} lines)"
        )
    lines.append(f"{summary['seconds']} s")
    out.write("\n".join(lines) + "\n")
    for failure in summary["failures"]:
        print(f"object {failure['object']} line {failure['line']}: {failure['problem']}", file=sys.stderr)
