"""S3 delivery: prefix expressions, object names, compression, SSE-KMS, retries that never give up."""

from __future__ import annotations

import gzip
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from transform.core.backoff import Backoff

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

_EXPRESSION = re.compile(r"!\{([^}]*)\}")
_JAVA_FIELDS = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_JAVA_TOKEN = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss|'[^']*'")
DEFAULT_TIME_PREFIX = "yyyy/MM/dd/HH"
_RANDOM_ALPHABET = string.ascii_letters + string.digits
# Pauses between attempts at a write: up to 5 s, since a failing bucket may take a while to come back
# (e.g. throttling by S3 under load) and the write is never abandoned.
WRITE_BACKOFF = Backoff(cap_seconds=5.0)


class PrefixError(ValueError):
    """A prefix expression could not be evaluated (e.g. a partition key the record does not carry)."""


class DeliveryAborted(RuntimeError):
    """The runtime stopped while a write was still being retried; the records stay unacknowledged."""


def java_date(pattern: str, moment: datetime) -> str:
    """Format with the subset of Java DateTimeFormatter patterns Firehose prefixes use."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("'"):
            return token[1:-1]
        return moment.strftime(_JAVA_FIELDS[token])

    return _JAVA_TOKEN.sub(replace, pattern)


def evaluate_prefix(
    template: str,
    *,
    arrival: datetime,
    error_output_type: str | None = None,
    partition_keys: Mapping[str, str] | None = None,
    dynamic_partitioning: bool = False,
) -> str:
    """Firehose's custom prefix: ``!{timestamp:…}`` (UTC arrival of the object's oldest record),
    ``!{firehose:error-output-type}``, ``!{firehose:random-string}``, ``!{partitionKeyFromLambda:…}``.
    A prefix without expressions gets the default ``yyyy/MM/dd/HH/`` time folders, as Firehose adds."""
    if not _EXPRESSION.search(template) and not dynamic_partitioning:
        base = template
        if error_output_type is not None:
            base += f"{error_output_type}/"
        return base + java_date(DEFAULT_TIME_PREFIX, arrival) + "/"

    def replace(match: re.Match[str]) -> str:
        namespace, _, argument = match.group(1).partition(":")
        if namespace == "timestamp":
            return java_date(argument, arrival)
        if namespace == "firehose" and argument == "error-output-type":
            if error_output_type is None:
                raise PrefixError("!{firehose:error-output-type} is only valid in an error output prefix")
            return error_output_type
        if namespace == "firehose" and argument == "random-string":
            return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(11))
        if namespace == "partitionKeyFromLambda":
            if partition_keys is None or argument not in partition_keys:
                raise PrefixError(f"partition key {argument!r} is missing from the record's metadata")
            return partition_keys[argument]
        raise PrefixError(f"unsupported prefix expression !{{{namespace}:{argument}}}")

    return _EXPRESSION.sub(replace, template)


def object_key(prefix: str, stream_name: str, version_id: str, written: datetime, extension: str) -> str:
    """``<prefix><stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><extension>``."""
    return f"{prefix}{stream_name}-{version_id}-{written:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{extension}"


def compress(data: bytes, compression: str) -> bytes:
    if compression == "GZIP":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression in ("UNCOMPRESSED", ""):
        return data
    raise ValueError(f"compression {compression} is not emulated locally")


def default_extension(compression: str) -> str:
    return ".gz" if compression == "GZIP" else ""


class S3Writer:
    """``PutObject`` with SSE-KMS when the destination names a key, retried with capped exponential
    backoff until it succeeds or the runtime aborts: a failed write is never skipped."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        kms_key_arn: str | None,
        abort: threading.Event,
        sleep: Callable[[float], object] | None = None,
        backoff: Backoff = WRITE_BACKOFF,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._kms_key_arn = kms_key_arn
        self._abort = abort
        # Waiting on the abort event: a stop ends a pause at once instead of after it.
        self._sleep = sleep or abort.wait
        self._backoff = backoff
        self.retries = 0

    def put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        arguments: PutObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
        }
        if self._kms_key_arn:
            arguments["ServerSideEncryption"] = "aws:kms"
            arguments["SSEKMSKeyId"] = self._kms_key_arn
        attempts = 0
        while True:
            try:
                self._s3.put_object(**arguments)
                return
            except (ClientError, BotoCoreError):
                if self._abort.is_set():
                    raise DeliveryAborted(
                        f"stopped while retrying a write to bucket {self._bucket}"
                    ) from None
                attempts += 1
                self.retries += 1
                self._sleep(self._backoff.pause(attempts))


def utc_from_ms(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
