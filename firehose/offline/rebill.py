"""Re-billing from the raw archive (DESIGN §7): what a day should have billed under today's rules.

The raw archive is the record of truth: GZIP JSON lines under ``ctr/YYYY/MM/DD/HH/``, where the path is
the UTC hour the object's records *arrived* (Firehose's ``!{timestamp:…}``), not when the contacts
happened. ``rebill`` reads the objects that arrived from the day before the billing day through
``window_days`` days after it (a republished version arrives after its contact), and then follows the
stream's own path with the stream's own code:

* each line goes through the Lambda's core, ``parse_document`` and ``classify``; a bad line costs that
  line (counted), never the run, as in ``firehose.offline.transform``;
* billable contacts go, in chunks, through the Lambda's batch stages (directory enrichment when
  ``DIRECTORY_TABLE`` is set; never the ledger, which would claim contacts);
* each contact becomes the JSON row the lake delivery stream receives (``json_row_dict``), written as
  Parquet with the lake's schema into a temporary lake, partitioned by ``partition_keys``;
* that lake is settled by the export itself (``transform.settlement.export.settle`` over the lake as
  ``LocalLake`` builds it), so the version ranking, the billing-day window and the CSV rendering are the
  export's, not a second copy.

Only the rows of the UTC days the billing day touches are written (``SettlementWindow.partition_days``):
the export ranks every version in those partitions before it keeps the day's, and so does this.

``corrections`` compares a rebilled file with the settled one, contact by contact and column by column.

Objects are streamed line by line and rows leave memory in row groups, so memory does not grow with the
archive; what grows with the billing day's size is the settlement itself (DuckDB's ranking and the day's
CSV), as in the export. A process pool spreads runs of objects over cores; every run writes Parquet files
of its own and the settlement orders rows totally, so the result does not depend on the pool.

Messages name objects, line numbers and problem codes, never record content (PHI). The temporary lake
holds billing rows (PHI) on local disk while the run lasts, as the export's S3 mirror does.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import multiprocessing
import os
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from firehose.cli.errors import CommandError
from firehose.offline.lake import LakeError, LocalLake, S3Location, s3_client
from transform.core.batch import BatchStage, PendingContact, RecordDecodeError, parse_document
from transform.core.columns import COLUMNS_BY_NAME, LAKE_TABLE, Column, ColumnType
from transform.core.rows import csv_text_cell, json_row_dict, partition_keys
from transform.core.rules import (
    BillableContact,
    InvalidContact,
    NotAContactRecord,
    NotBillable,
    Outcome,
    classify,
)
from transform.core.settings import TransformSettings
from transform.settlement.export import Settlement, SettlementWindow, settle

if TYPE_CHECKING:
    import pyarrow as pa
    from mypy_boto3_s3 import S3Client

DEFAULT_WINDOW_DAYS = 3
# The raw delivery stream's data prefix (DESIGN §6); its error output lives beside it under errors/.
RAW_DATA_PREFIX = "ctr/"
# Billable contacts per run of the batch stages: about a Firehose batch, so the directory is read with
# the same number of BatchGetItem calls as the Lambda makes.
STAGE_CHUNK = 500
# Rows per Parquet row group: bounds the rows held in memory per partition of an object.
ROW_GROUP = 16_384
MAX_REPORTED_FAILURES = 20
CORRECTIONS_HEADER = ("contact_id", "change", "column", "settled", "rebilled")
CONTACT_ID = "contact_id"

# <prefix>YYYY/MM/DD/HH/<object name>: the arrival hour Firehose evaluated into the key.
_HOUR_KEY = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})/([0-9]{2})/([^/]+)")
# The corrections' own columns are plain text (formula-guarded); a settled or rebilled cell keeps its
# registry column's strict format (a phone number stays as the settled file spells it).
_PLAIN_TEXT = Column("text", ColumnType.STRING, "")
_NO_RECORD: Mapping[str, Any] = {}
# A lake partition: the (year, month, day) of ``transform.core.rows.partition_keys``.
Partition = tuple[str, str, str]
# Where a row came from: its object's key and line number.
Origin = tuple[str, int]


class RebillError(CommandError):
    """The rebill cannot run or cannot finish; the message names objects and settings, never content."""


# --- which objects: the arrival window ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArrivalWindow:
    """The UTC arrival hours of the objects a rebill of ``day`` reads: from the start of the day before
    through the end of the day ``window_days`` after it (the key's hour is UTC; a billing day in any
    time zone starts no earlier than 14 hours before its UTC date, so the day before covers it)."""

    day: date
    window_days: int
    start: datetime
    end: datetime  # exclusive

    @classmethod
    def for_day(cls, day: date, window_days: int = DEFAULT_WINDOW_DAYS) -> ArrivalWindow:
        if window_days < 0:
            raise RebillError(f"--window-days must not be negative, got {window_days}")
        start = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
        end = datetime.combine(day + timedelta(days=window_days + 1), time(0), tzinfo=UTC)
        return cls(day, window_days, start, end)

    @property
    def days(self) -> list[date]:
        """The UTC dates of the window, first to last (the key folders ``YYYY/MM/DD/`` to list)."""
        count = (self.end - self.start).days
        return [self.start.date() + timedelta(days=offset) for offset in range(count)]

    def __str__(self) -> str:
        last = self.end - timedelta(hours=1)
        return f"{self.start:%Y-%m-%d %H}h to {last:%Y-%m-%d %H}h UTC"


def arrival_hour(key: str) -> datetime | None:
    """The arrival hour in a key relative to the data prefix (``YYYY/MM/DD/HH/name``), or None for a key
    of another shape (or a hidden or partial file, whose name starts with ``.`` or ``_``)."""
    match = _HOUR_KEY.fullmatch(key)
    if match is None or match.group(5).startswith((".", "_")):
        return None
    year, month, day, hour = (int(match.group(index)) for index in range(1, 5))
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    key: str  # relative to the archive's data prefix
    arrived: datetime
    size: int


def select_objects(listed: Iterable[tuple[str, int]], window: ArrivalWindow) -> list[ArchiveObject]:
    """The ``(key, size)`` whose arrival hour is in the window, in arrival order (then key order)."""
    selected = []
    for key, size in listed:
        hour = arrival_hour(key)
        if hour is not None and window.start <= hour < window.end:
            selected.append(ArchiveObject(key, hour, size))
    selected.sort(key=lambda item: (item.arrived, item.key))
    return selected


# --- where the objects are: a folder or a bucket ------------------------------------------------------


class Readable(Protocol):
    """A file opened for reading, or an S3 object's streaming body."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, /) -> object: ...

    def close(self) -> None: ...


