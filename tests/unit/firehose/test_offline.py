"""The offline transform core (``firehose.offline.transform``) without the CLI around it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from firehose.offline import transform as offline
from firehose.offline.transform import OfflineFormat, make_sink, transform_lines
from transform.core.rules import Outcome
from transform.core.settings import TransformSettings

EXAMPLES = Path(__file__).resolve().parents[3] / "firehose" / "data" / "example-ctrs.jsonl"


def test_parquet_is_written_in_bounded_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a tiny row-group size, so memory stays bounded however long the input
    monkeypatch.setattr(offline, "PARQUET_ROW_GROUP", 4)
    settings = TransformSettings()
    buffer = io.BytesIO()
    # WHEN the examples are written as Parquet
    with EXAMPLES.open() as lines:
        summary = transform_lines(lines, make_sink(OfflineFormat.PARQUET, buffer, settings), settings)
    # THEN every billable row is there, spread over several row groups
    parquet = pq.ParquetFile(io.BytesIO(buffer.getvalue()))
    assert parquet.metadata.num_rows == summary.outcomes[Outcome.BILLABLE]
    assert parquet.metadata.num_row_groups == -(-summary.outcomes[Outcome.BILLABLE] // 4)


def test_csv_uses_the_billing_timezone_and_configured_columns() -> None:
    # GIVEN settings for New York time and two columns
    settings = TransformSettings.from_environ(
        {"BILLING_TIMEZONE": "America/New_York", "CSV_COLUMNS": "contact_id,initiation_timestamp"}
    )
    first = json.loads(EXAMPLES.read_text().splitlines()[0])
    buffer = io.BytesIO()
    # WHEN one CTR is transformed
    transform_lines(
        io.StringIO(json.dumps(first) + "\n"), make_sink(OfflineFormat.CSV, buffer, settings), settings
    )
    # THEN the header names the columns and the time is local with its offset (EST in November)
    header, row = buffer.getvalue().decode().splitlines()
    assert header == "contact_id,initiation_timestamp"
    assert row == f"{first['ContactId']},2026-11-02T08:00:41-05:00"


def test_blank_lines_are_skipped_and_agent_events_counted() -> None:
    # GIVEN an agent event, a blank line and a JSON array
    text = '{"EventType": "STATE_CHANGE"}\n\n[1, 2]\n'
    settings = TransformSettings()
    # WHEN transformed
    summary = transform_lines(
        io.StringIO(text), make_sink(OfflineFormat.JSON, io.BytesIO(), settings), settings
    )
    # THEN the event is not a contact record, the array is malformed, the blank line is nothing
    assert summary.outcomes == {Outcome.NOT_A_CONTACT_RECORD: 1, Outcome.MALFORMED: 1}
    assert summary.first_failures == [(3, "data is not a JSON object")]


def test_an_unexpected_error_on_one_line_costs_that_line_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN three CTRs, the second of which trips a bug in the rules (simulated)
    lines = EXAMPLES.read_text().splitlines()[:3]
    classify = offline.classify
    unlucky = json.loads(lines[1])["ContactId"]

    def buggy_classify(ctr: dict[str, object], settings: TransformSettings) -> object:
        if ctr.get("ContactId") == unlucky:
            raise KeyError("bug")
        return classify(ctr, settings)

    monkeypatch.setattr(offline, "classify", buggy_classify)
    settings = TransformSettings()
    rejects = io.StringIO()
    # WHEN the lines are transformed
    summary = transform_lines(
        io.StringIO("\n".join(lines) + "\n"),
        make_sink(OfflineFormat.CSV, io.BytesIO(), settings),
        settings,
        rejects,
    )
    # THEN that line is rejected as invalid with the error's kind only, and the others were handled
    assert summary.outcomes[Outcome.INVALID] == 1
    assert summary.first_failures == [(2, "unexpected KeyError")]
    assert rejects.getvalue() == lines[1] + "\n"
    assert sum(summary.outcomes.values()) == 3
