"""Athena on the embedded AWS: queries run with the project's DuckDB lake engine (``LocalLake``).

moto's Athena records a query and reports it SUCCEEDED without running it; GetQueryResults then has
no rows. This route, in front of moto's application (``firehose.local_aws.server.ControlRoute``),
answers ``StartQueryExecution``, ``GetQueryExecution``, ``GetQueryResults`` and
``StopQueryExecution`` itself; every other Athena call (work groups, named queries, ...) is moto's.

A query runs in a thread, as Athena runs it asynchronously (QUEUED, RUNNING, then SUCCEEDED, FAILED
or CANCELLED): the ``?`` execution parameters (SQL literals) are put in its place, the Glue table
``billing_rows`` of the query's database gives the lake's S3 location and must have the column
registry's schema, the lake's Parquet objects are mirrored (once each, into a cache folder of this
server) as ``ctr-billing export`` mirrors them, and ``LocalLake`` runs the Athena SQL through
sqlglot and DuckDB. A ``settled_manifests`` Glue table, if the database has one, is read from its
location's manifests. Results are kept for GetQueryResults (paginated; the first row of a SELECT's
first page holds the column names, ``ColumnInfo`` as Athena reports it) and written to the work
group's output location as Athena does: ``<id>.csv`` (every value quoted, NULL empty) and
``<id>.csv.metadata``, encrypted with the work group's KMS key. A failed query is FAILED with a
``StateChangeReason`` that names the SQL or the kind of error, never a row value (``LakeError``).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import sqlglot
import sqlglot.errors

from firehose.offline.lake import ATHENA_DIALECT, LakeError, LocalLake, S3Location, to_duckdb
from transform.core.columns import COLUMNS, LAKE_TABLE, PARTITION_KEYS, ColumnType

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_s3 import S3Client

TARGET_PREFIX = "AmazonAthena."
OPERATIONS = ("StartQueryExecution", "GetQueryExecution", "GetQueryResults", "StopQueryExecution")
MAX_RESULTS = 1000
SETTLED_TABLE = "settled_manifests"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

# DuckDB's type names -> Athena's (Trino's) ColumnInfo Type and Precision.
_ATHENA_TYPES = {
    "VARCHAR": ("varchar", 2147483647),
    "BIGINT": ("bigint", 19),
    "HUGEINT": ("bigint", 19),
    "INTEGER": ("integer", 10),
    "SMALLINT": ("smallint", 5),
    "TINYINT": ("tinyint", 3),
    "DOUBLE": ("double", 17),
    "FLOAT": ("real", 17),
    "BOOLEAN": ("boolean", 0),
    "DATE": ("date", 0),
    "TIMESTAMP": ("timestamp", 3),
    "TIMESTAMP WITH TIME ZONE": ("timestamp with time zone", 3),
}
_GLUE_TYPES = {ColumnType.STRING: "string", ColumnType.BIGINT: "bigint", ColumnType.TIMESTAMP: "timestamp"}


class AthenaRequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Execution:
    query_id: str
    query: str
    workgroup: str
    database: str
    catalog: str
    parameters: list[str]
    output_location: str
    encryption: dict[str, str]
    state: str = "QUEUED"
    reason: str | None = None
    error_category: int | None = None
    submitted: float = field(default_factory=time.time)
    completed: float | None = None
    columns: list[dict[str, Any]] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)
    statement_type: str = "DML"
    scanned_bytes: int = 0
    lake: _AthenaLake | None = None

    def describe(self) -> dict[str, Any]:
        status: dict[str, Any] = {"State": self.state, "SubmissionDateTime": self.submitted}
        if self.completed is not None:
            status["CompletionDateTime"] = self.completed
        if self.reason is not None:
            status["StateChangeReason"] = self.reason
            status["AthenaError"] = {
                "ErrorCategory": self.error_category or 2,
                "ErrorType": 1100 if (self.error_category or 2) == 2 else 1000,
                "Retryable": False,
                "ErrorMessage": self.reason,
            }
        elapsed = int(((self.completed or time.time()) - self.submitted) * 1000)
        described: dict[str, Any] = {
            "QueryExecutionId": self.query_id,
            "Query": self.query,
            "StatementType": self.statement_type,
            "ResultConfiguration": {
                "OutputLocation": f"{self.output_location}{self.query_id}.csv",
                **({"EncryptionConfiguration": self.encryption} if self.encryption else {}),
            },
            "QueryExecutionContext": {"Database": self.database, "Catalog": self.catalog},
            "Status": status,
            "Statistics": {
                "EngineExecutionTimeInMillis": elapsed,
                "DataScannedInBytes": self.scanned_bytes,
                "TotalExecutionTimeInMillis": elapsed,
            },
            "WorkGroup": self.workgroup,
            "EngineVersion": {
                "SelectedEngineVersion": "AUTO",
                "EffectiveEngineVersion": "Athena engine version 3",
            },
        }
        if self.parameters:
            described["ExecutionParameters"] = self.parameters
        return described


class _AthenaLake(LocalLake):
    """``LocalLake`` that also reports a SELECT's column types and can be interrupted."""

    def __enter__(self) -> _AthenaLake:
        return self

    def column_types(self, sql: str) -> list[str]:
        try:
            described = self._connection.execute(f"DESCRIBE {to_duckdb(sql)}").fetchall()
        except (duckdb.Error, LakeError):
            return []
        return [str(row[1]) for row in described]

    def interrupt(self) -> None:
        self._connection.interrupt()


