"""Query a local data lake with DuckDB, in Athena's SQL dialect.

A lake folder holds what the lake delivery stream writes to the lake bucket (a demo's ``DIR/lake/``):
``billing_rows/year=YYYY/month=MM/day=DD/*.parquet``. ``LocalLake`` exposes it as the table
``billing_rows`` with Glue's types (timestamps in UTC without a zone, partition keys as strings), creates
the ``latest_billing_rows`` view from its named query, and ``settled_manifests`` over a folder of settled
files' manifests. SQL written for Athena (Trino) is translated to DuckDB's dialect by sqlglot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

import duckdb
import sqlglot
import sqlglot.errors

from transform.core.columns import COLUMNS, LAKE_TABLE, PARTITION_KEYS, ColumnType
from transform.settlement.queries import LATEST_VIEW, named_queries, sql_string

if TYPE_CHECKING:
    import pyarrow as pa
    from mypy_boto3_s3 import S3Client

SETTLED_MANIFESTS = "settled_manifests"
# Where ``ctr-billing demo`` leaves its lake by default (the demo's DIR defaults to out/demo).
DEFAULT_LAKE = Path("out/demo/lake")
ATHENA_DIALECT = "athena"

_DUCKDB_TYPES = {ColumnType.STRING: "VARCHAR", ColumnType.BIGINT: "BIGINT", ColumnType.TIMESTAMP: "TIMESTAMP"}
_MANIFEST_COLUMNS = {
    "date": "VARCHAR",
    "rows": "BIGINT",
    "sha256": "VARCHAR",
    "columns": "VARCHAR[]",
    "generated_at": "VARCHAR",
    "timezone": "VARCHAR",
    "window_start_utc": "VARCHAR",
    "window_end_utc": "VARCHAR",
}
# A lake object's key below the lake prefix: a partition folder and a plain file name, nothing else (a
# key is attacker-controlled text; ``..`` or a second slash could lead a mirror outside its folder).
_PARTITION_OBJECT = re.compile(
    LAKE_TABLE + r"/year=[0-9]{4}/month=[0-9]{2}/day=[0-9]{2}/(?!\.)[A-Za-z0-9._=-]{1,200}\.parquet"
)
# Errors about the SQL text itself, whose messages quote only the SQL. Any other error may quote a value
# from the lake (a patient's phone number): only its kind is shown. InvalidInputException is a
# ProgrammingError too, but json_extract's quotes the value it could not parse.
_ABOUT_THE_SQL_TEXT = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)


# ANSI escape sequences (CSI: colours, cursor moves; OSC: titles, links). sqlglot underlines the
# offending token with colour codes; a message printed to a pipe, a log or a NO_COLOR terminal has none.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def without_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return _ANSI.sub("", text)


class LakeError(Exception):
    """The lake cannot be read or a query failed; the message names files and SQL, never row values."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def to_duckdb(sql: str) -> str:
    """Translate one Athena (Trino) statement to DuckDB's dialect with sqlglot."""
    try:
        statements = [s for s in sqlglot.transpile(sql, read=ATHENA_DIALECT, write="duckdb") if s.strip()]
    except sqlglot.errors.SqlglotError as error:
        raise LakeError(f"cannot parse the SQL as Athena SQL: {without_ansi(str(error))}") from None
    if len(statements) != 1:
        raise LakeError(f"expected one SQL statement, got {len(statements)}")
    return statements[0]


def parquet_files(lake: Path) -> list[Path]:
    """The lake's data objects, in path order (hidden and temporary files skipped)."""
    table_dir = lake / LAKE_TABLE
    return sorted(
        path
        for path in table_dir.glob("year=*/month=*/day=*/*.parquet")
        if path.is_file() and not path.name.startswith((".", "_"))
    )


# Rows per Arrow batch DuckDB hands over while the day's CSV is rendered.
FETCH_BATCH = 8_192