class RawArchive(Protocol):
    """A raw archive's data prefix. Picklable: worker processes open objects themselves."""

    def list_day(self, day: date) -> list[tuple[str, int]]:
        """``(key, size)`` of the objects under ``YYYY/MM/DD/`` of the data prefix (keys relative to it)."""
        ...

    def open(self, key: str) -> Readable:
        """The object's (compressed) bytes, streamed."""
        ...

    def location(self, key: str = "") -> str:
        """Where a key is, for messages."""
        ...


@dataclass(frozen=True, slots=True)
class LocalArchive:
    """A folder as a demo leaves it (``DIR/raw`` holding ``ctr/…``) or the data folder itself."""

    root: Path

    def list_day(self, day: date) -> list[tuple[str, int]]:
        folder = self.root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        if not folder.is_dir():
            return []
        return [
            (path.relative_to(self.root).as_posix(), path.stat().st_size)
            for path in sorted(folder.glob("*/*"))
            if path.is_file()
        ]

    def open(self, key: str) -> Readable:
        return (self.root / key).open("rb")

    def location(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


class S3Archive:
    """``s3://bucket[/prefix]``; the raw bucket's ``ctr/`` when no prefix is given. The client is made
    in the process that uses it (boto3 clients do not cross processes)."""

    def __init__(self, bucket: str, prefix: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def __getstate__(self) -> dict[str, str]:
        return {"bucket": self.bucket, "prefix": self.prefix}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["bucket"], state["prefix"])  # type: ignore[misc]

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def list_day(self, day: date) -> list[tuple[str, int]]:
        listed: list[tuple[str, int]] = []
        day_prefix = f"{self.prefix}{day:%Y/%m/%d}/"
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=day_prefix
        ):
            listed.extend(
                (item["Key"][len(self.prefix) :], item.get("Size", 0)) for item in page.get("Contents", [])
            )
        return listed

    def open(self, key: str) -> Readable:
        body: Readable = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        return body

    def location(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


def open_archive(raw: str) -> RawArchive:
    """``--raw``: a folder (``DIR/raw`` or its ``ctr/``) or ``s3://BUCKET[/prefix/]``."""
    if raw.startswith("s3://"):
        try:
            location = S3Location.parse(raw)
        except LakeError as error:
            raise RebillError(str(error)) from None
        return S3Archive(location.bucket, location.prefix or RAW_DATA_PREFIX)
    path = Path(raw)
    if not path.is_dir():
        raise RebillError(f"no raw-archive folder at {path}: pass --raw DIR|s3://BUCKET[/ctr/]")
    data = path / RAW_DATA_PREFIX.rstrip("/")
    return LocalArchive(data if data.is_dir() else path)


def list_objects(archive: RawArchive, window: ArrivalWindow) -> list[ArchiveObject]:
    """The archive's objects that arrived in the window; refuses an empty selection (a wrong path or
    date would otherwise settle an empty day)."""
    listed = [item for day in window.days for item in archive.list_day(day)]
    selected = select_objects(listed, window)
    if not selected:
        raise RebillError(
            f"no raw-archive objects arrived from {window} under {archive.location()} "
            f"(keys YYYY/MM/DD/HH/<name>); check --raw, --date and --window-days"
        )
    return selected


# --- one object: lines -> core -> lake rows ----------------------------------------------------------


@dataclass(slots=True)
class RebillCounts:
    """What the rebill read and decided, summed over objects."""

    objects: int = 0
    lines: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    not_billable: Counter[str] = field(default_factory=Counter)
    # Billable versions initiated on UTC days the billing day does not touch (other days' contacts).
    other_days: int = 0
    # Rows written to the temporary lake (every version of the day's partitions).
    rows: int = 0
    # Rows Parquet refused (the lake stream's format-conversion-failed); none a parsed CTR can make.
    unwritable: int = 0
    # (object key, line number, problem) of the first failures; problems are codes, never values.
    failures: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, other: RebillCounts) -> None:
        self.objects += other.objects
        self.lines += other.lines
        self.outcomes.update(other.outcomes)
        self.not_billable.update(other.not_billable)
        self.other_days += other.other_days
        self.rows += other.rows
        self.unwritable += other.unwritable
        room = MAX_REPORTED_FAILURES - len(self.failures)
        self.failures.extend(other.failures[: max(room, 0)])

    def fail(self, key: str, line: int, outcome: Outcome, problem: str) -> None:
        self.outcomes[outcome.value] += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append((key, line, problem))

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "lines": self.lines,
            "outcomes": dict(sorted(self.outcomes.items())),
            "not_billable": dict(sorted(self.not_billable.items())),
            "billable_other_days": self.other_days,
            "rows_written": self.rows,
            "rows_unwritable": self.unwritable,
            "failures": [
                {"object": key, "line": line, "problem": problem} for key, line, problem in self.failures
            ],
        }