class AthenaRoute:
    """WSGI route for the Athena query-execution calls; ``matches`` says which requests are its own."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self._client = client
        self._executions: dict[str, Execution] = {}
        self._lock = threading.Lock()
        self._mirror_lock = threading.Lock()
        self.cache_dir = Path(tempfile.mkdtemp(prefix="ctr-billing-athena-"))

    @staticmethod
    def matches(environ: dict[str, Any]) -> bool:
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        return target.startswith(TARGET_PREFIX) and target[len(TARGET_PREFIX) :] in OPERATIONS

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, moto_app: Callable[..., Iterable[bytes]]
    ) -> Iterable[bytes]:
        operation = str(environ["HTTP_X_AMZ_TARGET"])[len(TARGET_PREFIX) :]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            request = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
            answer = getattr(self, "_" + operation)(request)
        except AthenaRequestError as error:
            return _respond(
                start_response,
                "400 Bad Request",
                {"__type": error.code, "Message": error.message},
                error.code,
            )
        return _respond(start_response, "200 OK", answer)

    # --- operations ------------------------------------------------------------------------------

    def _StartQueryExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        query = request.get("QueryString") or ""
        if not query.strip():
            raise AthenaRequestError("InvalidRequestException", "QueryString must not be empty")
        workgroup = request.get("WorkGroup") or "primary"
        athena: AthenaClient = self._client("athena")
        try:
            configuration = athena.get_work_group(WorkGroup=workgroup)["WorkGroup"].get("Configuration") or {}
        except Exception:
            raise AthenaRequestError(
                "InvalidRequestException", f"WorkGroup {workgroup} is not found."
            ) from None
        result_configuration = dict(configuration.get("ResultConfiguration") or {})
        if not configuration.get("EnforceWorkGroupConfiguration"):
            result_configuration.update(request.get("ResultConfiguration") or {})
        output = str(result_configuration.get("OutputLocation") or "")
        if not output:
            raise AthenaRequestError(
                "InvalidRequestException",
                "No output location provided. An output location is required either through the "
                "Workgroup result configuration setting or as an API input.",
            )
        context = request.get("QueryExecutionContext") or {}
        execution = Execution(
            query_id=str(uuid.uuid4()),
            query=query,
            workgroup=workgroup,
            database=context.get("Database") or "default",
            catalog=context.get("Catalog") or "AwsDataCatalog",
            parameters=[str(value) for value in request.get("ExecutionParameters") or []],
            output_location=output if output.endswith("/") else output + "/",
            encryption=dict(result_configuration.get("EncryptionConfiguration") or {}),  # type: ignore[call-overload]
        )
        with self._lock:
            self._executions[execution.query_id] = execution
        threading.Thread(target=self._run, args=(execution,), name="athena-query", daemon=True).start()
        return {"QueryExecutionId": execution.query_id}

    def _GetQueryExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"QueryExecution": self._execution(request).describe()}

    def _StopQueryExecution(self, request: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(request)
        with self._lock:
            if execution.state in ("QUEUED", "RUNNING"):
                execution.state = "CANCELLED"
                execution.completed = time.time()
                lake = execution.lake
            else:
                lake = None
        if lake is not None:
            lake.interrupt()
        return {}

    def _GetQueryResults(self, request: dict[str, Any]) -> dict[str, Any]:
        execution = self._execution(request)
        if execution.state in ("QUEUED", "RUNNING"):
            raise AthenaRequestError(
                "InvalidRequestException", f"Query has not yet finished. Current state: {execution.state}"
            )
        if execution.state != "SUCCEEDED":
            raise AthenaRequestError(
                "InvalidRequestException",
                f"Query did not finish successfully. Final query state: {execution.state}",
            )
        limit = int(request.get("MaxResults") or MAX_RESULTS)
        if not 1 <= limit <= MAX_RESULTS:
            raise AthenaRequestError("InvalidRequestException", "MaxResults must be between 1 and 1000")
        token = request.get("NextToken")
        try:
            start = int(token) if token else 0
        except ValueError:
            raise AthenaRequestError("InvalidRequestException", "NextToken is not valid") from None
        table = self._table(execution)
        page = table[start : start + limit]
        answer: dict[str, Any] = {
            "UpdateCount": 0,
            "ResultSet": {
                "Rows": [
                    {"Data": [{} if value is None else {"VarCharValue": value} for value in row]}
                    for row in page
                ],
                "ResultSetMetadata": {"ColumnInfo": execution.columns},
            },
        }
        if start + limit < len(table):
            answer["NextToken"] = str(start + limit)
        return answer

    def _execution(self, request: dict[str, Any]) -> Execution:
        query_id = str(request.get("QueryExecutionId") or "")
        with self._lock:
            execution = self._executions.get(query_id)
        if execution is None:
            raise AthenaRequestError("InvalidRequestException", f"QueryExecution {query_id} was not found")
        return execution

    @staticmethod
    def _table(execution: Execution) -> list[list[str | None]]:
        if not execution.columns:
            return []
        header: list[str | None] = [column["Name"] for column in execution.columns]
        return [header, *execution.rows]

    # --- running a query ---------------------------------------------------------------------------

    def _run(self, execution: Execution) -> None:
        with self._lock:
            if execution.state != "QUEUED":
                return
            execution.state = "RUNNING"
        try:
            sql = with_parameters(execution.query, execution.parameters)
            execution.statement_type = _statement_type(sql)
            lake_dir, settled_dir = self._mirror(execution.database)
            with _AthenaLake(lake_dir, settled_dir) as lake:
                with self._lock:
                    if execution.state != "RUNNING":
                        return
                    execution.lake = lake
                result = lake.query(sql)
                types = lake.column_types(sql) if result.columns else []
                execution.lake = None
            execution.scanned_bytes = sum(path.stat().st_size for path in lake_dir.rglob("*.parquet"))
            execution.columns = [
                _column_info(name, types[index] if index < len(types) else "VARCHAR")
                for index, name in enumerate(result.columns)
            ]
            execution.rows = [[athena_text(value) for value in row] for row in result.rows]
            self._write_results(execution)
            self._finish(execution, "SUCCEEDED")
        except (LakeError, AthenaRequestError) as error:
            self._finish(execution, "FAILED", str(error), 2)
        except Exception as error:  # the kind only: a message may quote a value
            self._finish(execution, "FAILED", f"INTERNAL_ERROR: {type(error).__name__}", 1)

    def _finish(
        self, execution: Execution, state: str, reason: str | None = None, category: int | None = None
    ) -> None:
        with self._lock:
            execution.lake = None
            if execution.state != "RUNNING":
                return  # cancelled meanwhile
            execution.state = state
            execution.reason = reason
            execution.error_category = category
            execution.completed = time.time()

    def _mirror(self, database: str) -> tuple[Path, Path | None]:
        """The database's ``billing_rows`` objects (and settled manifests) in this server's cache."""
        glue: GlueClient = self._client("glue")
        try:
            table = glue.get_table(DatabaseName=database, Name=LAKE_TABLE)["Table"]
        except Exception:
            raise LakeError(
                f"TABLE_NOT_FOUND: Table awsdatacatalog.{database}.{LAKE_TABLE} does not exist"
            ) from None
        check_schema(table)
        location = S3Location.parse(table["StorageDescriptor"]["Location"])
        # The table's location ends in billing_rows/: the lake folder is its parent.
        lake = S3Location(location.bucket, location.prefix[: -len(LAKE_TABLE) - 1])
        lake_dir = self.cache_dir / "lake" / location.bucket / lake.prefix.strip("/")
        settled_dir: Path | None = None
        s3: S3Client = self._client("s3")
        with self._mirror_lock:
            self._copy_new(s3, lake.bucket, lake.key(LAKE_TABLE + "/"), lake_dir, lake.prefix, ".parquet")
            try:
                settled = glue.get_table(DatabaseName=database, Name=SETTLED_TABLE)["Table"]
            except Exception:
                settled = None
            if settled is not None:
                where = S3Location.parse(settled["StorageDescriptor"]["Location"])
                settled_dir = self.cache_dir / "settled" / where.bucket / where.prefix.strip("/")
                settled_dir.mkdir(parents=True, exist_ok=True)
                self._copy_new(
                    s3, where.bucket, where.prefix, settled_dir, where.prefix, ".manifest.json", fresh=True
                )
        return lake_dir, settled_dir

    @staticmethod
    def _copy_new(
        s3: S3Client,
        bucket: str,
        prefix: str,
        destination: Path,
        strip: str,
        suffix: str,
        *,
        fresh: bool = False,
    ) -> None:
        """Objects under ``prefix`` ending in ``suffix``, as files below ``destination`` (keys without
        ``strip``). Lake objects are immutable (Firehose names each one uniquely): copied once."""
        from firehose.offline.lake import _PARTITION_OBJECT

        root = destination.resolve()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(strip) :]
                if not relative.endswith(suffix):
                    continue
                if suffix == ".parquet" and not _PARTITION_OBJECT.fullmatch(relative):
                    continue
                if suffix != ".parquet" and "/" in relative:
                    continue
                target = destination / relative
                if not target.resolve().is_relative_to(root):
                    continue
                if target.exists() and not fresh and target.stat().st_size == item["Size"]:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name("." + target.name + ".part")
                s3.download_file(bucket, item["Key"], str(partial))
                partial.replace(target)

    def _write_results(self, execution: Execution) -> None:
        """``<id>.csv`` and ``<id>.csv.metadata`` at the output location, with the work group's encryption."""
        if execution.statement_type != "DML":
            return
        location = S3Location.parse(execution.output_location)
        # Every value quoted (quotes doubled), NULL as an empty unquoted field, as Athena writes them.
        body = "".join(
            ",".join("" if value is None else '"' + value.replace('"', '""') + '"' for value in row) + "\n"
            for row in self._table(execution)
        )
        metadata = json.dumps({"ColumnInfo": execution.columns}, separators=(",", ":")).encode()
        extra: dict[str, Any] = {}
        option = execution.encryption.get("EncryptionOption")
        if option in ("SSE_KMS", "CSE_KMS"):
            extra = {"ServerSideEncryption": "aws:kms"}
            if execution.encryption.get("KmsKey"):
                extra["SSEKMSKeyId"] = execution.encryption["KmsKey"]
        elif option == "SSE_S3":
            extra = {"ServerSideEncryption": "AES256"}
        s3: S3Client = self._client("s3")
        key = location.key(f"{execution.query_id}.csv")
        s3.put_object(Bucket=location.bucket, Key=key, Body=body.encode(), ContentType="text/csv", **extra)
        s3.put_object(Bucket=location.bucket, Key=key + ".metadata", Body=metadata, **extra)

    def close(self) -> None:
        with self._lock:
            running = [e.lake for e in self._executions.values() if e.lake is not None]
        for lake in running:
            lake.interrupt()