class StreamedRows(Sequence[Mapping[str, object]]):
    """Result rows kept as Arrow batches; each becomes a dict only while it is read."""

    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self._batches = batches
        self._count: int = sum(batch.num_rows for batch in batches)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Mapping[str, object]]:
        for batch in self._batches:
            yield from batch.to_pylist()

    @overload
    def __getitem__(self, index: int) -> Mapping[str, object]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, object]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, object] | Sequence[Mapping[str, object]]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._count if index < 0 else index
        if not 0 <= position < self._count:
            raise IndexError(index)
        for batch in self._batches:
            if position < batch.num_rows:
                row: Mapping[str, object] = batch.slice(position, 1).to_pylist()[0]
                return row
            position -= batch.num_rows
        raise IndexError(index)  # pragma: no cover (the count above covers every batch)


class LocalLake:
    """DuckDB over a lake folder; also the DuckDB ``SettlementEngine`` of the daily export."""

    def __init__(self, lake: Path, settled: Path | None = None) -> None:
        self.path = lake
        self._connection = duckdb.connect(":memory:")
        try:
            # Glue timestamps carry no zone and hold UTC; the session zone makes DuckDB agree.
            self._connection.execute("SET TimeZone = 'UTC'")
            # DuckDB draws a progress bar on long queries; the CLI's output is the result alone.
            self._connection.execute("SET enable_progress_bar = false")
            files = parquet_files(lake)
            manifests = sorted(settled.glob("*.manifest.json")) if settled is not None else []
            self._confine([*files, *manifests])
            self._create_table(files)
            self._create_manifests(manifests, settled)
            self._connection.execute(to_duckdb(named_queries()[LATEST_VIEW]))
        except BaseException:
            self._connection.close()
            raise

    def __enter__(self) -> LocalLake:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def query(self, sql: str, parameters: Sequence[object] = ()) -> QueryResult:
        """Run one Athena SQL statement (``?`` parameters allowed)."""
        translated = to_duckdb(sql)
        try:
            cursor = self._connection.execute(translated, list(parameters))
            columns = tuple(column[0] for column in cursor.description or ())
            rows = cursor.fetchall() if columns else []
        except _ABOUT_THE_SQL_TEXT as error:
            raise LakeError(f"query failed: {error}") from None
        except duckdb.PermissionException:
            raise LakeError(
                "query failed: it reads or writes outside the lake's files, which local queries may not"
            ) from None
        except duckdb.Error as error:
            # Conversion and other data errors quote the offending value, which may be a patient's phone
            # number: only the kind of error is reported.
            raise LakeError(
                f"query failed: {type(error).__name__} on a value in the lake (values are not shown)"
            ) from None
        return QueryResult(columns, rows)

    def fetch(self, sql: str, parameters: Sequence[str]) -> list[dict[str, Any]]:
        """``SettlementEngine``: rows as column -> value."""
        return self.query(sql, parameters).records()

    def stream(self, sql: str, parameters: Sequence[object], columns: Sequence[str]) -> StreamedRows:
        """Rows of ``columns`` only, kept as Arrow batches until read: for results too large to hold as
        Python dicts (``fetch`` costs about 3 KB a row; a busy day's settlement has hundreds of
        thousands)."""
        try:
            relation = self._connection.sql(to_duckdb(sql), params=list(parameters))
            batches = [batch.select(list(columns)) for batch in relation.to_arrow_reader(FETCH_BATCH)]
        except _ABOUT_THE_SQL_TEXT as error:
            raise LakeError(f"query failed: {error}") from None
        except duckdb.Error as error:
            raise LakeError(
                f"query failed: {type(error).__name__} on a value in the lake (values are not shown)"
            ) from None
        return StreamedRows(batches)

    def _confine(self, files: Sequence[Path]) -> None:
        """Queries may read the lake's files and nothing else: no other file, no URL, no extension
        download, no COPY ... TO, and the settings are locked so a query cannot lift them."""
        execute = self._connection.execute
        execute("SET autoinstall_known_extensions = false")
        execute("SET autoload_known_extensions = false")
        execute("SET allowed_paths = ?", [[str(path) for path in files]])
        execute("SET enable_external_access = false")
        execute("SET lock_configuration = true")

    def _create_table(self, files: Sequence[Path]) -> None:
        if not files:
            columns = ", ".join(f"{column.name} {_DUCKDB_TYPES[column.type]}" for column in COLUMNS)
            keys = ", ".join(f"{key} VARCHAR" for key in PARTITION_KEYS)
            self._connection.execute(f"CREATE TABLE {LAKE_TABLE} ({columns}, {keys})")
            return
        select = ", ".join(
            f"CAST({column.name} AS {_DUCKDB_TYPES[column.type]}) AS {column.name}" for column in COLUMNS
        )
        # A view, not a copy: DuckDB reads only the columns and partitions a query needs.
        # Partition keys are strings in Glue; DuckDB would otherwise guess integers ('02' -> 2).
        hive_types = "{" + ", ".join(f"'{key}': 'VARCHAR'" for key in PARTITION_KEYS) + "}"
        paths = "[" + ", ".join(sql_string(str(path)) for path in files) + "]"
        # union_by_name: files written before a column joined the registry hold nulls there, as in Athena.
        source = f"read_parquet({paths}, hive_partitioning = true, hive_types = {hive_types}, union_by_name = true)"
        view = f"CREATE VIEW {LAKE_TABLE} AS SELECT {select}, {', '.join(PARTITION_KEYS)} FROM {source}"  # noqa: S608
        try:
            self._connection.execute(view)
            # Reading the schemas now reports a foreign object here rather than in the first query.
            self._connection.execute(f"SELECT * FROM {LAKE_TABLE} LIMIT 0")  # noqa: S608
        except duckdb.Error as error:
            raise LakeError(f"cannot read the lake's Parquet under {self.path}: {error}") from None

    def _create_manifests(self, manifests: Sequence[Path], settled: Path | None) -> None:
        columns = ", ".join(f'"{name}" {kind}' for name, kind in _MANIFEST_COLUMNS.items())
        self._connection.execute(f"CREATE TABLE {SETTLED_MANIFESTS} ({columns})")
        if not manifests:
            return
        spec = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in _MANIFEST_COLUMNS.items()) + "}"
        source = f"read_json(?, columns = {spec}, format = 'newline_delimited')"
        insert = f"INSERT INTO {SETTLED_MANIFESTS} SELECT * FROM {source}"  # noqa: S608
        try:
            self._connection.execute(insert, [[str(path) for path in manifests]])
        except duckdb.Error as error:
            raise LakeError(f"cannot read the settled manifests under {settled}: {error}") from None


