"""Command-line values parsed strictly: one clear error each, never a traceback."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from firehose.cli.arguments import billing_day
from firehose.cli.errors import CommandError
from firehose.cli.main import main


def test_a_billing_day_is_yyyy_mm_dd() -> None:
    assert billing_day("2026-11-02") == date(2026, 11, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20261102", "must be YYYY-MM-DD"),
        ("2026-W44-1", "must be YYYY-MM-DD"),
        ("2026-11-2", "must be YYYY-MM-DD"),
        (" 2026-11-02", "must be YYYY-MM-DD"),
        ("2026-02-30", "a calendar day"),
        ("9999-12-31", "out of range"),
        ("0001-01-01", "out of range"),
        ("\uff12\uff10\uff12\uff16-11-02", "must be YYYY-MM-DD"),  # full-width digits
    ],
)
def test_other_spellings_and_days_out_of_range_are_refused(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message) as raised:
        billing_day(text)
    assert str(raised.value).startswith("--date ")


@pytest.mark.parametrize("day", ["9999-12-31", "20261102"])
def test_export_refuses_them_in_one_line(
    day: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a day export used to accept or crash on  WHEN exported  THEN status 2 and one line
    assert main(["export", "--date", day, "--lake", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ctr-billing: --date") and err.count("\n") == 1
