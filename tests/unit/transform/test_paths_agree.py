"""The Lambda and the offline transform are one core: on real CTRs and on every case of the outcome
table they answer the same, record for record (DESIGN §3 holds in both). ``rebill`` and the demo run the
same core; their agreement with the settled export is tested in ``tests/e2e``."""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from firehose.offline.transform import OfflineFormat, make_sink, transform_lines
from tests.support import ctr_factory as ctrs
from transform.core.batch import BatchTransformer
from transform.core.columns import COLUMN_NAMES
from transform.core.rules import Outcome
from transform.core.settings import TransformSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ctrs"


def real_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        records.extend(document if isinstance(document, list) else [document])
    return records


def outcome_table_records() -> list[dict[str, Any]]:
    """One CTR of each row of the outcome table, and of each rule of provider time."""
    invalid_end = ctrs.billable_ctr()
    invalid_end["Agent"]["AfterContactWorkStartTimestamp"] = "soon"
    null_id = ctrs.billable_ctr()
    null_id["ContactId"] = None
    transferred_out = ctrs.billable_ctr(talk_seconds=1600)
    transferred_out["Agent"]["AfterContactWorkStartTimestamp"] = None
    transferred_out["TransferCompletedTimestamp"] = "2026-11-02T14:20:00Z"
    api_chat = ctrs.chat_ctr(initiation_method="API")
    return [
        ctrs.billable_ctr(),
        ctrs.outbound_ctr(initiation_method="API"),
        ctrs.billable_ctr(initiation_method="WEBRTC_API"),
        transferred_out,
        ctrs.voicemail_ctr(),
        ctrs.abandoned_ctr(),
        ctrs.monitor_ctr(),
        api_chat,
        ctrs.agent_event(),
        null_id,
        invalid_end,
    ]


def lambda_answers(
    records: list[dict[str, Any]], settings: TransformSettings
) -> tuple[list[bytes], Counter[Outcome]]:
    result = BatchTransformer(settings).transform(ctrs.firehose_event(records)["records"])
    rows = [base64.b64decode(answer["data"]) for answer in result.records if answer["result"] == "Ok"]
    return rows, result.outcomes


def offline_answers(
    records: list[dict[str, Any]], settings: TransformSettings, output_format: OfflineFormat
) -> tuple[list[bytes], Counter[Outcome]]:
    lines = io.StringIO("".join(json.dumps(record) + "\n" for record in records))
    output = io.BytesIO()
    summary = transform_lines(lines, make_sink(output_format, output, settings), settings)
    rows = output.getvalue().splitlines(keepends=True)
    if output_format is OfflineFormat.CSV:
        rows = rows[1:]  # the header, which only files have
    return rows, summary.outcomes


@pytest.mark.parametrize("records", [real_records(), outcome_table_records()], ids=["real", "outcome-table"])
@pytest.mark.parametrize("output_format", ["csv", "json"])
def test_the_lambda_and_the_offline_transform_agree(
    records: list[dict[str, Any]], output_format: str
) -> None:
    # GIVEN every registry column, local times, and the same CTRs
    settings = TransformSettings.from_environ(
        {
            "OUTPUT_FORMAT": output_format,
            "CSV_COLUMNS": ",".join(COLUMN_NAMES),
            "BILLING_TIMEZONE": "Asia/Kolkata",
        }
    )
    # WHEN the Lambda's batch and the offline transform run them
    lambda_rows, lambda_outcomes = lambda_answers(records, settings)
    offline_rows, offline_outcomes = offline_answers(records, settings, OfflineFormat(output_format))
    # THEN the same rows, in the same order, and the same counts
    assert lambda_rows
    assert offline_rows == lambda_rows
    assert offline_outcomes == lambda_outcomes


def test_the_outcome_table_cases_land_where_design_puts_them() -> None:
    # GIVEN the one-of-each CTRs  WHEN the Lambda's batch runs them  THEN DESIGN §3's counts
    _, outcomes = lambda_answers(outcome_table_records(), TransformSettings.from_environ({}))
    assert outcomes == {
        Outcome.BILLABLE: 4,  # inbound, API voice, in-app call, transferred out
        Outcome.NOT_BILLABLE: 4,  # voicemail, abandoned, monitor, customer-started chat
        Outcome.NOT_A_CONTACT_RECORD: 1,
        Outcome.INVALID: 2,  # null ContactId, unparsable after-contact work start
    }
