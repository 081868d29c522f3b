"""A demo run's figures and verdict: what the downloaded buckets hold, what the simulator predicted,
the checks between the two, and the table ``ctr-billing demo`` prints."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firehose.pipeline.simulator import Truth

# (label, what was delivered, what was expected): the counts a demo checks, as summary.json keys. The
# seconds and OUTBOUND rows check the billing rules themselves (provider time, call type) against what the
# simulator generated; they are judged only when the vendor CSV has those columns.
CHECKED_COUNTS = (
    ("raw records archived", "raw_records", "records_put"),
    ("vendor CSV rows", "vendor_rows", "billable_expected"),
    ("vendor billed seconds", "vendor_seconds", "vendor_seconds_expected"),
    ("vendor OUTBOUND rows", "vendor_outbound_rows", "vendor_outbound_expected"),
    ("lake Parquet rows", "lake_rows", "lake_rows_expected"),
    ("lake billed seconds", "lake_seconds", "lake_seconds_expected"),
    ("raw versions Object-Locked", "raw_versions_locked", "raw_versions"),
)
# Wanted values that are counts of the run itself, not predictions of the simulator.
_COUNTED = ("records_put", "raw_versions")


# --- what was delivered ----------------------------------------------------------------------------


def count_lines(folder: Path, pattern: str, *, gzipped: bool) -> int:
    total = 0
    for path in sorted(folder.glob(pattern)):
        if not path.is_file():
            continue
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as source:
            total += sum(1 for _ in source)
    return total


def count_parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(folder.rglob("*.parquet")))


def sum_parquet_column(folder: Path, column: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for path in sorted(folder.rglob("*.parquet")):
        total += pc.sum(pq.read_table(path, columns=[column])[column]).as_py() or 0
    return total


@dataclass(frozen=True)
class VendorFigures:
    """Sums over the streamed vendor CSV rows; None when CSV_COLUMNS leaves the column out."""

    seconds: int | None
    outbound_rows: int | None


def vendor_figures(folder: Path, csv_columns: str) -> VendorFigures:
    columns = [name.strip() for name in csv_columns.split(",")]
    duration = columns.index("duration_seconds") if "duration_seconds" in columns else None
    call_type = columns.index("call_type") if "call_type" in columns else None
    seconds = outbound = 0
    for path in sorted(folder.glob("**/*")):
        if not path.is_file():
            continue
        with path.open(newline="", encoding="utf-8") as source:
            for row in csv.reader(source):
                if duration is not None:
                    seconds += int(row[duration])
                if call_type is not None:
                    outbound += row[call_type] == "OUTBOUND"
    return VendorFigures(
        seconds if duration is not None else None, outbound if call_type is not None else None
    )


def delivered_figures(out: Path, data_prefixes: Mapping[str, str], csv_columns: str) -> dict[str, int | None]:
    """What the downloaded buckets (``out``/raw, vendor, lake) hold under each one's data prefix, i.e.
    without their error output."""
    raw = out / "raw" / data_prefixes["raw"]
    vendor = out / "vendor" / data_prefixes["vendor"]
    lake = out / "lake" / data_prefixes["lake"]
    sums = vendor_figures(vendor, csv_columns)
    return {
        "vendor_rows": count_lines(vendor, "**/*", gzipped=False),
        "vendor_seconds": sums.seconds,
        "vendor_outbound_rows": sums.outbound_rows,
        "lake_rows": count_parquet_rows(lake),
        "lake_seconds": sum_parquet_column(lake, "duration_seconds"),
        "raw_records": count_lines(raw, "**/*.gz", gzipped=True),
    }


# --- what was expected -----------------------------------------------------------------------------


def expected_figures(
    truth: Truth | None, *, ledger: bool, delivered: Mapping[str, int | None]
) -> dict[str, int | None]:
    """What the simulator's truth predicts for the vendor and the lake (None without a simulator, or for
    a column the vendor CSV leaves out). With the billing ledger the vendor gets one row per billable
    contact; without, one per version Connect published."""
    if truth is None:
        return dict.fromkeys((wanted for _, _, wanted in CHECKED_COUNTS if wanted not in _COUNTED), None)
    seconds = truth.billable_seconds if ledger else truth.billable_record_seconds
    outbound = truth.outbound_contacts if ledger else truth.outbound_records
    return {
        "billable_expected": truth.billable_contacts if ledger else truth.billable_records,
        "vendor_seconds_expected": None if delivered["vendor_seconds"] is None else seconds,
        "vendor_outbound_expected": None if delivered["vendor_outbound_rows"] is None else outbound,
        "lake_rows_expected": truth.billable_records,
        "lake_seconds_expected": truth.billable_record_seconds,
    }


# --- the verdict -----------------------------------------------------------------------------------


def mismatches(summary: Mapping[str, Any], *, chaos: bool) -> list[str]:
    """What a run delivered differently from what was put and predicted (empty: all as expected).

    Under chaos the lake may hold re-delivered rows (it is at least once, like Firehose to S3; its views
    and the daily export fold them), so only the vendor's exactness and nothing lost are required there.
    """
    problems = [
        f"{label} {summary.get(actual)} != {summary[wanted]}"
        for label, actual, wanted in CHECKED_COUNTS
        if summary.get(wanted) is not None
        and summary.get(actual) != summary[wanted]
        and not (
            chaos
            and actual.startswith("lake_")
            and summary.get(actual) is not None
            and summary[actual] > summary[wanted]
        )
    ]
    problems += [
        f"{counter.replace('_', ' ')} {summary[counter]}"
        for counter in ("lost", "duplicate_vendor_rows")
        if summary.get(counter)
    ]
    return problems


def summary_lines(summary: Mapping[str, Any], out: Path) -> list[str]:
    """The table ``ctr-billing demo`` prints: each count beside what was expected, the contacts by kind,
    speed and memory, and where the output is."""
    rows = [
        ("records put", summary["records_put"], ""),
        *(
            (label, summary.get(actual), summary.get(wanted))
            for label, actual, wanted in CHECKED_COUNTS
            if summary.get(actual) is not None
        ),
        ("vendor processing-failed", summary["processing_failed"], ""),
        ("vendor dropped (not billable / duplicates / not CTRs)", summary["dropped"], ""),
    ]
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{'':{width}}  {'actual':>9}  {'expected':>9}"]
    for label, actual, expected in rows:
        shown = "" if expected in ("", None) else str(expected)
        mark = "" if shown == "" else ("  ok" if str(actual) == shown else "  MISMATCH")
        lines.append(f"{label:{width}}  {actual!s:>9}  {shown:>9}{mark}")
    lines += _kinds_table((summary.get("simulation") or {}).get("kinds") or {})
    lines.append(
        f"{summary['records_put']} records in {summary['seconds']} s "
        f"({summary['records_per_second']} records/s end to end; {summary['total_seconds']} s with start-up)"
    )
    memory = summary.get("peak_rss_mb") or {}
    if memory.get("embedded_aws_mb") is not None:
        lines.append(
            f"peak memory: pipeline {memory['pipeline_process_mb']} MB, largest Lambda worker "
            f"{memory['lambda_worker_mb']} MB, embedded AWS (holds the stored data) {memory['embedded_aws_mb']} MB"
        )
    lines += [
        "",
        f"raw archive (GZIP JSON lines):   {out / 'raw'}",
        f"vendor CSV (and errors/):        {out / 'vendor'}",
        f"data lake Parquet (and errors/): {out / 'lake'}",
        f"transform logs:                  {out / 'logs'}",
        f"summary:                         {out / 'summary.json'}",
    ]
    return lines


def _kinds_table(kinds: Mapping[str, Mapping[str, int]]) -> list[str]:
    """The simulated contacts by kind: how many, how many billable, and for those the provider minutes
    billed beside the minutes the contacts were open (an external transfer stays open after the provider
    has gone)."""
    if not kinds:
        return []
    width = max(len("contacts by kind"), *(len(kind) for kind in kinds))
    lines = [
        "",
        f"{'contacts by kind':{width}}  {'contacts':>8}  {'billable':>8}  {'billed min':>10}  {'open min':>8}",
    ]
    for kind, figures in kinds.items():
        lines.append(
            f"{kind:{width}}  {figures['contacts']:>8}  {figures['billable']:>8}  "
            f"{figures['billable_seconds'] / 60:>10.0f}  {figures['contact_seconds_of_billable'] / 60:>8.0f}"
        )
    return [*lines, ""]
