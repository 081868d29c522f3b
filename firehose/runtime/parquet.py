"""Record format conversion: JSON (OpenX JSON SerDe rules) to Parquet with the Glue table's schema."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "bigint": pa.int64(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "tinyint": pa.int8(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    # Same unit and zone as transform.columns.arrow_type: instants in UTC, millisecond precision.
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "date": pa.date32(),
}


class SchemaError(ValueError):
    """The Glue table has a column type the local conversion does not support."""


class ConversionError(ValueError):
    """One record does not match the schema. The message names the column, never the value."""


def arrow_type(glue_type: str) -> pa.DataType:
    name = glue_type.strip().lower()
    if name in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[name]
    if name.startswith(("varchar", "char")):
        return pa.string()
    decimal = _DECIMAL.fullmatch(name)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    raise SchemaError(f"Glue column type {glue_type!r} is not supported by local format conversion")


def glue_arrow_schema(table: Mapping[str, Any]) -> pa.Schema:
    """The Parquet schema of a Glue table: its columns (not its partition keys), in order."""
    columns = table["StorageDescriptor"]["Columns"]
    return pa.schema([pa.field(column["Name"], arrow_type(column["Type"])) for column in columns])


def _timestamp(value: Any) -> datetime:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TypeError


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _convert(value: Any, data_type: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_string(data_type):
        return _string(value)
    if pa.types.is_integer(data_type):
        return _integer(value)
    if pa.types.is_timestamp(data_type):
        return _timestamp(value)
    if pa.types.is_floating(data_type):
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    if pa.types.is_boolean(data_type):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError
    if pa.types.is_date(data_type):
        return date.fromisoformat(str(value))
    if pa.types.is_decimal(data_type):
        return Decimal(str(value))
    raise TypeError


@dataclass(frozen=True, slots=True)
class Converted:
    parquet: bytes | None
    rows: int
    # index of the record in the input -> why it failed (column name and problem, no value)
    failures: dict[int, str]


class ParquetConverter:
    def __init__(self, schema: pa.Schema, compression: str = "SNAPPY", case_insensitive: bool = True) -> None:
        self.schema = schema
        self._compression = "none" if compression == "UNCOMPRESSED" else compression.lower()
        self._case_insensitive = case_insensitive
        self._fields = [(field.name, field.name.lower(), field.type) for field in schema]

    def convert(self, records: Sequence[bytes]) -> Converted:
        columns: dict[str, list[Any]] = {name: [] for name, _, _ in self._fields}
        failures: dict[int, str] = {}
        rows = 0
        for index, data in enumerate(records):
            try:
                row = self._row(data)
            except ConversionError as error:
                failures[index] = str(error)
                continue
            for name, value in row.items():
                columns[name].append(value)
            rows += 1
        if rows == 0:
            return Converted(None, 0, failures)
        table = pa.Table.from_pydict(columns, schema=self.schema)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression=self._compression)
        return Converted(sink.getvalue(), rows, failures)

    def _row(self, data: bytes) -> dict[str, Any]:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ConversionError("the record is not JSON") from None
        if not isinstance(document, dict):
            raise ConversionError("the record is not a JSON object")
        if self._case_insensitive:
            document = {str(key).lower(): value for key, value in document.items()}
        row: dict[str, Any] = {}
        for name, lowered, data_type in self._fields:
            value = document.get(lowered if self._case_insensitive else name)
            try:
                row[name] = _convert(value, data_type)
            except (TypeError, ValueError, InvalidOperation, OverflowError):
                raise ConversionError(f"column {name} cannot be read as {data_type}") from None
        return row