def with_parameters(sql: str, parameters: list[str]) -> str:
    """The query with its ``?`` placeholders replaced, in order, by the execution parameters (each a SQL
    literal, as Athena takes them)."""
    if not parameters:
        return sql
    try:
        # Placeholders in the order they are written (the tokenizer skips ``?`` in strings and comments).
        tokens = sqlglot.Dialect.get_or_raise(ATHENA_DIALECT).tokenize(sql)
        for literal in parameters:
            sqlglot.parse_one(literal, read=ATHENA_DIALECT)  # each parameter must be one SQL literal
    except sqlglot.errors.SqlglotError as error:
        raise LakeError(f"cannot parse the SQL as Athena SQL: {error}") from None
    placeholders = [token for token in tokens if token.token_type == sqlglot.TokenType.PLACEHOLDER]
    if len(placeholders) != len(parameters):
        raise LakeError(
            f"INVALID_PARAMETER_USAGE: the query has {len(placeholders)} parameters, "
            f"{len(parameters)} execution parameters were given"
        )
    parts, position = [], 0
    for token, literal in zip(placeholders, parameters, strict=True):
        parts += [sql[position : token.start], literal]
        position = token.end + 1
    return "".join([*parts, sql[position:]])


def check_schema(table: Mapping[str, Any]) -> None:
    """The Glue table must hold the column registry's columns and partition keys (what LocalLake reads)."""
    columns = {c["Name"]: c["Type"] for c in table.get("StorageDescriptor", {}).get("Columns", [])}
    for column in COLUMNS:
        if columns.get(column.name) != _GLUE_TYPES[column.type]:
            raise LakeError(
                f"HIVE_BAD_DATA: column {column.name} of the Glue table is not {_GLUE_TYPES[column.type]}"
            )
    keys = [k["Name"] for k in table.get("PartitionKeys", [])]
    if keys != list(PARTITION_KEYS):
        raise LakeError("HIVE_BAD_DATA: the Glue table's partition keys are not year, month, day")


