"""Chaos run: contacts through the embedded pipeline (moto over HTTP, the local Firehose runtime, the
transform Lambdas in their own processes) under ``firehose.chaos`` faults and three kill/restarts.

Figures: records/s (published records over the wall time of the run, publishing excluded), peak RSS of
this process and of its children (the Lambda processes), lost billable contacts, duplicate vendor rows,
faults injected. Side by side, a smaller baseline run without the billing ledger shows what the ledger
prevents. Figures only, never a pass/fail verdict on speed.

    python -m bench.bench_chaos [CONTACTS] [SEED]      # default 100000 1 (CHAOS_CONTACTS, CHAOS_SEED)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from firehose.chaos import (
    RECONCILABLE_CSV_COLUMNS,
    ChaosPlan,
    put_ctrs,
    run_pipeline_under_chaos,
    with_redeliveries,
)
from firehose.embedded import EmbeddedAws, deploy_stack, lambda_zip
from firehose.runtime.runtime import default_options
from tests.unit.ctr_factory import realistic_ctrs
from transform.rules import BillableContact, classify
from transform.settings import TransformSettings

DEFAULT_CONTACTS = 100_000
BASELINE_SHARE = 0.1  # the run without the ledger uses a tenth of the contacts


def chaos_run(contacts: int, seed: int, *, without_ledger: bool = False) -> dict[str, Any]:
    with EmbeddedAws() as aws, tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        stack = deploy_stack(aws, lambda_zip(workdir), parameters={"CsvColumns": RECONCILABLE_CSV_COLUMNS})
        ctrs = realistic_ctrs(contacts, seed=seed)
        settings = TransformSettings()
        billable = [ctr["ContactId"] for ctr in ctrs if isinstance(classify(ctr, settings), BillableContact)]
        published = put_ctrs(
            aws.client("kinesis"), stack.resources["ContactTraceRecordsStream"], with_redeliveries(ctrs, seed)
        )
        started = time.monotonic()
        figures = run_pipeline_under_chaos(
            aws,
            stack.resources["VendorBucket"],
            billable,
            published,
            ChaosPlan(seed=seed, without_ledger=without_ledger),
            default_options(workdir / "state", buffer_interval_seconds=2.0),
        )
        elapsed = time.monotonic() - started
    return {
        "contacts": contacts,
        "records_published": published,
        "seconds": round(elapsed, 1),
        "records_per_second": round(published / elapsed),
        **{key: value for key, value in figures.items() if key != "counts"},
    }


def peak_rss_mb() -> dict[str, float]:
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN is the largest terminated child.
    return {
        "self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "children": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    contacts = int(args[0]) if args else int(os.environ.get("CHAOS_CONTACTS", DEFAULT_CONTACTS))
    seed = int(args[1]) if len(args) > 1 else int(os.environ.get("CHAOS_SEED", 1))
    with_ledger = chaos_run(contacts, seed)
    rss = peak_rss_mb()
    baseline = chaos_run(max(100, int(contacts * BASELINE_SHARE)), seed, without_ledger=True)
    print(
        f"chaos (seed {seed}): {with_ledger['records_published']:,} records ({contacts:,} contacts) in "
        f"{with_ledger['seconds']} s = {with_ledger['records_per_second']:,} records/s; peak RSS "
        f"{rss['self']} MB (runtime) / {rss['children']} MB (largest Lambda process); "
        f"lost {with_ledger['lost']}, duplicate vendor rows {with_ledger['duplicate_vendor_rows']}; "
        f"without the ledger ({baseline['contacts']:,} contacts): lost {baseline['lost']}, "
        f"duplicate vendor rows {baseline['duplicate_vendor_rows']}"
    )
    print(json.dumps({"ledger": with_ledger, "without_ledger": baseline, "peak_rss_mb": rss}, indent=2))
    return 0 if with_ledger["lost"] == 0 and with_ledger["duplicate_vendor_rows"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
