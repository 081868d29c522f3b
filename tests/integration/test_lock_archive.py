"""``ctr-billing lock-archive`` against the embedded AWS: the sweep that finds a day's raw versions the
archive lock missed and, with --apply, locks them as the Lambda does."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from firehose.cli.commands import lock_archive
from firehose.cli.errors import CommandError
from firehose.cli.main import build_parser, main
from firehose.local_aws.server import EmbeddedAws

pytestmark = pytest.mark.integration
DAYS = 30


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture
def raw(aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """A raw bucket as the template makes it (Object Lock on, no default retention), pointed at."""
    for name, value in aws.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OBJECT_LOCK_MODE", raising=False)
    monkeypatch.delenv("OBJECT_LOCK_RETENTION_DAYS", raising=False)
    s3 = aws.client("s3")
    bucket = f"raw-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return s3, bucket


def _put(s3: Any, bucket: str, key: str) -> str:
    version: str = s3.put_object(Bucket=bucket, Key=key, Body=b"{}\n")["VersionId"]
    return version


def _args(*arguments: str) -> Any:
    argv = ["lock-archive", *arguments]
    return build_parser(argv).parse_args(argv)


def _run(*arguments: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = main(["lock-archive", *arguments, "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_a_day_s_unlocked_versions_are_found_then_locked_as_the_lambda_locks_them(
    raw: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a day's raw objects, one already locked, two (one an older version of the same key) not, and
    # an object of another day
    s3, bucket = raw
    locked_key, missed_key = "ctr/2026/11/02/14/raw-1.gz", "ctr/2026/11/02/15/raw-2.gz"
    locked = _put(s3, bucket, locked_key)
    s3.put_object_retention(
        Bucket=bucket,
        Key=locked_key,
        VersionId=locked,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": "2040-01-01T00:00:00Z"},
    )
    missed = [_put(s3, bucket, missed_key), _put(s3, bucket, missed_key)]
    other_day = _put(s3, bucket, "ctr/2026/11/03/00/raw-3.gz")

    # WHEN the day is checked  THEN the two unlocked versions are named and the exit status is 1
    status, report = _run("--date", "2026-11-02", "--raw", f"s3://{bucket}", capsys=capsys)
    assert status == 1
    assert (report["versions"], report["locked"], report["not_locked"]) == (3, 1, 2)
    assert report["location"] == f"s3://{bucket}/ctr/2026/11/02/"
    assert all(missed_key in line for line in report["not_locked_listed"])

    # WHEN it is run again with --apply and the template's policy
    monkeypatch.setenv("OBJECT_LOCK_MODE", "GOVERNANCE")
    monkeypatch.setenv("OBJECT_LOCK_RETENTION_DAYS", str(DAYS))
    status, report = _run("--date", "2026-11-02", "--raw", f"s3://{bucket}", "--apply", capsys=capsys)

    # THEN both are locked for DAYS from their LastModified, the longer lock is kept, the other day untouched
    assert status == 0
    assert (report["versions"], report["locked"], report["locked_now"], report["not_locked"]) == (3, 1, 2, 0)
    for version in missed:
        head = s3.head_object(Bucket=bucket, Key=missed_key, VersionId=version)
        retention = s3.get_object_retention(Bucket=bucket, Key=missed_key, VersionId=version)["Retention"]
        assert retention["Mode"] == "GOVERNANCE"
        held = retention["RetainUntilDate"] - head["LastModified"]
        assert abs(held - timedelta(days=DAYS)) < timedelta(seconds=2)
    kept = s3.get_object_retention(Bucket=bucket, Key=locked_key, VersionId=locked)["Retention"]
    assert kept["RetainUntilDate"].year == 2040
    assert "ObjectLockMode" not in s3.head_object(
        Bucket=bucket, Key="ctr/2026/11/03/00/raw-3.gz", VersionId=other_day
    )

    # AND a check afterwards finds every version locked
    status, report = _run("--date", "2026-11-02", "--raw", f"s3://{bucket}", capsys=capsys)
    assert (status, report["not_locked"]) == (0, 0)


def test_the_text_summary_says_what_to_do(raw: tuple[Any, str]) -> None:
    s3, bucket = raw
    _put(s3, bucket, "ctr/2026/11/02/14/raw-1.gz")
    out = io.StringIO()
    assert lock_archive.run(_args("--date", "2026-11-02", "--raw", f"s3://{bucket}"), out) == 1
    assert "not locked: 1 (run again with --apply to lock them)" in out.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--date", "2026-11-02", "--raw", "out/demo/raw"], "--raw must be s3://"),
        (["--date", "20261102", "--raw", "s3://bucket"], "--date must be YYYY-MM-DD"),
        (["--date", "2026-11-02", "--raw", "s3://bucket", "--apply"], "OBJECT_LOCK_MODE"),
    ],
)
def test_bad_arguments_and_a_missing_policy_are_refused_before_any_request(
    raw: tuple[Any, str], arguments: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        lock_archive.run(_args(*arguments))


def test_a_bucket_that_does_not_exist_is_a_one_line_error(raw: tuple[Any, str]) -> None:
    args = _args("--date", "2026-11-02", "--raw", "s3://no-such-bucket-x")
    with pytest.raises(CommandError, match=r"AWS refused .*NoSuchBucket"):
        lock_archive.run(args)