# --- S3 lakes --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://"):
            raise LakeError(f"not an s3:// URL: {url}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise LakeError(f"no bucket in {url}")
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "")

    def key(self, name: str) -> str:
        return self.prefix + name


def s3_client() -> S3Client:
    import boto3

    # AWS_ENDPOINT_URL (boto3's own variable) points it at the embedded AWS.
    client: S3Client = boto3.client("s3")
    return client


def partition_prefixes(first_day: date, last_day: date) -> list[str]:
    """``billing_rows/year=…/month=…/day=…/`` for each UTC day from ``first_day`` to ``last_day``."""
    day, last = first_day, last_day
    prefixes = []
    while day <= last:
        prefixes.append(f"{LAKE_TABLE}/year={day:%Y}/month={day:%m}/day={day:%d}/")
        day += timedelta(days=1)
    return prefixes


def mirror_s3_partitions(
    client: S3Client,
    lake: S3Location,
    prefixes: Iterable[str],
    destination: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Copy the lake's Parquet objects under ``prefixes`` to ``destination``, keeping keys as paths.

    ``on_progress(bytes_done, bytes_total)`` is called once the objects are listed and after each copy.
    """
    root = destination.resolve()
    wanted: list[tuple[str, Path, int]] = []
    paginator = client.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=lake.bucket, Prefix=lake.key(prefix)):
            for item in page.get("Contents", []):
                relative = item["Key"][len(lake.prefix) :]
                if not _PARTITION_OBJECT.fullmatch(relative):
                    continue  # not a lake data object (Firehose writes none of another shape)
                target = destination / relative
                if not target.resolve().is_relative_to(root):
                    raise LakeError(f"lake object key {item['Key']!r} would be written outside {destination}")
                wanted.append((item["Key"], target, item.get("Size", 0)))
    total = sum(size for _, _, size in wanted)
    done = 0
    if on_progress is not None:
        on_progress(done, total)
    for key, target, size in wanted:
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(lake.bucket, key, str(target))
        done += size
        if on_progress is not None:
            on_progress(done, total)
    return len(wanted)