@dataclass(frozen=True, slots=True)
class ObjectTask:
    """A run of consecutive objects, read by one process into Parquet files of their own."""

    archive: RawArchive
    keys: tuple[str, ...]
    number: int  # names the task's Parquet files, so tasks never share one
    lake: Path
    partitions: frozenset[Partition]  # of the rows kept
    settings: TransformSettings


def batch_stages(settings: TransformSettings) -> tuple[BatchStage, ...]:
    """The Lambda's enrichment stage when ``DIRECTORY_TABLE`` is set. Never the ledger: it would claim
    contacts, and a rebill must bill every contact the rules bill."""
    if not settings.directory_table:
        return ()
    from transform.stages.enrichment import directory_stage

    return (directory_stage(settings),)


def rebill_objects(task: ObjectTask, stages: Sequence[BatchStage]) -> RebillCounts:
    """Every line of the task's objects through the core; the rows of the kept partitions into the lake
    (one Parquet file per partition: DuckDB reads a few large files much faster than many small ones)."""
    counts = RebillCounts()
    writer = LakeWriter(task.lake, task.number)
    try:
        for key in task.keys:
            object_counts = RebillCounts(objects=1)
            try:
                with (
                    contextlib.closing(task.archive.open(key)) as raw,
                    gzip.GzipFile(fileobj=raw, mode="rb") as lines,
                ):
                    _rebill_lines(task.settings, task.partitions, key, lines, stages, writer, object_counts)
            except (OSError, EOFError, zlib.error) as error:
                # A truncated or foreign object would make the day silently incomplete: the run stops.
                raise RebillError(
                    f"cannot read raw object {task.archive.location(key)} as GZIP JSON lines "
                    f"({type(error).__name__}); nothing was written"
                ) from None
            counts.add(object_counts)
    except BaseException:
        writer.abort()
        raise
    counts.rows, unwritable = writer.close()
    counts.unwritable = len(unwritable)
    room = MAX_REPORTED_FAILURES - len(counts.failures)
    counts.failures.extend(
        (key, line, "format-conversion-failed: the row cannot be written as Parquet")
        for key, line in unwritable[: max(room, 0)]
    )
    return counts


