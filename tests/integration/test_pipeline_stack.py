# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""The template's three delivery streams run on the embedded AWS: GZIP, SSE-KMS on every object,
Parquet with the Glue table's schema, prefixes and object names as Firehose makes them."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from firehose.deploy.template import load_template, resource_properties
from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack
from firehose.runtime.parquet import glue_arrow_schema
from tests.support.pipeline_support import (
    deployed,  # noqa: F401
    embedded_aws,  # noqa: F401
    objects,
    put_records,
    runtime,
)
from transform.core.columns import LAKE_TABLE, arrow_schema

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "firehose" / "data" / "example-ctrs.jsonl"
BUCKETS = {
    "RawDeliveryStream": "RawBucket",
    "VendorDeliveryStream": "VendorBucket",
    "LakeDeliveryStream": "LakeBucket",
}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _prefix_pattern(prefix: str) -> str:
    """The regex of the keys a prefix evaluates to (expressions become the shapes of their values)."""
    pattern = re.escape(prefix)
    pattern = re.sub(
        r"!\\\{timestamp:([^}]*)\\\}", lambda m: re.sub(r"[A-Za-z]", r"\\d", m.group(1)), pattern
    )
    pattern = pattern.replace(
        re.escape("!{firehose:error-output-type}"), "(processing-failed|format-conversion-failed)"
    )
    return re.sub(r"!\\\{partitionKeyFromLambda:[a-z]+\\\}", r"\\d+", pattern)


@pytest.fixture
def delivered(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, tmp_path: Path
) -> dict[str, dict[str, bytes]]:
    lines = [line.rstrip(b"\n") for line in EXAMPLES.read_bytes().splitlines(keepends=True)]
    with runtime(embedded_aws, tmp_path / "state"):
        put_records(embedded_aws, deployed.resources["ContactTraceRecordsStream"], [*lines, b"not a ctr"])
    return {
        logical_id: objects(embedded_aws, deployed.resources[bucket])
        for logical_id, bucket in BUCKETS.items()
    }


def test_every_object_is_encrypted_with_the_stack_key(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, delivered: dict[str, dict[str, bytes]]
) -> None:
    # GIVEN the objects the three delivery streams wrote WHEN their metadata is read
    s3 = embedded_aws.client("s3")
    key_arn = embedded_aws.client("kms").describe_key(KeyId=deployed.resources["BillingKey"])["KeyMetadata"][
        "Arn"
    ]
    heads = [
        s3.head_object(Bucket=deployed.resources[BUCKETS[logical_id]], Key=key)
        for logical_id, found in delivered.items()
        for key in found
    ]
    # THEN every one, data and errors alike, is SSE-KMS with the stack's key
    assert len(heads) >= 5
    assert {(head["ServerSideEncryption"], head["SSEKMSKeyId"]) for head in heads} == {("aws:kms", key_arn)}


def test_raw_objects_are_gzip_of_every_record_newline_delimited(
    delivered: dict[str, dict[str, bytes]],
) -> None:
    # GIVEN the raw archive's data objects
    data = {
        key: body for key, body in delivered["RawDeliveryStream"].items() if not key.startswith("errors/")
    }
    # WHEN they are decompressed THEN they hold every record put, one per line
    assert all(key.endswith(".gz") for key in data)
    lines = [line for body in data.values() for line in gzip.decompress(body).splitlines()]
    expected = [line.rstrip(b"\n") for line in EXAMPLES.read_bytes().splitlines(keepends=True)]
    assert sorted(lines) == sorted([*expected, b"not a ctr"])


def test_lake_parquet_schema_is_the_glue_tables(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, delivered: dict[str, dict[str, bytes]]
) -> None:
    # GIVEN the lake's Parquet objects and the Glue table
    table = embedded_aws.client("glue").get_table(
        DatabaseName=deployed.resources["GlueDatabase"], Name=LAKE_TABLE
    )
    parquet = [body for key, body in delivered["LakeDeliveryStream"].items() if key.endswith(".parquet")]
    assert parquet
    # WHEN their schemas are read THEN they are the Glue table's, which is the column registry's
    for body in parquet:
        schema = pq.read_schema(io.BytesIO(body))
        assert schema.remove_metadata() == glue_arrow_schema(table["Table"])
        assert schema.remove_metadata() == arrow_schema()


def test_prefixes_and_object_names_are_firehose_s(
    embedded_aws: EmbeddedAws, deployed: DeployedStack, delivered: dict[str, dict[str, bytes]]
) -> None:
    # GIVEN the template's prefixes and the delivery streams' names and versions
    template = load_template()
    firehose = embedded_aws.client("firehose")
    for logical_id, found in delivered.items():
        destination = resource_properties(template, logical_id)["ExtendedS3DestinationConfiguration"]
        name = deployed.resources[logical_id]
        version = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
            "VersionId"
        ]
        extension = re.escape(
            destination.get("FileExtension", ".gz" if destination["CompressionFormat"] == "GZIP" else "")
        )
        data = re.compile(
            _prefix_pattern(destination["Prefix"])
            + re.escape(f"{name}-{version}-")
            + r"\d{4}(-\d\d){5}-"
            + UUID
            + extension
        )
        errors = re.compile(
            _prefix_pattern(destination["ErrorOutputPrefix"])
            + re.escape(f"{name}-{version}-")
            + r"\d{4}(-\d\d){5}-"
            + UUID
        )
        # WHEN the keys are matched THEN each is a data object or an error object of that stream
        assert found, logical_id
        for key in found:
            assert data.fullmatch(key) or errors.fullmatch(key), key
        # and the record that is not a CTR is an error document of the transforming streams only
        has_errors = any(key.startswith("errors/processing-failed/") for key in found)
        assert has_errors == (logical_id != "RawDeliveryStream"), logical_id


def test_lake_partitions_come_from_the_lambda_partition_keys(delivered: dict[str, dict[str, bytes]]) -> None:
    # GIVEN the lake's Parquet objects WHEN their partition folders are compared with their rows
    for key, body in delivered["LakeDeliveryStream"].items():
        if not key.endswith(".parquet"):
            continue
        match = re.search(r"year=(\d{4})/month=(\d\d)/day=(\d\d)/", key)
        assert match, key
        days = {
            value.strftime("%Y-%m-%d")
            for value in pq.read_table(io.BytesIO(body))["initiation_timestamp"].to_pylist()
        }
        # THEN every row of an object initiated on its partition's day (UTC)
        assert days == {"-".join(match.groups())}
