"""``ctr-billing lock-archive``: check, and with ``--apply`` set, the Object Lock retention of one day's
raw archive versions.

The stack locks each raw ``ctr/`` version as it arrives (S3 notification, SQS, the archive lock Lambda:
``transform.retention``). A version written while that path was broken (a notification configuration
changed by hand, a dead-letter queue drained without redrive) stays unlocked; this sweep finds such
versions for one arrival day and, with ``--apply``, locks them with the same policy and code as the
Lambda, counted from each version's LastModified. It reads retention only: never an object's content.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from firehose.cli.arguments import billing_day
from firehose.cli.errors import CommandError

if TYPE_CHECKING:
    from transform.core.object_lock import ObjectLockPolicy

MAX_LISTED = 20


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lock-archive",
        help="check (and with --apply, set) the Object Lock retention of a day's raw archive versions",
        description=(
            "List every object version under the raw archive's ctr/YYYY/MM/DD/ for the UTC arrival day "
            "--date and ask S3 for each one's Object Lock retention. Exit 0 when every version holds one, "
            "1 when some do not. With --apply, lock those in OBJECT_LOCK_MODE for "
            "OBJECT_LOCK_RETENTION_DAYS from each version's LastModified, as the archive lock Lambda does."
        ),
    )
    parser.add_argument(
        "--date",
        required=True,
        metavar="YYYY-MM-DD",
        help="the UTC day the objects arrived (their key's date)",
    )
    parser.add_argument(
        "--raw",
        required=True,
        metavar="s3://BUCKET[/ctr/]",
        help="the raw archive bucket (the stack's ContactTraceRecordsBucket output), data prefix ctr/ by default",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="lock the versions without a retention (needs OBJECT_LOCK_MODE and OBJECT_LOCK_RETENTION_DAYS)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    day = billing_day(args.date)
    from botocore.exceptions import BotoCoreError, ClientError

    from firehose.offline.lake import LakeError, S3Location, s3_client
    from firehose.offline.rebill.archive import RAW_DATA_PREFIX
    from transform.core.object_lock import ObjectLockPolicy
    from transform.core.settings import SettingsError
    from transform.retention.archive_lock import ArchiveLock, archived_versions, held_until

    if not args.raw.startswith("s3://"):
        raise CommandError(f"--raw must be s3://BUCKET[/prefix/]: Object Lock is S3's, got {args.raw!r}")
    try:
        location = S3Location.parse(args.raw)
        policy = ObjectLockPolicy.required(os.environ) if args.apply else None
    except (LakeError, SettingsError) as error:
        raise CommandError(str(error)) from None
    prefix = f"{location.prefix or RAW_DATA_PREFIX}{day:%Y/%m/%d}/"
    client = s3_client()
    unlocked: list[str] = []
    versions = locked_now = 0
    try:
        lock = ArchiveLock(client, policy) if policy is not None else None
        for version in archived_versions(client, location.bucket, prefix):
            versions += 1
            if held_until(client, version) is not None:
                continue
            if lock is not None:
                lock.lock(version)
                locked_now += 1
            else:
                unlocked.append(f"{version.key} (version {version.version_id})")
    except ClientError as error:
        # S3's own words: an error code and the bucket or key, never content.
        raise CommandError(f"AWS refused (s3://{location.bucket}/{prefix}): {error}") from None
    except BotoCoreError as error:
        raise CommandError(f"cannot read s3://{location.bucket}/{prefix}: {error}") from None

    summary: dict[str, Any] = {
        "location": f"s3://{location.bucket}/{prefix}",
        "versions": versions,
        "locked": versions - len(unlocked) - locked_now,
        "locked_now": locked_now,
        "not_locked": len(unlocked),
        "not_locked_listed": unlocked[:MAX_LISTED],
    }
    if args.json:
        out.write(json.dumps(summary, sort_keys=True) + "\n")
    else:
        _print(summary, policy, out)
    return 1 if unlocked else 0


def _print(summary: dict[str, Any], policy: ObjectLockPolicy | None, out: TextIO) -> None:
    noun = "object version" if summary["versions"] == 1 else "object versions"
    out.write(f"{summary['location']}: {summary['versions']} {noun}, {summary['locked']} already locked\n")
    if summary["locked_now"] and policy is not None:
        out.write(
            f"locked now: {summary['locked_now']} ({policy.mode}, {policy.days} days from each version's "
            "LastModified)\n"
        )
    if summary["not_locked"]:
        out.write(f"not locked: {summary['not_locked']} (run again with --apply to lock them)\n")
        for line in summary["not_locked_listed"]:
            out.write(f"  {line}\n")
        if summary["not_locked"] > MAX_LISTED:
            out.write(f"  ... and {summary['not_locked'] - MAX_LISTED} more\n")
