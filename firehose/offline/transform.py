"""The offline transform: the Lambda's core over a file of CTRs (one JSON document per line).

Streams in constant memory: lines are read one at a time and Parquet is written in row groups.
Directory enrichment and the ledger are Lambda batch stages that need AWS; offline runs skip them.
"""

from __future__ import annotations

import enum
import errno
import gzip
import io
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from transform.core.batch import RecordDecodeError, parse_document
from transform.core.columns import COLUMNS
from transform.core.rows import CsvEncoder, json_row, row_values
from transform.core.rules import (
    BillableContact,
    InvalidContact,
    NotAContactRecord,
    NotBillable,
    Outcome,
    classify,
)
from transform.core.settings import TransformSettings

PARQUET_ROW_GROUP = 32_768


class OfflineFormat(enum.Enum):
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


@dataclass
class OfflineSummary:
    lines: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    not_billable: Counter[str] = field(default_factory=Counter)
    # (line number, problem) of the first failures; problems never hold field values.
    first_failures: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "outcomes": {
                outcome.value: count for outcome, count in sorted(self.outcomes.items(), key=_by_value)
            },
            "not_billable": dict(sorted(self.not_billable.items())),
        }


def _by_value(item: tuple[Outcome, int]) -> str:
    return item[0].value


class RowSink(Protocol):
    def write(self, contact: BillableContact) -> None: ...

    def close(self) -> None: ...


class _BytesSink:
    def __init__(self, stream: IO[bytes], encode: Callable[[BillableContact], bytes], header: bytes) -> None:
        self._stream = stream
        self._encode = encode
        stream.write(header)

    def write(self, contact: BillableContact) -> None:
        self._stream.write(self._encode(contact))

    def close(self) -> None:
        self._stream.flush()


class _ParquetSink:
    """Billing rows as Parquet with the data lake's schema (``transform.core.columns.arrow_schema``)."""

    def __init__(self, stream: IO[bytes]) -> None:
        import pyarrow.parquet as pq

        from transform.core.columns import arrow_schema

        self._schema = arrow_schema()
        self._writer = pq.ParquetWriter(stream, self._schema, compression="snappy")
        self._columns: dict[str, list[Any]] = {column.name: [] for column in COLUMNS}

    def write(self, contact: BillableContact) -> None:
        columns = self._columns
        for name, value in row_values(contact).items():
            columns[name].append(value)
        if len(columns["contact_id"]) >= PARQUET_ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._columns["contact_id"]:
            table = pa.Table.from_pydict(self._columns, schema=self._schema)
            self._writer.write_table(table)
            self._columns = {column.name: [] for column in COLUMNS}

    def close(self) -> None:
        self._flush()
        self._writer.close()


def make_sink(output_format: OfflineFormat, stream: IO[bytes], settings: TransformSettings) -> RowSink:
    if output_format is OfflineFormat.PARQUET:
        return _ParquetSink(stream)
    if output_format is OfflineFormat.JSON:
        return _BytesSink(stream, json_row, b"")
    encoder = CsvEncoder(settings.csv_columns, settings.billing_timezone)
    return _BytesSink(stream, encoder.line, encoder.header)


# utf-8-sig: a byte-order mark that an editor or a Windows export put before the first line is skipped
# (it is not part of the first CTR); undecodable bytes survive as surrogate escapes and fail their line.
_INPUT_ENCODING = "utf-8-sig"


@contextmanager
def open_lines(path: str) -> Iterator[IO[str]]:
    """Text lines of a file (``.gz`` decompressed) or of stdin for ``-``."""
    if path == "-":
        yield io.TextIOWrapper(sys.stdin.buffer, encoding=_INPUT_ENCODING, errors="surrogateescape")
    elif path.endswith(".gz"):
        with gzip.open(path, "rt", encoding=_INPUT_ENCODING, errors="surrogateescape") as stream:
            yield stream
    else:
        with open(path, encoding=_INPUT_ENCODING, errors="surrogateescape") as stream:
            yield stream