def _rebill_lines(
    settings: TransformSettings,
    partitions: frozenset[Partition],
    key: str,
    lines: Iterable[bytes],
    stages: Sequence[BatchStage],
    writer: LakeWriter,
    counts: RebillCounts,
) -> None:
    outcomes, not_billable = counts.outcomes, counts.not_billable
    # Plain local counts in the loop (a Counter update per line costs more than the rules do).
    billable = not_billable_count = not_a_contact = other_days = 0
    pending: list[tuple[PendingContact, Partition, Origin]] = []
    number = 0
    for number, line in enumerate(lines, start=1):
        if line.isspace():
            continue
        try:
            classification = classify(parse_document(line.decode("utf-8")), settings)
        except UnicodeDecodeError:
            counts.fail(key, number, Outcome.MALFORMED, "data is not UTF-8")
            continue
        except RecordDecodeError as error:
            counts.fail(key, number, Outcome.MALFORMED, str(error))
            continue
        except Exception as error:  # a bug must cost one line, never the run (as in the Lambda)
            counts.fail(key, number, Outcome.INVALID, f"unexpected {type(error).__name__}")
            continue
        kind = type(classification)
        if kind is BillableContact:
            assert isinstance(classification, BillableContact)
            billable += 1
            keys = partition_keys(classification)
            partition = (keys["year"], keys["month"], keys["day"])
            if partition not in partitions:
                other_days += 1
            elif not stages:
                writer.write(classification, partition, (key, number))
            else:
                contact = PendingContact(str(number), _NO_RECORD, classification)
                pending.append((contact, partition, (key, number)))
                if len(pending) >= STAGE_CHUNK:
                    _emit(pending, stages, writer)
                    pending = []
        elif kind is NotBillable:
            assert isinstance(classification, NotBillable)
            not_billable_count += 1
            not_billable[classification.reason.value] += 1
        elif kind is NotAContactRecord:
            not_a_contact += 1
        else:
            assert isinstance(classification, InvalidContact)
            counts.fail(key, number, Outcome.INVALID, classification.problem)
    if pending:
        _emit(pending, stages, writer)
    counts.lines = number
    counts.other_days += other_days
    for outcome, count in (
        (Outcome.BILLABLE, billable),
        (Outcome.NOT_BILLABLE, not_billable_count),
        (Outcome.NOT_A_CONTACT_RECORD, not_a_contact),
    ):
        if count:
            outcomes[outcome.value] += count


def _emit(
    pending: list[tuple[PendingContact, Partition, Origin]],
    stages: Sequence[BatchStage],
    writer: LakeWriter,
) -> None:
    """The batch stages over a chunk of billable contacts, as the Lambda runs them over its batch; then
    the rows of the contacts they kept."""
    contacts = [item for item, _, _ in pending]
    for stage in stages:
        stage(contacts)
    for item, partition, origin in pending:
        if item.dropped_as is None:
            writer.write(item.contact, partition, origin)


# --- lake rows as Parquet ----------------------------------------------------------------------------

Row = tuple[Any, ...]


def lake_row(contact: BillableContact) -> Row:
    """The JSON row the lake stream receives (``json_row_dict``), its values in registry order (the
    order of ``json_row_dict``'s keys and of the lake schema)."""
    return tuple(json_row_dict(contact).values())


