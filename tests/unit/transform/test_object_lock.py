"""The one Object Lock policy (transform.core.object_lock) and the notifications the archive lock reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.events import SQS_S3_NOTIFICATIONS, load_event
from transform.core.object_lock import ObjectLockPolicy
from transform.core.settings import SettingsError
from transform.retention.archive_lock import CreatedVersion, NotificationError, created_versions


def test_no_setting_means_no_lock_and_both_give_the_policy() -> None:
    assert ObjectLockPolicy.from_environ({}) is None
    policy = ObjectLockPolicy.from_environ(
        {"OBJECT_LOCK_MODE": "governance", "OBJECT_LOCK_RETENTION_DAYS": "2557"}
    )
    assert policy == ObjectLockPolicy("GOVERNANCE", 2557)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OBJECT_LOCK_MODE": "GOVERNANCE"}, "OBJECT_LOCK_RETENTION_DAYS"),
        ({"OBJECT_LOCK_RETENTION_DAYS": "30"}, "OBJECT_LOCK_MODE"),
        ({"OBJECT_LOCK_MODE": "LEGAL_HOLD", "OBJECT_LOCK_RETENTION_DAYS": "30"}, "OBJECT_LOCK_MODE"),
        ({"OBJECT_LOCK_MODE": "GOVERNANCE", "OBJECT_LOCK_RETENTION_DAYS": "0"}, "OBJECT_LOCK_RETENTION_DAYS"),
        (
            {"OBJECT_LOCK_MODE": "GOVERNANCE", "OBJECT_LOCK_RETENTION_DAYS": "7y"},
            "OBJECT_LOCK_RETENTION_DAYS",
        ),
    ],
)
def test_a_half_or_bad_setting_is_refused_naming_the_variable(environ: dict[str, str], named: str) -> None:
    # GIVEN a lock setting without its partner, or a value S3 would not take
    # WHEN the policy is read  THEN it fails naming the variable: a lock silently not taken is the failure
    with pytest.raises(SettingsError, match=named):
        ObjectLockPolicy.from_environ(environ)


def test_a_function_whose_job_is_locking_requires_the_policy() -> None:
    with pytest.raises(SettingsError, match="OBJECT_LOCK_MODE and OBJECT_LOCK_RETENTION_DAYS"):
        ObjectLockPolicy.required({})


def test_retention_counts_from_when_the_version_was_written() -> None:
    policy = ObjectLockPolicy("GOVERNANCE", 10)
    written = datetime(2026, 11, 2, 14, 5, 9, tzinfo=UTC)
    assert policy.retain_until(written) == written + timedelta(days=10)
    with pytest.raises(ValueError, match="time zone"):
        policy.retain_until(datetime(2026, 11, 2, 14, 5, 9))


def _bodies() -> list[dict[str, object]]:
    return [json.loads(record["body"]) for record in load_event(SQS_S3_NOTIFICATIONS)["Records"]]


def test_a_published_object_created_notification_names_its_version() -> None:
    # GIVEN S3's ObjectCreated:Put notification as SQS delivers it
    created, _ = _bodies()
    # WHEN it is read  THEN it names the bucket, key, version and S3's time of creation
    assert list(created_versions(created)) == [
        CreatedVersion(
            bucket="ctr-billing-raw-0123456789ab",
            key="ctr/2026/11/02/14/ctr-billing-raw-1-2026-11-02-14-05-09-5f0c2d1e-9a7b-4c3d-8e2f-0a1b2c3d4e5f.gz",
            version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
            created=datetime(2026, 11, 2, 14, 5, 9, 117000, tzinfo=UTC),
        )
    ]


def test_s3s_test_event_and_other_event_types_name_nothing() -> None:
    created, test_event = _bodies()
    assert list(created_versions(test_event)) == []
    created["Records"][0]["eventName"] = "ObjectRemoved:DeleteMarkerCreated"  # type: ignore[index]
    assert list(created_versions(created)) == []


def test_keys_are_decoded_as_s3_encodes_them() -> None:
    created, _ = _bodies()
    created["Records"][0]["s3"]["object"]["key"] = "ctr/red+flower%2B1.gz"  # type: ignore[index]
    (version,) = created_versions(created)
    assert version.key == "ctr/red flower+1.gz"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda body: body.pop("Records"), "no Records"),
        (lambda body: body["Records"][0].update(eventSource="aws:sns"), "not an S3 event"),
        (lambda body: body["Records"][0]["s3"]["object"].pop("versionId"), "not versioned"),
        (lambda body: body["Records"][0].pop("eventTime"), "lacks"),
        (lambda body: body["Records"][0].update(eventTime="yesterday"), "unreadable eventTime"),
    ],
)
def test_a_message_that_is_not_a_usable_notification_is_an_error(damage: object, reason: str) -> None:
    created, _ = _bodies()
    damage(created)  # type: ignore[operator]
    with pytest.raises(NotificationError, match=reason):
        list(created_versions(created))
