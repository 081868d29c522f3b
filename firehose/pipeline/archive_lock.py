"""Whether the stack's archive lock kept up: every raw ``ctr/`` object version of a run carries its
Object Lock retention (cloudformation/template.yaml, ``ArchiveLock*``; ``transform.retention``).

S3 notifies the archive lock queue of each object the raw delivery stream writes, and the embedded AWS
runs the queue's event source mapping as Lambda does (``firehose.local_aws.event_sources``, whose
``wait_until_drained`` a demo waits with); then S3 is asked for each version's retention, as an
operator would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RAW_PREFIX = "ctr/"


def raw_version_locks(s3: S3Client, bucket: str, prefix: str = RAW_PREFIX) -> tuple[int, int]:
    """(object versions under ``prefix``, how many of them hold an Object Lock retention)."""
    versions = locked = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            versions += 1
            try:
                retention = s3.get_object_retention(
                    Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"]
                )["Retention"]
            except s3.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchObjectLockConfiguration":
                    continue
                raise
            if retention.get("Mode") and retention.get("RetainUntilDate"):
                locked += 1
    return versions, locked
