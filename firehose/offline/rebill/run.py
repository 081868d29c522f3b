"""One rebill: each line of the window's objects through the Lambda's core and batch stages into a
temporary lake (Parquet with the lake's schema), spread over a process pool, then settled by the export.
"""

from __future__ import annotations

import contextlib
import gzip
import multiprocessing
import os
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firehose.offline.lake import LocalLake
from firehose.offline.rebill.archive import (
    DEFAULT_WINDOW_DAYS,
    ArchiveObject,
    ArrivalWindow,
    RawArchive,
    RebillError,
    list_objects,
)
from transform.core.batch import BatchStage, PendingContact, RecordDecodeError, parse_document
from transform.core.columns import LAKE_TABLE
from transform.core.rows import json_row_dict, partition_keys
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


# Billable contacts per run of the batch stages: about a Firehose batch, so the directory is read with
# the same number of BatchGetItem calls as the Lambda makes.
STAGE_CHUNK = 500
# Rows per Parquet row group: bounds the rows held in memory per partition of an object.
ROW_GROUP = 16_384
MAX_REPORTED_FAILURES = 20
_NO_RECORD: Mapping[str, Any] = {}
# A lake partition: the (year, month, day) of ``transform.core.rows.partition_keys``.
Partition = tuple[str, str, str]
# Where a row came from: its object's key and line number.
Origin = tuple[str, int]

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
