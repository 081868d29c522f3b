"""The local runtime's Parquet (Firehose format conversion from the Glue table) is what the lake and its
queries expect: exactly the registry's schema, read back by DuckDB with the right types and values."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from firehose.lake import LocalLake
from firehose.template import load_template, resource_properties
from tests.lake_samples import duration, extension, parse_ts, sample_deliveries
from transform.columns import arrow_schema
from transform.rows import json_row, partition_keys
from transform.rules import BillableContact, classify
from transform.settings import TransformSettings

runtime_parquet = pytest.importorskip("firehose.runtime.parquet")


def test_runtime_parquet_has_the_registry_schema_and_duckdb_reads_every_row(tmp_path: Path) -> None:
    # GIVEN the json-mode transform's rows of realistic CTRs, grouped by their partition keys
    deliveries = sample_deliveries()
    batches: dict[tuple[str, str, str], list[bytes]] = {}
    for ctr in deliveries:
        contact = classify(ctr, TransformSettings())
        assert isinstance(contact, BillableContact)
        keys = partition_keys(contact)
        batches.setdefault((keys["year"], keys["month"], keys["day"]), []).append(json_row(contact))
    # WHEN the runtime's format conversion (schema from the template's Glue table) writes each partition
    table = resource_properties(load_template(), "BillingRowsTable")["TableInput"]
    converter = runtime_parquet.ParquetConverter(runtime_parquet.glue_arrow_schema(table))
    for (year, month, day), records in batches.items():
        converted = converter.convert(records)
        assert converted.failures == {}
        folder = tmp_path / "lake" / "billing_rows" / f"year={year}" / f"month={month}" / f"day={day}"
        folder.mkdir(parents=True)
        (folder / "ctr-billing-lake-1-2026-11-02-00-00-00-x.parquet").write_bytes(converted.parquet)
    # THEN each object read back with pyarrow has exactly the registry's (= Glue table's) schema
    for path in (tmp_path / "lake").rglob("*.parquet"):
        assert pq.read_schema(path).remove_metadata() == arrow_schema()
    # and DuckDB's hive-partition reading returns every row with its values
    with LocalLake(tmp_path / "lake") as lake:
        rows = lake.query("SELECT * FROM billing_rows").records()
    assert len(rows) == len(deliveries)
    by_version = {(row["contact_id"], row["last_update_timestamp"]): row for row in rows}
    for ctr in deliveries:
        row = by_version[(ctr["ContactId"], parse_ts(ctr["LastUpdateTimestamp"]).replace(tzinfo=None))]
        assert row["duration_seconds"] == duration(ctr)
        assert row["provider_extension"] == extension(ctr)
        assert isinstance(row["initiation_timestamp"], datetime)
        assert row["initiation_timestamp"] == parse_ts(ctr["InitiationTimestamp"]).replace(tzinfo=None)
        assert row["year"] == ctr["InitiationTimestamp"][:4]