@contextmanager
def open_output(path: str, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file to write, ``-`` for stdout. A regular file is written beside its place under a temporary
    name and renamed over it only when the block completes: a failed run never leaves a partial file or
    destroys the one that was there. A device or pipe (``/dev/null``) is written as it is."""
    if path == "-":
        buffer = getattr(sys.stdout, "buffer", None)
        if "b" in mode or buffer is None:
            stdout: IO[Any] = buffer if "b" in mode and buffer is not None else sys.stdout
            yield stdout
            stdout.flush()
            return
        # Text as the temporary file below writes it: undecodable input kept byte for byte
        # (surrogateescape), not a UnicodeEncodeError half-way through.
        sys.stdout.flush()
        text = io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", newline="")
        try:
            yield text
            text.flush()
        finally:
            text.detach()
        return
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder", path)
    binary = "b" in mode
    if target.exists() and not target.is_file():
        with open(
            target,
            mode,
            encoding=None if binary else "utf-8",
            errors=None if binary else "surrogateescape",
        ) as special:
            yield special
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial: IO[Any] = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below, renamed or removed)
        mode,
        dir=target.parent,
        prefix=f".{target.name}.",
        suffix=".partial",
        delete=False,
        encoding=None if binary else "utf-8",
        errors=None if binary else "surrogateescape",
    )
    try:
        with partial:
            yield partial
        os.replace(partial.name, target)
    except BaseException:
        Path(partial.name).unlink(missing_ok=True)
        raise


MAX_REPORTED_FAILURES = 20


def transform_lines(
    lines: IO[str],
    sink: RowSink,
    settings: TransformSettings,
    rejects: IO[str] | None = None,
    on_line: Callable[[], None] | None = None,
) -> OfflineSummary:
    try:
        return _transform_lines(lines, sink, settings, rejects, on_line)
    except BaseException:
        # Close the sink while its stream is open (a Parquet writer left to the garbage collector
        # prints "Exception ignored ... write to closed file" after the one-line error).
        with suppress(Exception):
            sink.close()
        raise


def _transform_lines(
    lines: IO[str],
    sink: RowSink,
    settings: TransformSettings,
    rejects: IO[str] | None,
    on_line: Callable[[], None] | None,
) -> OfflineSummary:
    summary = OfflineSummary()
    outcomes = summary.outcomes
    for number, line in enumerate(lines, start=1):
        if on_line is not None:
            on_line()
        summary.lines = number
        if line.isspace():
            continue
        try:
            classification = classify(_document(line), settings)
            if isinstance(classification, BillableContact):
                sink.write(classification)
        except RecordDecodeError as error:
            outcomes[Outcome.MALFORMED] += 1
            _reject(summary, number, str(error), line, rejects)
            continue
        except UnicodeEncodeError:  # from the sink: _document turns undecodable input into the above
            outcomes[Outcome.INVALID] += 1
            _reject(summary, number, "text is not valid Unicode", line, rejects)
            continue
        except Exception as error:  # a bug must cost one line, never a million-line run (as in the Lambda)
            outcomes[Outcome.INVALID] += 1
            _reject(summary, number, f"unexpected {type(error).__name__}", line, rejects)
            continue
        if isinstance(classification, BillableContact):
            outcomes[Outcome.BILLABLE] += 1
        elif isinstance(classification, NotBillable):
            outcomes[Outcome.NOT_BILLABLE] += 1
            summary.not_billable[classification.reason.value] += 1
        elif isinstance(classification, NotAContactRecord):
            outcomes[Outcome.NOT_A_CONTACT_RECORD] += 1
        else:
            assert isinstance(classification, InvalidContact)
            outcomes[Outcome.INVALID] += 1
            _reject(summary, number, classification.problem, line, rejects)
    sink.close()
    return summary


def _document(line: str) -> dict[str, Any]:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes survive as surrogate escapes
        raise RecordDecodeError("data is not UTF-8") from None
    return parse_document(line)


def _reject(summary: OfflineSummary, number: int, problem: str, line: str, rejects: IO[str] | None) -> None:
    if len(summary.first_failures) < MAX_REPORTED_FAILURES:
        summary.first_failures.append((number, problem))
    if rejects is not None:
        rejects.write(line if line.endswith("\n") else line + "\n")
