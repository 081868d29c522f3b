"""``ctr-billing export``: the vendor's settled file for one billing day, from a local or S3 lake.

The same code the scheduled export Lambda runs (``transform.settlement.export``), with DuckDB as the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from firehose.cli.arguments import billing_day
from firehose.cli.errors import CommandError
from firehose.offline.lake import (
    DEFAULT_LAKE,
    LakeError,
    LocalLake,
    S3Location,
    mirror_s3_partitions,
    partition_prefixes,
    s3_client,
)
from transform.core.settings import SettingsError, TransformSettings
from transform.settlement.export import (
    Settlement,
    SettlementDestination,
    SettlementError,
    SettlementWindow,
    publish,
    settle,
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="write the vendor's settled CSV and manifest for one billing day",
        description=(
            "Write billing-YYYY-MM-DD.csv (header, the CSV_COLUMNS columns, the latest version of each "
            "contact initiated that day in BILLING_TIMEZONE, ordered by initiation time) and "
            "billing-YYYY-MM-DD.manifest.json (date, rows, sha256, columns, generated_at). "
            "Settings come from the same environment variables as the Lambda. Re-running gives the same CSV."
        ),
    )
    parser.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the billing day")
    parser.add_argument(
        "--lake",
        default=str(DEFAULT_LAKE),
        help=f"lake folder or s3://bucket[/prefix] holding billing_rows/ (default: {DEFAULT_LAKE})",
    )
    parser.add_argument(
        "--to",
        help=(
            "folder or s3://bucket/prefix for the files (default: settled/ beside a local lake folder); "
            "S3 files are Object-Locked as the Lambda's are when OBJECT_LOCK_MODE and "
            "OBJECT_LOCK_RETENTION_DAYS are set"
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the manifest (date, rows, sha256, columns, generated_at) with the files' locations "
        "(csv, manifest) as one JSON object",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    day = billing_day(args.date)
    try:
        settings = TransformSettings.from_environ(os.environ)
    except SettingsError as error:
        raise CommandError(str(error)) from None
    destination = _destination(args.to, args.lake)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        settlement = _settle(args.lake, day, settings, progress=not getattr(args, "no_progress", False))
        csv_location, manifest_location = publish(settlement, destination)
    except (LakeError, SettlementError) as error:
        raise CommandError(str(error)) from None
    except ClientError as error:
        # S3's own words: an error code and the bucket or key, never object content.
        raise CommandError(f"S3 refused ({_s3_target(args.lake, args.to)}): {error}") from None
    except (BotoCoreError, OSError) as error:
        raise CommandError(f"cannot export ({_s3_target(args.lake, args.to)}): {error}") from None
    if getattr(args, "json", False):
        summary = {**json.loads(settlement.manifest), "csv": csv_location, "manifest": manifest_location}
        out.write(json.dumps(summary, sort_keys=True) + "\n")
        return 0
    out.write(f"{csv_location}: {settlement.rows} rows, sha256 {settlement.sha256}\n{manifest_location}\n")
    return 0


def _settle(lake: str, day: date, settings: TransformSettings, *, progress: bool = True) -> Settlement:
    generated_at = datetime.now(UTC)
    if not lake.startswith("s3://"):
        path = Path(lake)
        if not path.is_dir():
            raise CommandError(f"no lake folder at {path}: run a demo first or pass --lake DIR|s3://…")
        with LocalLake(path) as local:
            return settle(local, day, settings, generated_at)
    # DuckDB reads no s3:// here (its httpfs extension would be downloaded): copy the day's partitions.
    location = S3Location.parse(lake)
    window = SettlementWindow.for_day(day, settings.billing_timezone, settings.billing_timezone_name)
    with tempfile.TemporaryDirectory(prefix="ctr-billing-lake-") as mirror:
        from firehose.pipeline.progress import progress_bar

        with progress_bar(sys.stderr, desc="download", unit="B", bytes_=True, enabled=progress) as bar:

            def on_progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            mirror_s3_partitions(
                s3_client(), location, partition_prefixes(*window.partition_days), Path(mirror), on_progress
            )
        with LocalLake(Path(mirror)) as local:
            return settle(local, day, settings, generated_at)


class FolderDestination:
    """``SettlementDestination`` on a folder; each file appears complete or not at all."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def put(self, name: str, body: bytes, content_type: str) -> str:
        self._folder.mkdir(parents=True, exist_ok=True)
        target = self._folder / name
        with tempfile.NamedTemporaryFile(dir=self._folder, prefix=f".{name}.", delete=False) as partial:
            partial.write(body)
        os.replace(partial.name, target)
        return str(target)


def _destination(to: str | None, lake: str) -> SettlementDestination:
    if to is None:
        if lake.startswith("s3://"):
            raise CommandError("--to is required with an s3:// lake")
        return FolderDestination(Path(lake).parent / "settled")
    return destination_at(to)


def destination_at(to: str) -> SettlementDestination:
    """``--to``: a folder, or ``s3://bucket/prefix`` (files written like the export Lambda's)."""
    if to.startswith("s3://"):
        from transform.core.object_lock import ObjectLockPolicy
        from transform.settlement.athena import S3Destination

        try:
            location = S3Location.parse(to)
            lock = ObjectLockPolicy.from_environ(os.environ)
        except (LakeError, SettingsError) as error:
            raise CommandError(str(error)) from None
        return S3Destination(s3_client(), location.bucket, location.prefix, lock=lock)
    return FolderDestination(Path(to))


def _s3_target(lake: str, to: str | None) -> str:
    return f"lake {lake}" + (f", destination {to}" if to else "")
