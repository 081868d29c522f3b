"""Mirroring an s3:// lake for DuckDB: only lake data objects are copied, and only inside the mirror.

Object keys are text anyone who can write to the bucket chooses; a key is never trusted as a path.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from firehose.offline.lake import S3Location, mirror_s3_partitions, partition_prefixes
from tests.support.moto_server import REGION
from transform.core.columns import arrow_schema

pytestmark = pytest.mark.integration
DAY = "billing_rows/year=2026/month=11/day=02/"


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(arrow_schema().empty_table(), buffer)
    return buffer.getvalue()


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=aws_env)


@pytest.mark.parametrize(
    "hostile",
    [
        DAY + "../../../../../escaped.parquet",
        DAY + "..%2F..%2Fescaped.parquet",
        DAY + "nested/../../escaped.parquet",
        DAY + ".hidden.parquet",
        DAY + "a/b.parquet",
    ],
)
def test_only_partition_objects_are_mirrored_and_never_outside(s3: Any, tmp_path: Path, hostile: str) -> None:
    # GIVEN a lake bucket with a real data object and a key shaped to escape the mirror folder
    s3.create_bucket(Bucket="lake-mirror")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket="lake-mirror"):
        for version in page.get("Versions", []):
            s3.delete_object(Bucket="lake-mirror", Key=version["Key"])
    body = parquet_bytes()
    s3.put_object(Bucket="lake-mirror", Key=DAY + "lake-1-2026-11-02-10-00-00-abc.parquet", Body=body)
    s3.put_object(Bucket="lake-mirror", Key=hostile, Body=body)
    mirror = tmp_path / "deep" / "mirror"
    mirror.mkdir(parents=True)
    # WHEN the day's partitions are mirrored
    day = date(2026, 11, 2)
    copied = mirror_s3_partitions(
        s3, S3Location.parse("s3://lake-mirror"), partition_prefixes(day, day), mirror
    )
    # THEN the data object is there, the hostile key was skipped, and nothing was written outside
    assert copied == 1
    assert (mirror / DAY / "lake-1-2026-11-02-10-00-00-abc.parquet").read_bytes() == body
    written = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    assert written == [mirror / DAY / "lake-1-2026-11-02-10-00-00-abc.parquet"]
