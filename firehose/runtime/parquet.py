"""Record format conversion: JSON (OpenX JSON SerDe rules) to Parquet with the Glue table's schema."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
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
    # Same unit and zone as transform.core.columns.arrow_type: instants in UTC, millisecond precision.
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
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except OSError:  # beyond the platform's time_t: the same problem as a year past 9999
            raise OverflowError from None
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        parsed = datetime.fromisoformat(text)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TypeError


def _integer_reader(data_type: pa.DataType) -> Callable[[Any], int]:
    bits = data_type.bit_width
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if pa.types.is_unsigned_integer(data_type):
        low, high = 0, 2**bits - 1

    def read(value: Any) -> int:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            number = int(value.strip())
        else:
            raise TypeError
        if not low <= number <= high:
            raise OverflowError
        return number

    return read


def _string(value: Any) -> str:
    if isinstance(value, str):
        # A JSON escape can hold a lone surrogate, which Parquet's UTF-8 cannot (UnicodeEncodeError).
        if not value.isascii():
            value.encode("utf-8")
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    return float(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError


def _date(value: Any) -> date:
    return date.fromisoformat(str(value))


def _decimal_reader(data_type: pa.DataType) -> Callable[[Any], Decimal]:
    # Precision and scale are enforced here, as Parquet's decimal cannot hold more: Inexact (digits
    # lost to the scale) and InvalidOperation (more digits than the precision) both fail the record.
    context = Context(prec=data_type.precision, traps=[InvalidOperation, Inexact])
    quantum = Decimal(1).scaleb(-data_type.scale)

    def read(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise TypeError
        number = Decimal(str(value).strip())
        if not number.is_finite():
            raise ValueError
        return context.quantize(number, quantum)

    return read


def _reader(data_type: pa.DataType) -> Callable[[Any], Any]:
    """The function that reads one JSON value as ``data_type``, raising for any value Parquet cannot hold."""
    if pa.types.is_string(data_type):
        return _string
    if pa.types.is_integer(data_type):
        return _integer_reader(data_type)
    if pa.types.is_timestamp(data_type):
        return _timestamp
    if pa.types.is_floating(data_type):
        return _float
    if pa.types.is_boolean(data_type):
        return _boolean
    if pa.types.is_date(data_type):
        return _date
    if pa.types.is_decimal(data_type):
        return _decimal_reader(data_type)
    raise SchemaError(f"Arrow type {data_type} is not supported by local format conversion")


# What reading a value can raise: ValueError covers UnicodeEncodeError; ArithmeticError covers
# OverflowError and the decimal signals; RecursionError comes from deeply nested JSON.
_VALUE_ERRORS = (TypeError, ValueError, ArithmeticError, RecursionError)


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
        self._fields = [(field.name, field.name.lower(), field.type, _reader(field.type)) for field in schema]

    def convert(self, records: Sequence[bytes]) -> Converted:
        rows: list[tuple[int, dict[str, Any]]] = []
        failures: dict[int, str] = {}
        for index, data in enumerate(records):
            try:
                rows.append((index, self._row(data)))
            except ConversionError as error:
                failures[index] = str(error)
        table = self._table(rows, failures)
        if table is None:
            return Converted(None, 0, failures)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression=self._compression)
        return Converted(sink.getvalue(), table.num_rows, failures)

    def _table(self, rows: list[tuple[int, dict[str, Any]]], failures: dict[int, str]) -> pa.Table | None:
        """The rows as one table. Every value was checked when read; should Arrow still refuse one, the
        rows are tried one by one so that only the records it refuses fail, never the whole buffer."""
        if not rows:
            return None
        try:
            return self._build([row for _, row in rows])
        except (pa.ArrowException, *_VALUE_ERRORS):
            pass
        kept: list[dict[str, Any]] = []
        for index, row in rows:
            try:
                self._build([row])
            except (pa.ArrowException, *_VALUE_ERRORS):
                failures[index] = self._unwritable_column(row)
                continue
            kept.append(row)
        return self._build(kept) if kept else None

    def _build(self, rows: list[dict[str, Any]]) -> pa.Table:
        columns = {name: [row[name] for row in rows] for name, _, _, _ in self._fields}
        return pa.Table.from_pydict(columns, schema=self.schema)

    def _unwritable_column(self, row: dict[str, Any]) -> str:
        for name, _, data_type, _ in self._fields:
            try:
                pa.array([row[name]], type=data_type)
            except (pa.ArrowException, *_VALUE_ERRORS):
                return f"column {name} cannot be written as {data_type}"
        return "the record cannot be written as Parquet"

    def _row(self, data: bytes) -> dict[str, Any]:
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise ConversionError("the record is not JSON") from None
        if not isinstance(document, dict):
            raise ConversionError("the record is not a JSON object")
        if self._case_insensitive:
            document = {str(key).lower(): value for key, value in document.items()}
        row: dict[str, Any] = {}
        for name, lowered, data_type, read in self._fields:
            value = document.get(lowered if self._case_insensitive else name)
            if value is None:
                row[name] = None
                continue
            try:
                row[name] = read(value)
            except _VALUE_ERRORS:
                raise ConversionError(f"column {name} cannot be read as {data_type}") from None
        return row