def athena_text(value: object) -> str | None:
    """A value as Athena returns it: text, NULL as no value, timestamps to the millisecond."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return text if value.tzinfo is None else f"{text} UTC"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float | Decimal | int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(athena_text(item)) for item in value) + "]"
    return str(value)


def _column_info(name: str, duckdb_type: str) -> dict[str, Any]:
    athena_type, precision = _ATHENA_TYPES.get(duckdb_type.upper(), ("varchar", 2147483647))
    scale = 0
    if duckdb_type.upper().startswith("DECIMAL"):
        athena_type = "decimal"
        digits = duckdb_type[duckdb_type.index("(") + 1 : -1].split(",")
        precision, scale = int(digits[0]), int(digits[1])
    elif duckdb_type.endswith("[]"):
        athena_type, precision = "array", 0
    return {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Type": athena_type,
        "Precision": precision,
        "Scale": scale,
        "Nullable": "UNKNOWN",
        "CaseSensitive": athena_type == "varchar",
    }


def _statement_type(sql: str) -> str:
    words = sql.lstrip().split(None, 1)
    first = words[0].upper() if words else ""
    if first in ("CREATE", "DROP", "ALTER", "MSCK", "SHOW", "DESCRIBE"):
        return "DDL"
    return "DML"


def _respond(
    start_response: StartResponse, status: str, answer: dict[str, Any], error: str | None = None
) -> list[bytes]:
    body = json.dumps(answer).encode()
    headers = [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))]
    if error:
        headers.append(("X-Amzn-ErrorType", error))
    start_response(status, headers)
    return [body]
