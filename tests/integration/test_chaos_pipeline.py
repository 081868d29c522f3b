"""The whole embedded pipeline under chaos: faults, three kills and restarts, redelivered and republished
CTRs. With the ledger no billable contact is lost and none is billed twice; without it (the baseline) the
same traffic does produce duplicate vendor rows, so the verdict can fail."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

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

pytestmark = pytest.mark.integration

CONTACTS = 300


def chaos_run(
    seed: int, *, without_ledger: bool, transform_failure: float, s3_put_failure: float
) -> dict[str, Any]:
    with EmbeddedAws() as aws, tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        stack = deploy_stack(aws, lambda_zip(workdir), parameters={"CsvColumns": RECONCILABLE_CSV_COLUMNS})
        ctrs = realistic_ctrs(CONTACTS, seed=seed)
        billable = [
            ctr["ContactId"]
            for ctr in ctrs
            if isinstance(classify(ctr, TransformSettings()), BillableContact)
        ]
        traffic = with_redeliveries(ctrs, seed, share=0.1)
        published = put_records(
            aws.client("kinesis"), stack.resources["ContactTraceRecordsStream"], ctr_records(traffic)
        )
        plan = ChaosPlan(
            seed=seed,
            without_ledger=without_ledger,
            transform_failure=transform_failure,
            s3_put_failure=s3_put_failure,
        )
        options = default_options(workdir / "state", buffer_interval_seconds=0.5, poll_seconds=0.05)
        return run_pipeline_under_chaos(
            aws, stack.resources["VendorBucket"], billable, published, plan, options
        )


def test_with_the_ledger_nothing_is_lost_and_nothing_billed_twice() -> None:
    # GIVEN redelivered and republished CTRs, and a run with every kind of fault and three kills; every
    # batch's transform fails twice (before or after running, e.g. after claiming in the ledger), and
    # most first S3 writes fail (few objects are written in a run this small)
    figures = chaos_run(1, without_ledger=False, transform_failure=1.0, s3_put_failure=0.9)
    # THEN every billable contact has exactly one vendor row
    assert figures["lost"] == 0
    assert figures["duplicate_vendor_rows"] == 0
    assert figures["unexpected"] == 0
    assert figures["vendor_rows"] == figures["expected"] > 0
    # AND the faults did happen
    chaos = figures["chaos"]
    assert chaos["restarts"] == 3
    assert chaos["failed_invocations"] > 0
    assert chaos.get("kinesis_throttles", 0) > 0
    assert chaos.get("s3_put_failures", 0) > 0


def test_without_the_ledger_the_same_traffic_bills_contacts_twice() -> None:
    # GIVEN the same kind of traffic, with the vendor transform's ledger switched off
    figures = chaos_run(2, without_ledger=True, transform_failure=0.0, s3_put_failure=0.0)
    # THEN redeliveries and republished versions become duplicate vendor rows
    assert figures["duplicate_vendor_rows"] > 0
    assert figures["lost"] == 0
