"""Lock each new raw CTR object version as it arrives: the archive is the record of truth.

Firehose writes the raw archive (``ctr/`` of the raw bucket). S3 sends an event notification for every
object created there to an SQS queue, and the archive lock Lambda (``transform.retention.handler``)
reads the queue and gives each new version an Object Lock retention (``ObjectLockPolicy``: the mode and
days of ``OBJECT_LOCK_MODE`` / ``OBJECT_LOCK_RETENTION_DAYS``), counted from the time S3 created it, so
a retried message sets the same date again. A bucket default retention would do this by itself, but
it makes S3 refuse PutObject requests without a checksum header, which Firehose does not document
sending (cloudformation/template.yaml, ``ObjectLockRetentionDays``).

Message bodies are S3 event notifications, which name buckets and keys only; a key is Firehose's
``ctr/YYYY/MM/DD/HH/<stream>-...`` name, never CTR data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from transform.core.object_lock import LOCK_MODES, ObjectLockPolicy
from transform.core.timestamps import TimestampError, parse_timestamp

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class NotificationError(ValueError):
    """A message is not an S3 event notification this Lambda can act on; the message says why."""


@dataclass(frozen=True, slots=True)
class CreatedVersion:
    """One object version S3 reported created."""

    bucket: str
    key: str
    version_id: str
    created: datetime


def created_versions(notification: Mapping[str, Any]) -> Iterator[CreatedVersion]:
    """The created versions an S3 event notification (the SQS message body, parsed) reports.

    S3's ``s3:TestEvent`` (sent when a notification configuration is saved) and events other than
    ``ObjectCreated:*`` report none. A version id is required: the raw bucket is versioned (Object Lock
    needs it), so an event without one means the notification comes from a bucket it should not.
    """
    if notification.get("Event") == "s3:TestEvent":
        return
    records = notification.get("Records")
    if not isinstance(records, list):
        raise NotificationError("message is not an S3 event notification (no Records)")
    for record in records:
        if not isinstance(record, Mapping) or record.get("eventSource") != "aws:s3":
            raise NotificationError("record is not an S3 event")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        try:
            s3 = record["s3"]
            bucket = str(s3["bucket"]["name"])
            # Keys arrive URL-encoded as a form value ("+" for a space) in S3 notifications.
            key = unquote_plus(str(s3["object"]["key"]))
            version_id = s3["object"].get("versionId")
            created = parse_timestamp(record["eventTime"])
        except (KeyError, TypeError, AttributeError):
            raise NotificationError("S3 event lacks its bucket, key or eventTime") from None
        except TimestampError:
            raise NotificationError("S3 event has an unreadable eventTime") from None
        if not version_id:
            raise NotificationError(f"s3://{bucket}/{key} has no version id: the bucket is not versioned")
        yield CreatedVersion(bucket, key, str(version_id), created)


def archived_versions(client: S3Client, bucket: str, prefix: str) -> Iterator[CreatedVersion]:
    """Every object version under ``prefix`` (noncurrent ones too), dated by S3's LastModified: what a
    sweep checks when notifications may have been missed."""
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            yield CreatedVersion(bucket, version["Key"], version["VersionId"], version["LastModified"])


def held_until(client: S3Client, version: CreatedVersion) -> datetime | None:
    """The retain-until date of ``version``'s Object Lock retention, or None if it holds none."""
    try:
        retention = client.get_object_retention(
            Bucket=version.bucket, Key=version.key, VersionId=version.version_id
        ).get("Retention", {})
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchObjectLockConfiguration":
            return None
        raise
    if retention.get("Mode") not in LOCK_MODES:
        return None
    return retention.get("RetainUntilDate")


class ArchiveLock:
    """Gives object versions the policy's retention, unless they already hold as long a one."""

    def __init__(self, client: S3Client, policy: ObjectLockPolicy) -> None:
        self._client = client
        self._policy = policy

    def lock(self, version: CreatedVersion) -> bool:
        """Lock ``version``; False when it was already locked at least as long (a redelivered message)."""
        until = self._policy.retain_until(version.created)
        held = held_until(self._client, version)
        if held is not None and held >= until:
            return False
        # boto3 sends the Content-MD5 / checksum S3 requires of PutObjectRetention. Extending a
        # GOVERNANCE retention needs no bypass; shortening one would, and never happens here.
        self._client.put_object_retention(
            Bucket=version.bucket,
            Key=version.key,
            VersionId=version.version_id,
            Retention={"Mode": self._policy.mode, "RetainUntilDate": until},
        )
        return True
