"""Object Lock on the embedded AWS (moto over HTTP, with its fixes: GetObjectRetention among them): the
archive lock Lambda (transform.retention) locking raw versions from S3 notifications, and the settlement
export writing settled files locked."""

from __future__ import annotations

import importlib
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from firehose.local_aws.server import EmbeddedAws
from tests.events import SQS_S3_NOTIFICATIONS, load_event
from tests.support.ctr_factory import LambdaContext
from transform.core.object_lock import ObjectLockPolicy
from transform.core.settings import SettingsError
from transform.settlement.athena import S3Destination

pytestmark = pytest.mark.integration
DAYS = 30
PLANTED_PHONE = "+12025550143"


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture
def s3(aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in aws.environment.items():
        monkeypatch.setenv(name, value)
    return aws.client("s3")


@pytest.fixture
def locked_bucket(s3: Any) -> str:
    """A bucket as the template makes the raw one: versioned, Object Lock on, no default retention."""
    name = f"raw-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def lock_env(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBJECT_LOCK_MODE", "GOVERNANCE")
    monkeypatch.setenv("OBJECT_LOCK_RETENTION_DAYS", str(DAYS))


def cold_start() -> ModuleType:
    import transform.retention.handler

    return importlib.reload(transform.retention.handler)


def notification_event(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """The published SQS event, one record per body (each a copy of the first published record)."""
    published = load_event(SQS_S3_NOTIFICATIONS)
    template = published["Records"][0]
    records = []
    for number, body in enumerate(bodies):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"message-{number}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        records.append(record)
    return {"Records": records}


def created(bucket: str, key: str, version_id: str, at: str = "2026-11-02T14:05:09.117Z") -> dict[str, Any]:
    """The published ObjectCreated:Put notification, naming a real object of the moto server."""
    body: dict[str, Any] = json.loads(load_event(SQS_S3_NOTIFICATIONS)["Records"][0]["body"])
    record = body["Records"][0]
    record["eventTime"] = at
    record["s3"]["bucket"] = {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}
    record["s3"]["object"].update(key=key.replace(" ", "+"), versionId=version_id)
    return body


def put(s3: Any, bucket: str, key: str) -> str:
    version: str = s3.put_object(Bucket=bucket, Key=key, Body=b'{"ContactId":"x"}\n')["VersionId"]
    return version


def retention(s3: Any, bucket: str, key: str, version: str) -> dict[str, Any]:
    found: dict[str, Any] = s3.get_object_retention(Bucket=bucket, Key=key, VersionId=version)["Retention"]
    return found


def test_each_new_raw_version_is_locked_from_its_creation_and_cannot_be_deleted(
    s3: Any, locked_bucket: str, lock_env: None
) -> None:
    # GIVEN two raw objects Firehose wrote (one key with a space, as S3 encodes it) and their notifications
    keys = ["ctr/2026/11/02/14/raw-1.gz", "ctr/2026/11/02/14/raw 2.gz"]
    versions = [put(s3, locked_bucket, key) for key in keys]
    event = notification_event(*(created(locked_bucket, k, v) for k, v in zip(keys, versions, strict=True)))
    # WHEN the archive lock Lambda reads the batch
    handler = cold_start()
    answer = handler.lambda_handler(event, LambdaContext())  # type: ignore[arg-type]
    # THEN no message failed and each version is locked in GOVERNANCE mode for DAYS from S3's eventTime
    assert answer == {"batchItemFailures": []}
    until = datetime(2026, 11, 2, 14, 5, 9, 117000, tzinfo=UTC) + timedelta(days=DAYS)
    for key, version in zip(keys, versions, strict=True):
        held = retention(s3, locked_bucket, key, version)
        assert held["Mode"] == "GOVERNANCE"
        assert abs(held["RetainUntilDate"] - until) < timedelta(seconds=1)
    # AND the locked version cannot be deleted without bypassing governance
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=locked_bucket, Key=keys[0], VersionId=versions[0])


def test_a_redelivered_notification_changes_nothing_and_a_longer_lock_is_kept(
    s3: Any, locked_bucket: str, lock_env: None
) -> None:
    # GIVEN a version an operator already locked for longer than the policy would
    key = "ctr/2026/11/02/15/raw-3.gz"
    version = put(s3, locked_bucket, key)
    longer = datetime(2040, 1, 1, tzinfo=UTC)
    s3.put_object_retention(
        Bucket=locked_bucket,
        Key=key,
        VersionId=version,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": longer},
    )
    # WHEN its notification arrives (twice, as SQS may deliver it)
    handler = cold_start()
    for _ in range(2):
        answer = handler.lambda_handler(
            notification_event(created(locked_bucket, key, version)),
            LambdaContext(),  # type: ignore[arg-type]
        )
        assert answer == {"batchItemFailures": []}
    # THEN the longer retention stands (shortening a GOVERNANCE lock would need a bypass it does not have)
    assert retention(s3, locked_bucket, key, version)["RetainUntilDate"] == longer


