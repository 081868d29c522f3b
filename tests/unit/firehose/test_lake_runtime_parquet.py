"""The local runtime's Parquet (Firehose format conversion from the Glue table) is what the lake and its
queries expect: exactly the registry's schema, read back by DuckDB with the right types and values."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from firehose.deploy.template import load_template, resource_properties
from firehose.offline.lake import LocalLake
from firehose.runtime import parquet as runtime_parquet
from tests.support.lake_samples import (
    contact_duration,
    duration,
    extension,
    parse_ts,
    provider_left,
    sample_deliveries,
)
from transform.core.columns import arrow_schema
from transform.core.rows import json_row, partition_keys
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings


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
        assert converted.failures == {} and converted.parquet is not None
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
        assert row["provider_left_timestamp"] == provider_left(ctr).replace(tzinfo=None)
        assert row["contact_duration_seconds"] == contact_duration(ctr)
        assert row["next_contact_id"] == (ctr.get("NextContactId") or "")
        assert row["provider_extension"] == extension(ctr)
        assert isinstance(row["initiation_timestamp"], datetime)
        assert row["initiation_timestamp"] == parse_ts(ctr["InitiationTimestamp"]).replace(tzinfo=None)
        assert row["year"] == ctr["InitiationTimestamp"][:4]


HOSTILE_VALUES = [
    ("count", 2**63, "int64"),
    ("count", -(2**63) - 1, "int64"),
    ("count", 1e30, "int64"),
    ("count", "99999999999999999999", "int64"),
    ("small", 128, "int8"),
    ("at", 1e20, "timestamp"),
    ("at", 10**400, "timestamp"),
    ("name", "\ud800", "string"),
    ("amount", "1.234", "decimal"),
    ("amount", 123456, "decimal"),
    ("amount", "NaN", "decimal"),
]


@pytest.mark.parametrize(("column", "value", "kind"), HOSTILE_VALUES)
def test_a_value_parquet_cannot_hold_fails_only_its_record(column: str, value: object, kind: str) -> None:
    # GIVEN a converter for a table of every bounded type, and a buffer with one hostile record among good ones
    schema = pa.schema(
        [
            ("name", pa.string()),
            ("count", pa.int64()),
            ("small", pa.int8()),
            ("at", pa.timestamp("ms", tz="UTC")),
            ("amount", pa.decimal128(5, 2)),
        ]
    )
    converter = runtime_parquet.ParquetConverter(schema)
    good = b'{"name": "ok", "count": 9223372036854775807, "small": -128, "amount": "999.99"}'
    hostile = json.dumps({column: value}).encode()  # ensure_ascii: a lone surrogate stays a JSON escape

    # WHEN the buffer is converted
    converted = converter.convert([good, hostile, good])

    # THEN the good records are rows and only the hostile one fails, naming its column but not its value
    assert converted.rows == 2
    assert set(converted.failures) == {1}
    assert column in converted.failures[1] and kind in converted.failures[1]
    assert str(value) not in converted.failures[1]
    table = pq.read_table(pa.BufferReader(converted.parquet))
    assert table["count"].to_pylist() == [2**63 - 1, 2**63 - 1]


def test_a_value_arrow_still_refuses_fails_only_its_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a converter whose integer reader does not check bounds (a value only Arrow can refuse)
    checked = runtime_parquet._reader
    monkeypatch.setattr(
        runtime_parquet,
        "_reader",
        lambda data_type: int if pa.types.is_integer(data_type) else checked(data_type),
    )
    converter = runtime_parquet.ParquetConverter(pa.schema([("name", pa.string()), ("count", pa.int64())]))

    # WHEN a buffer with an out-of-range integer among good records is converted
    converted = converter.convert([b'{"name": "a", "count": 1}', b'{"count": 1e30}', b'{"name": "b"}'])

    # THEN Arrow's refusal fails that record alone and the others are written
    assert converted.failures == {1: "column count cannot be written as int64"}
    table = pq.read_table(pa.BufferReader(converted.parquet))
    assert table.to_pylist() == [{"name": "a", "count": 1}, {"name": "b", "count": None}]
