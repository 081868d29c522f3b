"""The column registry: the one schema of the vendor CSV, the JSON rows, Parquet and the Glue table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
from cfn_tools import load_yaml

from transform.core.columns import (
    COLUMN_NAMES,
    COLUMNS,
    DEFAULT_CSV_COLUMNS,
    LAKE_TABLE,
    PARTITION_KEYS,
    ColumnType,
    arrow_schema,
)
from transform.core.rows import EXTRACTORS, UTC_TEXT_EXTRACTORS

TEMPLATE = Path(__file__).resolve().parents[3] / "cloudformation" / "template.yaml"


def test_names_are_unique_snake_case() -> None:
    assert len(set(COLUMN_NAMES)) == len(COLUMNS)
    assert all(re.fullmatch(r"[a-z][a-z_]*", name) for name in COLUMN_NAMES)


def test_vendor_csv_default_is_the_design_order() -> None:
    assert DEFAULT_CSV_COLUMNS == (
        "call_type",
        "initiation_timestamp",
        "duration_seconds",
        "patient_phone",
        "provider_extension",
        "hold_seconds",
    )


def test_every_column_has_exactly_one_value_and_every_timestamp_a_utc_text() -> None:
    # GIVEN the registry  THEN each column is extracted, and timestamps also have the fast UTC spelling
    assert tuple(EXTRACTORS) == COLUMN_NAMES
    assert set(UTC_TEXT_EXTRACTORS) == {c.name for c in COLUMNS if c.type is ColumnType.TIMESTAMP}


def test_arrow_schema_has_the_lake_types() -> None:
    # GIVEN the registry  WHEN turned into the Parquet schema  THEN strings, int64 and UTC timestamps
    schema = arrow_schema()
    assert schema.names == list(COLUMN_NAMES)
    expected = {
        ColumnType.STRING: pa.string(),
        ColumnType.BIGINT: pa.int64(),
        ColumnType.TIMESTAMP: pa.timestamp("ms", tz="UTC"),
    }
    for column in COLUMNS:
        assert schema.field(column.name).type == expected[column.type]


def _glue_table() -> dict[str, Any]:
    template: dict[str, Any] = load_yaml(TEMPLATE.read_text(encoding="utf-8"))
    tables = [r for r in template["Resources"].values() if r["Type"] == "AWS::Glue::Table"]
    [table] = [t for t in tables if t["Properties"]["TableInput"]["Name"] == LAKE_TABLE]
    table_input: dict[str, Any] = table["Properties"]["TableInput"]
    return table_input


def test_the_glue_table_is_the_registry() -> None:
    # GIVEN the template's billing_rows table  THEN its columns and types are the registry's, in order
    table = _glue_table()
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(c.name, c.type.glue_type) for c in COLUMNS]
    assert [k["Name"] for k in table["PartitionKeys"]] == list(PARTITION_KEYS)