class _EveryRecord(logging.Handler):
    """Every log record once (it may reach several loggers' handlers), all its attributes as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self._seen: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) not in self._seen:
            self._seen.add(id(record))
            self.texts.append(json.dumps({**record.__dict__, "message": record.getMessage()}, default=str))


def test_one_bad_message_fails_alone_and_nothing_of_it_reaches_the_logs(
    s3: Any, locked_bucket: str, lock_env: None, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a batch of a good notification, S3's test event, a body that is not a notification (holding a
    # phone number) and a notification of a version that does not exist
    key = "ctr/2026/11/02/16/raw-4.gz"
    version = put(s3, locked_bucket, key)
    test_event = json.loads(load_event(SQS_S3_NOTIFICATIONS)["Records"][1]["body"])
    event = notification_event(
        created(locked_bucket, key, version),
        test_event,
        json.dumps({"patient": PLANTED_PHONE}),
        created(locked_bucket, "ctr/2026/11/02/16/gone.gz", "no-such-version"),
    )
    # WHEN the Lambda reads the batch, every logger of the process recorded at DEBUG
    handler = cold_start()
    everything = _EveryRecord()
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(everything)
        logger.setLevel(logging.DEBUG)
    try:
        answer = handler.lambda_handler(event, LambdaContext())  # type: ignore[arg-type]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(everything)
            logger.setLevel(level)
    # THEN only the two bad messages come back, to be retried and then dead-lettered
    assert answer == {"batchItemFailures": [{"itemIdentifier": "message-2"}, {"itemIdentifier": "message-3"}]}
    assert retention(s3, locked_bucket, key, version)["Mode"] == "GOVERNANCE"
    # AND the logs say which messages failed and why, never what a body held
    logged = "\n".join(everything.texts)
    failures = [text for text in everything.texts if "archive lock failed" in text]
    assert len(failures) == 2
    assert "message-2" in failures[0] and "NotificationError" in failures[0]
    assert "message-3" in failures[1] and "NoSuchVersion" in failures[1]
    captured = capfd.readouterr()
    assert PLANTED_PHONE not in logged + captured.out + captured.err


def test_the_lock_lambda_will_not_start_without_its_policy(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OBJECT_LOCK_MODE", raising=False)
    monkeypatch.setenv("OBJECT_LOCK_RETENTION_DAYS", "30")
    with pytest.raises(SettingsError, match="OBJECT_LOCK_MODE"):
        cold_start()


def test_settled_files_are_written_locked_with_the_checksum_s3_demands(s3: Any, locked_bucket: str) -> None:
    # GIVEN the export's S3 destination with the template's policy and a fixed clock
    now = datetime(2026, 11, 3, 5, 30, tzinfo=UTC)
    destination = S3Destination(
        s3, locked_bucket, "settled", lock=ObjectLockPolicy("GOVERNANCE", DAYS), clock=lambda: now
    )
    # WHEN a settled file is written (moto, as S3, refuses lock parameters without a checksum header)
    location = destination.put("billing-2026-11-02.csv", b"contact_id\n", "text/csv")
    # THEN its version is locked for DAYS from the write
    assert location == f"s3://{locked_bucket}/settled/billing-2026-11-02.csv"
    head = s3.head_object(Bucket=locked_bucket, Key="settled/billing-2026-11-02.csv")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert abs(head["ObjectLockRetainUntilDate"] - (now + timedelta(days=DAYS))) < timedelta(seconds=1)
    # AND settling the day again writes a new version beside the locked one, which stays
    destination.put("billing-2026-11-02.csv", b"contact_id\n", "text/csv")
    versions = s3.list_object_versions(Bucket=locked_bucket, Prefix="settled/")["Versions"]
    assert len(versions) == 2
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(
            Bucket=locked_bucket, Key="settled/billing-2026-11-02.csv", VersionId=versions[-1]["VersionId"]
        )


def test_without_a_policy_settled_files_are_written_as_before(s3: Any) -> None:
    name = f"plain-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    S3Destination(s3, name, "settled/").put("billing-2026-11-02.csv", b"contact_id\n", "text/csv")
    assert "ObjectLockMode" not in s3.head_object(Bucket=name, Key="settled/billing-2026-11-02.csv")
