"""``ctr-billing demo`` fails (exit 1) when what it delivered differs from what was put and predicted."""

from __future__ import annotations

from typing import Any

import pytest

from firehose.commands.demo import mismatches

AS_EXPECTED: dict[str, Any] = {
    "records_put": 5665,
    "raw_records": 5665,
    "billable_expected": 3747,
    "vendor_rows": 3747,
    "lake_rows_expected": 3904,
    "lake_rows": 3904,
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
    ],
)
def test_each_count_that_differs_is_named(change: dict[str, int], problem: str) -> None:
    # GIVEN a run whose one count differs  WHEN judged  THEN that count is named
    assert mismatches({**AS_EXPECTED, **change}, chaos=False) == [problem]


def test_under_chaos_re_delivered_lake_rows_pass_but_lost_or_duplicated_vendor_rows_do_not() -> None:
    # GIVEN chaos runs: the lake is at least once, the vendor stream must be exact
    redelivered = {**AS_EXPECTED, "lake_rows": 3910, "lost": 0, "duplicate_vendor_rows": 0}
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
