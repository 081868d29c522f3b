"""``ctr-billing demo`` fails (exit 1) when what it delivered differs from what was put and predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firehose.pipeline.simulator import Truth
from firehose.pipeline.summary import expected_figures, mismatches, summary_lines, vendor_figures

AS_EXPECTED: dict[str, Any] = {
    "records_put": 5665,
    "raw_records": 5665,
    "billable_expected": 3747,
    "vendor_rows": 3747,
    "vendor_seconds_expected": 3118520,
    "vendor_seconds": 3118520,
    "vendor_outbound_expected": 760,
    "vendor_outbound_rows": 760,
    "lake_rows_expected": 3904,
    "lake_rows": 3904,
    "lake_seconds_expected": 3249011,
    "lake_seconds": 3249011,
    "raw_versions": 42,
    "raw_versions_locked": 42,
}


def test_a_run_that_delivered_what_was_predicted_has_no_mismatch() -> None:
    assert mismatches(AS_EXPECTED, chaos=False) == []
    assert mismatches({**AS_EXPECTED, "lost": 0, "duplicate_vendor_rows": 0}, chaos=True) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"raw_records": 5664}, "raw records archived 5664 != 5665"),
        ({"vendor_rows": 3748}, "vendor CSV rows 3748 != 3747"),
        ({"lake_rows": 3903}, "lake Parquet rows 3903 != 3904"),
        ({"lake_rows": 3905}, "lake Parquet rows 3905 != 3904"),
        # e.g. an external transfer billed to the disconnect instead of to the transfer
        ({"vendor_seconds": 3119660}, "vendor billed seconds 3119660 != 3118520"),
        # e.g. in-app calls (WEBRTC_API) billed as OUTBOUND
        ({"vendor_outbound_rows": 801}, "vendor OUTBOUND rows 801 != 760"),
        ({"lake_seconds": 3249010}, "lake billed seconds 3249010 != 3249011"),
        ({"vendor_seconds": None}, "vendor billed seconds None != 3118520"),
        # a raw version the archive lock missed
        ({"raw_versions_locked": 41}, "raw versions Object-Locked 41 != 42"),
    ],
)
def test_each_count_that_differs_is_named(change: dict[str, int], problem: str) -> None:
    # GIVEN a run whose one count differs  WHEN judged  THEN that count is named
    assert mismatches({**AS_EXPECTED, **change}, chaos=False) == [problem]


def test_under_chaos_re_delivered_lake_rows_pass_but_lost_or_duplicated_vendor_rows_do_not() -> None:
    # GIVEN chaos runs: the lake is at least once, the vendor stream must be exact
    redelivered = {
        **AS_EXPECTED,
        "lake_rows": 3910,
        "lake_seconds": 3249011 + 4200,
        "lost": 0,
        "duplicate_vendor_rows": 0,
    }
    broken = {**AS_EXPECTED, "lake_rows": 3900, "lost": 2, "duplicate_vendor_rows": 1}
    # THEN extra lake rows are accepted; missing lake rows, lost and duplicated contacts are not
    assert mismatches(redelivered, chaos=True) == []
    assert mismatches(broken, chaos=True) == [
        "lake Parquet rows 3900 != 3904",
        "lost 2",
        "duplicate vendor rows 1",
    ]


def test_counts_with_nothing_predicted_are_not_judged() -> None:
    # GIVEN a run of the user's own CTRs (--input): no billable prediction
    assert mismatches({**AS_EXPECTED, "billable_expected": None, "vendor_rows": 12}, chaos=False) == []
    assert (
        mismatches({**AS_EXPECTED, "vendor_seconds_expected": None, "vendor_seconds": 1}, chaos=False) == []
    )


def test_vendor_figures_sum_the_streamed_rows_read_as_csv(tmp_path: Path) -> None:
    # GIVEN two streamed vendor objects, with quoted cells (one holding a comma, formula-guarded)
    folder = tmp_path / "billing" / "2026" / "11" / "02"
    folder.mkdir(parents=True)
    (folder / "a").write_text('OUTBOUND,2026-11-02T13:00:05Z,460,+12025550143,"\'=2,5",0\n', encoding="utf-8")
    (folder / "b").write_text(
        'INBOUND,2026-11-02T13:01:00Z,61,"",4417,15\nOUTBOUND,2026-11-02T13:02:00Z,1,,,0\n', encoding="utf-8"
    )
    columns = "call_type,initiation_timestamp,duration_seconds,patient_phone,provider_extension,hold_seconds"
    # WHEN summed with the stack's CSV_COLUMNS  THEN the seconds and the OUTBOUND rows
    figures = vendor_figures(tmp_path / "billing", columns)
    assert (figures.seconds, figures.outbound_rows) == (522, 2)
    # and a column CSV_COLUMNS leaves out is not summed (nothing to judge)
    columns = "patient_phone,initiation_timestamp,duration_seconds,a,provider_extension,hold_seconds"
    figures = vendor_figures(tmp_path / "billing", columns)
    assert (figures.seconds, figures.outbound_rows) == (522, None)
    none = vendor_figures(tmp_path / "billing", "contact_id,initiation_timestamp")
    assert (none.seconds, none.outbound_rows) == (None, None)


TRUTH = Truth(
    billable_contacts=10,
    billable_records=12,
    billable_seconds=600,
    billable_record_seconds=700,
    outbound_contacts=3,
    outbound_records=4,
)
DELIVERED = {"vendor_seconds": 1, "vendor_outbound_rows": 1}


def test_with_the_ledger_the_vendor_is_expected_to_get_one_row_per_contact_and_the_lake_every_version() -> (
    None
):
    assert expected_figures(TRUTH, ledger=True, delivered=DELIVERED) == {
        "billable_expected": 10,
        "vendor_seconds_expected": 600,
        "vendor_outbound_expected": 3,
        "lake_rows_expected": 12,
        "lake_seconds_expected": 700,
    }
    # without it, one vendor row per published version
    assert expected_figures(TRUTH, ledger=False, delivered=DELIVERED) == {
        "billable_expected": 12,
        "vendor_seconds_expected": 700,
        "vendor_outbound_expected": 4,
        "lake_rows_expected": 12,
        "lake_seconds_expected": 700,
    }


def test_nothing_is_expected_of_a_column_the_vendor_csv_leaves_out_or_of_records_from_a_file() -> None:
    unsummed = {"vendor_seconds": None, "vendor_outbound_rows": None}
    figures = expected_figures(TRUTH, ledger=True, delivered=unsummed)
    assert figures["vendor_seconds_expected"] is None and figures["vendor_outbound_expected"] is None
    assert set(expected_figures(None, ledger=True, delivered=DELIVERED).values()) == {None}


def test_the_table_marks_each_checked_count_ok_or_mismatch(tmp_path: Path) -> None:
    # GIVEN a summary whose lake rows differ from what was expected
    summary = {
        **AS_EXPECTED,
        "lake_rows": 3903,
        "processing_failed": 0,
        "dropped": 1918,
        "seconds": 2.5,
        "records_per_second": 2266.0,
        "total_seconds": 9.1,
    }
    # WHEN shown  THEN that count is marked and the others are ok
    lines = summary_lines(summary, tmp_path)
    assert [line.split()[-1] for line in lines if "lake Parquet rows" in line] == ["MISMATCH"]
    assert sum(line.endswith("  ok") for line in lines) == 6
    assert any(line.startswith("records put") and line.split()[-1] == "5665" for line in lines)
