"""Reading a lake bucket on the embedded AWS (moto server over HTTP): the day's partitions are copied
and queried with DuckDB; other partitions and the error output are left alone."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest

from firehose.offline.lake import (
    LocalLake,
    S3Location,
    mirror_s3_partitions,
    parquet_files,
    partition_prefixes,
)
from tests.support.lake_samples import build_lake, parse_ts
from tests.support.moto_server import REGION

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=aws_env)


def test_the_day_partitions_of_an_s3_lake_are_mirrored_and_queried(s3: Any, tmp_path: Path) -> None:
    # GIVEN a lake bucket holding three days of Parquet under a prefix, and Firehose error output
    sample = build_lake(tmp_path / "source")
    s3.create_bucket(Bucket="lake")
    for path in parquet_files(sample.root):
        s3.upload_file(str(path), "lake", "prod/" + path.relative_to(sample.root).as_posix())
    s3.put_object(Bucket="lake", Key="prod/errors/format-conversion-failed/2026/11/02/x", Body=b"raw")
    s3.put_object(Bucket="lake", Key="prod/billing_rows/year=2026/month=11/day=02/notes.txt", Body=b"x")
    # WHEN the partitions of 11-02 and 11-03 are mirrored
    prefixes = partition_prefixes(date(2026, 11, 2), date(2026, 11, 3))
    copied = mirror_s3_partitions(s3, S3Location.parse("s3://lake/prod/"), prefixes, tmp_path / "mirror")
    # THEN exactly those days' Parquet objects are copied, keeping their keys as paths
    expected = [p.relative_to(sample.root) for p in parquet_files(sample.root) if "day=01" not in str(p)]
    mirrored = [p.relative_to(tmp_path / "mirror") for p in parquet_files(tmp_path / "mirror")]
    assert copied == len(expected) == len(mirrored)
    assert mirrored == expected
    assert not (tmp_path / "mirror" / "errors").exists()
    # and DuckDB reads every delivered copy of those days
    with LocalLake(tmp_path / "mirror") as lake:
        count = lake.query("SELECT count(*) FROM billing_rows").rows[0][0]
    assert count == sum(
        1 for ctr in sample.deliveries if parse_ts(ctr["InitiationTimestamp"]).date() >= date(2026, 11, 2)
    )


def test_s3_locations_parse_bucket_and_prefix() -> None:
    assert S3Location.parse("s3://lake") == S3Location("lake", "")
    assert S3Location.parse("s3://lake/a/b") == S3Location("lake", "a/b/")
    assert S3Location.parse("s3://lake/a/b/").key("billing_rows/") == "a/b/billing_rows/"
