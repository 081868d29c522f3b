"""Chaos run: ``ctr-billing demo --chaos SEED --contacts N`` (moto over HTTP, the local Firehose runtime,
the transform Lambdas in their own processes; S3, Kinesis and transform faults; three kills and restarts
from the checkpoints), then a baseline without the billing ledger.

Figures: records/s (the demo's own end-to-end figure: records put over the time from the first put to
the drain), peak RSS of the demo process (embedded AWS, runtime and buffers; its Lambda processes are
smaller), lost billable contacts and duplicate vendor rows from summary.json. The baseline runs a tenth
of the contacts through the same faults with the vendor transform's ledger switched off
(``ChaosPlan.without_ledger``), to show what the ledger prevents. Figures only, never a verdict on speed.

    python -m bench.bench_chaos [CONTACTS] [SEED]      # default 100000 1 (CHAOS_CONTACTS, CHAOS_SEED)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import deploy_stack, lambda_zip
from firehose.pipeline.chaos import (
    RECONCILABLE_CSV_COLUMNS,
    ChaosPlan,
    with_redeliveries,
)
from firehose.pipeline.chaos_run import run_pipeline_under_chaos
from firehose.pipeline.producer import ctr_records, put_records
from firehose.runtime.runtime import default_options
from tests.support.ctr_factory import realistic_ctrs
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings

DEFAULT_CONTACTS = 100_000
BASELINE_SHARE = 0.1
ROOT = Path(__file__).resolve().parents[1]


def chaos_demo(contacts: int, seed: int, out: Path) -> dict[str, Any]:
    """The chaos demo as a user runs it, in a child process; its summary plus the child's peak RSS."""
    command = [
        sys.executable,
        "-m",
        "firehose.cli.main",
        "demo",
        "--chaos",
        str(seed),
        "--contacts",
        str(contacts),
    ]
    started = time.monotonic()
    result = subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=7200,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the chaos demo failed: {result.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    # The largest waited-for descendant: the demo process (its Lambda children are forked from it).
    summary["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return summary


def baseline_run(contacts: int, seed: int, *, without_ledger: bool) -> dict[str, Any]:
    """Realistic CTRs plus redeliveries and republished versions, under the same faults and kills."""
    with EmbeddedAws() as aws, tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        stack = deploy_stack(aws, lambda_zip(workdir), parameters={"CsvColumns": RECONCILABLE_CSV_COLUMNS})
        ctrs = realistic_ctrs(contacts, seed=seed)
        settings = TransformSettings()
        billable = [ctr["ContactId"] for ctr in ctrs if isinstance(classify(ctr, settings), BillableContact)]
        published = put_records(
            aws.client("kinesis"),
            stack.resources["ContactTraceRecordsStream"],
            ctr_records(with_redeliveries(ctrs, seed)),
        )
        figures = run_pipeline_under_chaos(
            aws,
            stack.resources["VendorBucket"],
            billable,
            published,
            ChaosPlan(seed=seed, without_ledger=without_ledger),
            default_options(workdir / "state", buffer_interval_seconds=1.0),
        )
    figures.pop("counts")
    return {"contacts": contacts, "records_published": published, **figures}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    contacts = int(args[0]) if args else int(os.environ.get("CHAOS_CONTACTS", DEFAULT_CONTACTS))
    seed = int(args[1]) if len(args) > 1 else int(os.environ.get("CHAOS_SEED", 1))
    with tempfile.TemporaryDirectory() as scratch:
        demo = chaos_demo(contacts, seed, Path(scratch) / "demo")
    small = max(100, int(contacts * BASELINE_SHARE))
    with_ledger = baseline_run(small, seed, without_ledger=False)
    without_ledger = baseline_run(small, seed, without_ledger=True)
    print(
        f"chaos demo (seed {seed}, {contacts:,} contacts): {demo['records_put']:,} records at "
        f"{demo['records_per_second']:,} records/s end to end ({demo['wall_seconds']} s with start-up and "
        f"download), peak RSS {demo['peak_rss_mb']:,} MB; lost {demo['lost']}, duplicate vendor rows "
        f"{demo['duplicate_vendor_rows']}; faults {demo.get('chaos', {})}"
    )
    print(
        f"ledger vs none ({small:,} contacts + redeliveries/republished, same faults): duplicate vendor rows "
        f"{with_ledger['duplicate_vendor_rows']} vs {without_ledger['duplicate_vendor_rows']}, lost "
        f"{with_ledger['lost']} vs {without_ledger['lost']}"
    )
    print(
        json.dumps(
            {
                "demo": {
                    key: demo.get(key)
                    for key in (
                        "records_put",
                        "records_per_second",
                        "seconds",
                        "wall_seconds",
                        "peak_rss_mb",
                        "lost",
                        "duplicate_vendor_rows",
                        "chaos",
                    )
                },
                "with_ledger": with_ledger,
                "without_ledger": without_ledger,
            },
            indent=2,
        )
    )
    return 0 if demo["lost"] == 0 and demo["duplicate_vendor_rows"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
