"""The daily settlement export in AWS: Athena as the engine, the vendor bucket as the destination.

The pieces the Lambda (``transform.settlement.handler``) and ``ctr-billing export --to s3://`` share:
the Athena engine, the S3 destination, which day an event settles, and the settings. The Lambda is
invoked once a day by an EventBridge Scheduler schedule after midnight in ``BILLING_TIMEZONE`` with the
input ``{"scheduled_time": "<aws.scheduler.scheduled-time>"}``: it settles the billing day that just
ended (a retry hours later still settles the same day). ``{"date": "YYYY-MM-DD"}`` settles a given day.

Nothing here touches boto3 at import; it is never on the transform Lambda's import path.

Environment: ``ATHENA_WORKGROUP``, ``GLUE_DATABASE``, ``VENDOR_BUCKET``, ``SETTLED_PREFIX`` (default
``settled/``), ``OBJECT_LOCK_MODE`` and ``OBJECT_LOCK_RETENTION_DAYS`` (both or neither:
``transform.core.object_lock``), and the transform's ``BILLING_TIMEZONE`` and ``CSV_COLUMNS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from transform.core.object_lock import ObjectLockPolicy
from transform.core.settings import SettingsError, TransformSettings
from transform.core.timestamps import TimestampError, parse_timestamp
from transform.settlement.export import RawRow, previous_day
from transform.settlement.queries import sql_string

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_athena.type_defs import StartQueryExecutionInputTypeDef
    from mypy_boto3_s3 import S3Client

_FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}


class AthenaQueryError(RuntimeError):
    """An Athena query did not succeed; the message holds its id, state and error codes (no row values)."""


class AthenaEngine:
    """``SettlementEngine`` on Athena: start the query, wait for it, page through the results.

    ``?`` parameters go as Athena execution parameters, which are SQL literals: strings are quoted here.
    Every value comes back as text (``None`` for SQL NULL); ``transform.settlement.export.row_value`` types it.
    """

    def __init__(
        self,
        client: AthenaClient,
        workgroup: str,
        database: str,
        *,
        poll_seconds: float = 1.0,
        timeout_seconds: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._workgroup = workgroup
        self._database = database
        self._poll_seconds = poll_seconds
        self._timeout_seconds = timeout_seconds
        self._sleep = sleep

    def fetch(self, sql: str, parameters: Sequence[str]) -> list[RawRow]:
        request: StartQueryExecutionInputTypeDef = {
            "QueryString": sql,
            "WorkGroup": self._workgroup,
            "QueryExecutionContext": {"Database": self._database},
        }
        if parameters:
            request["ExecutionParameters"] = [sql_string(value) for value in parameters]
        query_id = self._client.start_query_execution(**request)["QueryExecutionId"]
        self._wait(query_id)
        return self._results(query_id)

    def _wait(self, query_id: str) -> None:
        waited = 0.0
        while True:
            status = self._client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return
            if state in _FINISHED:
                # Not StateChangeReason: Athena quotes the offending value there (a cast of a patient's
                # phone number, say), and this message reaches CloudWatch. The query id finds the full
                # reason in the Athena console, behind the workgroup's own access control.
                error = status.get("AthenaError") or {}
                raise AthenaQueryError(
                    f"Athena query {query_id} {state} (error category {error.get('ErrorCategory', '?')}, "
                    f"type {error.get('ErrorType', '?')}); see the query's details in Athena"
                )
            if waited >= self._timeout_seconds:
                self._client.stop_query_execution(QueryExecutionId=query_id)
                raise AthenaQueryError(f"Athena query {query_id} still {state} after {waited:.0f} s; stopped")
            self._sleep(self._poll_seconds)
            waited += self._poll_seconds

    def _results(self, query_id: str) -> list[RawRow]:
        columns: list[str] | None = None
        rows: list[RawRow] = []
        paginator = self._client.get_paginator("get_query_results")
        for page in paginator.paginate(QueryExecutionId=query_id):
            result_set = page["ResultSet"]
            if columns is None:
                columns = [info["Name"] for info in result_set["ResultSetMetadata"]["ColumnInfo"]]
                data = result_set["Rows"][1:]  # the first row of the first page is the header
            else:
                data = result_set["Rows"]
            for row in data:
                values = [cell.get("VarCharValue") for cell in row["Data"]]
                rows.append(dict(zip(columns, values, strict=True)))
        return rows


class S3Destination:
    """``SettlementDestination`` on S3: ``<prefix><name>``; the bucket's default encryption applies.

    With a ``lock`` policy each file's version is locked as it is written (Object Lock mode and
    retain-until date on the PutObject itself, which S3 accepts only with a checksum: SHA-256 here),
    so a settled file cannot be overwritten in place or deleted before its retention ends; settling a
    day again writes a new version beside the locked one.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        *,
        lock: ObjectLockPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._lock = lock
        self._clock = clock

    def put(self, name: str, body: bytes, content_type: str) -> str:
        key = self._prefix + name
        if self._lock is None:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType=content_type)
        else:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                ObjectLockMode=self._lock.mode,
                ObjectLockRetainUntilDate=self._lock.retain_until(self._clock()),
            )
        return f"s3://{self._bucket}/{key}"


def settlement_day(event: Mapping[str, Any], settings: TransformSettings, now: datetime) -> date:
    """The day to settle: ``date`` if given, else the day before the schedule's time in the billing zone."""
    explicit = event.get("date")
    if explicit is not None:
        try:
            return date.fromisoformat(str(explicit))
        except ValueError:
            raise ValueError("event date must be YYYY-MM-DD") from None
    scheduled = event.get("scheduled_time")
    moment = now
    if scheduled is not None:
        try:
            moment = parse_timestamp(scheduled)
        except TimestampError as error:
            raise ValueError(f"event scheduled_time {error}") from None
    return previous_day(moment, settings.billing_timezone)


class SettlementConfig:
    """The export Lambda's settings; a missing or bad variable raises ``SettingsError`` naming it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.settings = TransformSettings.from_environ(environ)
        self.workgroup = _required(environ, "ATHENA_WORKGROUP")
        self.database = _required(environ, "GLUE_DATABASE")
        self.bucket = _required(environ, "VENDOR_BUCKET")
        self.prefix = environ.get("SETTLED_PREFIX", "settled/").strip() or "settled/"
        self.lock = ObjectLockPolicy.from_environ(environ)


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} must be set")
    return value