def arrow_table(rows: Sequence[Row]) -> pa.Table:
    """Lake rows (``lake_row``) as a table of the lake's schema, as the lake stream's format conversion
    reads them (``firehose.runtime.parquet``): timestamps are ``YYYY-MM-DDTHH:MM:SSZ`` text, which Arrow
    parses to the same UTC instants, a whole column at a time."""
    import pyarrow as pa

    from transform.core.columns import arrow_schema

    schema = arrow_schema()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for column, values in zip(schema, columns, strict=True):
        if pa.types.is_timestamp(column.type):
            arrays.append(pa.array(values, pa.string()).cast(column.type))
        else:
            arrays.append(pa.array(values, column.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class LakeWriter:
    """Rows into ``billing_rows/year=/month=/day=/part-<number>.parquet`` of a lake folder, one writer
    per partition, a row group at a time."""

    def __init__(self, lake: Path, number: int) -> None:
        self._lake = lake
        self._number = number
        self._buffers: dict[Partition, tuple[list[Row], list[Origin]]] = {}
        self._writers: dict[Partition, Any] = {}
        self._paths: list[Path] = []
        self.rows = 0
        self.unwritable: list[Origin] = []

    def write(self, contact: BillableContact, partition: Partition, origin: Origin) -> None:
        """``partition``: the contact's ``partition_keys`` as (year, month, day)."""
        buffer = self._buffers.get(partition)
        if buffer is None:
            buffer = self._buffers[partition] = ([], [])
        rows, origins = buffer
        rows.append(lake_row(contact))
        origins.append(origin)
        if len(rows) >= ROW_GROUP:
            self._flush(partition, rows, origins)
            rows.clear()
            origins.clear()

    def close(self) -> tuple[int, list[Origin]]:
        """Flush and close every file; the rows written and where the rows Parquet refused came from."""
        for partition, (rows, origins) in self._buffers.items():
            if rows:
                self._flush(partition, rows, origins)
        self._buffers.clear()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return self.rows, self.unwritable

    def abort(self) -> None:
        for writer in self._writers.values():
            # The files are removed next; the error being reported is the one that stopped the run.
            with contextlib.suppress(Exception):
                writer.close()
        self._writers.clear()
        for path in self._paths:
            path.unlink(missing_ok=True)

    def _flush(self, partition: Partition, rows: list[Row], origins: list[Origin]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = arrow_table(rows)
        except (pa.ArrowException, ValueError, TypeError, OverflowError):
            # As the lake stream's format conversion: only the rows Parquet refuses fail, never the buffer.
            table = self._writable(rows, origins)
            if table is None:
                return
        writer = self._writers.get(partition)
        if writer is None:
            year, month, day = partition
            folder = self._lake / LAKE_TABLE / f"year={year}" / f"month={month}" / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{self._number:06d}.parquet"
            self._paths.append(path)
            writer = self._writers[partition] = pq.ParquetWriter(path, table.schema, compression="snappy")
        writer.write_table(table)
        self.rows += table.num_rows

    def _writable(self, rows: list[Row], origins: list[Origin]) -> pa.Table | None:
        import pyarrow as pa

        kept = []
        for row, origin in zip(rows, origins, strict=True):
            try:
                arrow_table([row])
            except (pa.ArrowException, ValueError, TypeError, OverflowError):
                self.unwritable.append(origin)
                continue
            kept.append(row)
        return arrow_table(kept) if kept else None


# --- the settlement over the temporary lake -----------------------------------------------------------


class StreamingEngine:
    """``SettlementEngine`` over a ``LocalLake`` whose result streams, keeping only the CSV's columns (all
    that ``render_csv`` reads; the manifest needs only the count). ``LocalLake.fetch`` holds every row of
    the day as a dict of every column, about 3 KB a row: a busy day's rebill would hold gigabytes."""

    def __init__(self, lake: LocalLake, columns: Sequence[str]) -> None:
        self._lake = lake
        self._columns = tuple(columns)

    def fetch(self, sql: str, parameters: Sequence[str]) -> Sequence[Mapping[str, object]]:
        return self._lake.stream(sql, parameters, self._columns)


# --- the whole run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rebilled:
    settlement: Settlement
    counts: RebillCounts
    window: ArrivalWindow
    objects: int
    jobs: int


# Set in each pool worker by ``_start_worker``: the batch stages of that process (its own AWS clients).
_worker_stages: tuple[BatchStage, ...] = ()


def _start_worker(settings: TransformSettings) -> None:
    global _worker_stages
    _worker_stages = batch_stages(settings)


def _pool_task(task: ObjectTask) -> RebillCounts:
    return rebill_objects(task, _worker_stages)


# Below this much compressed input a pool costs more (starting interpreters) than it saves.
POOL_MIN_BYTES = 32 * 1024 * 1024
# Tasks per pool process: enough that a process finishing early takes more, few enough that the lake
# holds few files.
TASKS_PER_WORKER = 4


def split(objects: Sequence[ArchiveObject], count: int) -> list[list[ArchiveObject]]:
    """``objects`` in at most ``count`` runs of consecutive objects of about equal compressed size."""
    total = sum(item.size for item in objects) or 1
    groups: list[list[ArchiveObject]] = [[]]
    done = 0
    for item in objects:
        if groups[-1] and done >= total * len(groups) / count:
            groups.append([])
        groups[-1].append(item)
        done += item.size
    return [group for group in groups if group]


def default_jobs() -> int:
    return os.cpu_count() or 1


def rebill(
    archive: RawArchive,
    day: date,
    settings: TransformSettings,
    generated_at: datetime,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    jobs: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Rebilled:
    """Rebill ``day`` from ``archive`` under ``settings``: the settlement (CSV and manifest, not yet
    published) and what was read. ``jobs`` processes read objects (default: one per core).
    ``on_progress(bytes_done, bytes_total)`` is called once the objects are listed and after each task."""
    window = ArrivalWindow.for_day(day, window_days)
    settlement_window = SettlementWindow.for_day(
        day, settings.billing_timezone, settings.billing_timezone_name
    )
    first, last = settlement_window.partition_days
    partitions = frozenset(
        (f"{utc_day:%Y}", f"{utc_day:%m}", f"{utc_day:%d}")
        for utc_day in (first + timedelta(days=offset) for offset in range((last - first).days + 1))
    )
    objects = list_objects(archive, window)
    wanted = default_jobs() if jobs is None else jobs
    if wanted < 1:
        raise RebillError(f"--jobs must be at least 1, got {wanted}")
    workers = min(wanted, len(objects))
    if jobs is None and sum(item.size for item in objects) < POOL_MIN_BYTES:
        workers = 1
    counts = RebillCounts()
    # The temporary lake goes where tempfile puts files (TMPDIR), and is removed whatever happens.
    with tempfile.TemporaryDirectory(prefix="ctr-billing-rebill-") as temporary:
        lake = Path(temporary)
        tasks = [
            ObjectTask(archive, tuple(item.key for item in group), number, lake, partitions, settings)
            for number, group in enumerate(split(objects, 1 if workers == 1 else workers * TASKS_PER_WORKER))
        ]
        sizes = {item.key: item.size for item in objects}
        total = sum(sizes.values())
        done = 0
        if on_progress is not None:
            on_progress(done, total)
        for task, task_counts in zip(tasks, _run_tasks(tasks, settings, workers), strict=True):
            counts.add(task_counts)
            done += sum(sizes[key] for key in task.keys)
            if on_progress is not None:
                on_progress(done, total)
        with LocalLake(lake) as local:
            settlement = settle(StreamingEngine(local, settings.csv_columns), day, settings, generated_at)
    return Rebilled(settlement, counts, window, len(objects), workers)


def _run_tasks(tasks: list[ObjectTask], settings: TransformSettings, workers: int) -> Iterator[RebillCounts]:
    if workers <= 1:
        stages = batch_stages(settings)
        for task in tasks:
            yield rebill_objects(task, stages)
        return
    # Fresh interpreters, not fork: the caller may run threads (an embedded AWS, boto3 pools) that a
    # forked child would inherit half-way through.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(settings,))
    try:
        # In task order, so the reported failures are the first ones whatever the pool's timing.
        yield from pool.map(_pool_task, tasks, chunksize=1)
    finally:
        # After a failure the tasks not yet started are dropped rather than run for nothing.
        pool.shutdown(wait=True, cancel_futures=True)


# --- corrections: rebilled vs settled -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Correction:
    contact_id: str
    change: str  # added | removed | changed
    column: str = ""
    settled: str = ""
    rebilled: str = ""


@dataclass(frozen=True, slots=True)
class Corrections:
    lines: tuple[Correction, ...]
    added: int
    removed: int
    changed: int

    @property
    def csv(self) -> bytes:
        """``corrections-DATE.csv``: header, then one line per correction, cells quoted and
        formula-guarded as the settled file's (a cell keeps its own column's strict format)."""
        contact_column = COLUMNS_BY_NAME[CONTACT_ID]
        out = [",".join(CORRECTIONS_HEADER) + "\n"]
        for line in self.lines:
            value_column = COLUMNS_BY_NAME.get(line.column, _PLAIN_TEXT)
            cells = (
                csv_text_cell(line.contact_id, contact_column),
                csv_text_cell(line.change, _PLAIN_TEXT),
                csv_text_cell(line.column, _PLAIN_TEXT),
                csv_text_cell(line.settled, value_column),
                csv_text_cell(line.rebilled, value_column),
            )
            out.append(",".join(cells) + "\n")
        return "".join(out).encode()

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "lines": len(self.lines),
        }


def corrections_name(day: date) -> str:
    return f"corrections-{day.isoformat()}.csv"


def parse_billing_csv(body: bytes, what: str) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """A settlement file's header and its rows (cell text as the file holds it, quoting undone) by
    contact_id, in file order."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RebillError(f"the {what} file is not UTF-8") from None
    # newline="": a CR inside a quoted cell is cell text, not a line end.
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise RebillError(f"the {what} file is empty: it has no header line")
    if CONTACT_ID not in header:
        raise RebillError(
            f"the {what} file has no {CONTACT_ID} column (its columns: {', '.join(header)}); "
            "rows are matched by contact_id"
        )
    by_contact: dict[str, list[dict[str, str]]] = {}
    for cells in reader:
        if len(cells) != len(header):
            raise RebillError(
                f"the {what} file's line {reader.line_num} has {len(cells)} cells, its header {len(header)}"
            )
        row = dict(zip(header, cells, strict=True))
        by_contact.setdefault(row[CONTACT_ID], []).append(row)
    return header, by_contact


def corrections(settled: bytes, rebilled: bytes) -> Corrections:
    """What changes from the settled file to the rebilled one, matched by contact_id.

    A contact only in the rebilled file is one ``added`` line, only in the settled file one ``removed``
    line; a contact in both has one ``changed`` line per column whose cell differs (over the columns of
    either file: a column one file lacks reads as empty). Lines are ordered by contact_id, then column.
    """
    settled_header, settled_rows = parse_billing_csv(settled, "settled")
    rebilled_header, rebilled_rows = parse_billing_csv(rebilled, "rebilled")
    columns = sorted(set(settled_header) | set(rebilled_header))
    lines: list[Correction] = []
    added: set[str] = set()
    removed: set[str] = set()
    changed: set[str] = set()
    for contact_id in sorted(settled_rows.keys() | rebilled_rows.keys()):
        before = settled_rows.get(contact_id, [])
        after = rebilled_rows.get(contact_id, [])
        # Several rows of one contact (its versions straddle two UTC days) pair up in file order.
        for index in range(max(len(before), len(after))):
            if index >= len(before):
                added.add(contact_id)
                lines.append(Correction(contact_id, "added"))
            elif index >= len(after):
                removed.add(contact_id)
                lines.append(Correction(contact_id, "removed"))
            else:
                old, new = before[index], after[index]
                for column in columns:
                    was, now = old.get(column, ""), new.get(column, "")
                    if was != now:
                        changed.add(contact_id)
                        lines.append(Correction(contact_id, "changed", column, was, now))
    lines.sort(key=lambda line: (line.contact_id, line.column))
    return Corrections(tuple(lines), len(added), len(removed), len(changed))


def read_settled(settled: str, day: date) -> tuple[str, bytes]:
    """``--settled``: a folder or s3:// prefix holding ``billing-DATE.csv`` (or that file itself); its
    location and bytes."""
    from transform.settlement.export import csv_name

    name = csv_name(day)
    if settled.startswith("s3://"):
        try:
            location = S3Location.parse(settled)
        except LakeError as error:
            raise RebillError(str(error)) from None
        key = location.prefix + name
        client = s3_client()
        try:
            body: bytes = client.get_object(Bucket=location.bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise RebillError(f"no settled file s3://{location.bucket}/{key}") from None
        return f"s3://{location.bucket}/{key}", body
    path = Path(settled)
    target = path if path.is_file() else path / name
    if not target.is_file():
        raise RebillError(f"no settled file {name} at {path}")
    return str(target), target.read_bytes()


def is_settled_prefix(to: str) -> bool:
    """Whether ``--to`` names a ``settled/`` prefix or folder, where only the export writes."""
    trimmed = to[len("s3://") :] if to.startswith("s3://") else to
    return trimmed.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] == "settled"


def settled_columns_needed(settings: TransformSettings) -> None:
    if CONTACT_ID not in settings.csv_columns:
        raise RebillError(
            f"--settled matches rows by {CONTACT_ID}, which is not among CSV_COLUMNS "
            f"({', '.join(settings.csv_columns)}): add it to CSV_COLUMNS, for the export and the rebill alike"
        )
