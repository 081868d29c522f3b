"""Whether the stack's archive lock kept up: every raw ``ctr/`` object version of a run carries its
Object Lock retention (cloudformation/template.yaml, ``ArchiveLock*``; ``transform.retention``).

S3 notifies the archive lock queue of each object the raw delivery stream writes, and the embedded AWS
runs the queue's event source mapping as Lambda does (``firehose.local_aws.event_sources``, whose
``wait_until_drained`` a demo waits with); then S3 is asked for each version's retention, as an
operator would (``ctr-billing lock-archive`` asks the same, one arrival day at a time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from firehose.offline.rebill.archive import RAW_DATA_PREFIX
from transform.retention.archive_lock import archived_versions, held_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def raw_version_locks(s3: S3Client, bucket: str, prefix: str = RAW_DATA_PREFIX) -> tuple[int, int]:
    """(object versions under ``prefix``, how many of them hold an Object Lock retention)."""
    versions = locked = 0
    for version in archived_versions(s3, bucket, prefix):
        versions += 1
        locked += held_until(s3, version) is not None
    return versions, locked
