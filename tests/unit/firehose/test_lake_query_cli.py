"""``ctr-billing query``: Athena SQL or a named query on a local lake, printed as a table, CSV or JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from firehose.cli.main import main
from firehose.offline.lake import DEFAULT_LAKE
from tests.support.lake_samples import FORMULA_EXTENSION, LakeSample, call_type, duration, extension


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["query", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_named_query_as_json_lines_matches_the_ctrs(
    sample: LakeSample, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the monthly query is printed as JSON
    status, out, _ = run(
        ["--named", "monthly_minutes_by_provider", "--lake", str(sample.root), "--format", "json"], capsys
    )
    # THEN one object per provider with the latest versions' seconds
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    seconds: Counter[str] = Counter()
    for ctr in sample.latest_ctrs():
        seconds[extension(ctr)] += duration(ctr)
    assert {row["provider_extension"]: row["billable_seconds"] for row in rows} == dict(seconds)
    assert all(isinstance(row["billable_minutes"], float) for row in rows)


def test_sql_as_a_table(sample: LakeSample, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN ad hoc Athena SQL is printed as a table
    sql = "SELECT call_type, count(*) AS calls FROM latest_billing_rows GROUP BY call_type ORDER BY call_type"
    status, out, _ = run([sql, "--lake", str(sample.root)], capsys)
    # THEN a header, a rule, the rows with numbers right-aligned, and a row count
    lines = out.splitlines()
    assert status == 0
    assert lines[0].split() == ["call_type", "|", "calls"]
    assert set(lines[1]) <= {"-", "+"}
    counts = Counter(call_type(ctr) for ctr in sample.latest_ctrs())
    assert [line.split(" | ") for line in lines[2:4]] == [
        ["INBOUND  ", f"{counts['INBOUND']:>5}"],
        ["OUTBOUND ", f"{counts['OUTBOUND']:>5}"],
    ]
    assert lines[-1] == "(2 rows)"


def test_csv_output_neutralises_formulas(sample: LakeSample, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT DISTINCT provider_extension FROM latest_billing_rows ORDER BY 1"
    status, out, _ = run([sql, "--lake", str(sample.root), "--format", "csv"], capsys)
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "provider_extension"
    assert f"'{FORMULA_EXTENSION}" in lines
    assert FORMULA_EXTENSION not in lines


def test_the_default_lake_is_the_last_demos(
    sample: LakeSample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a working directory whose out/demo/lake is the sample lake
    (tmp_path / DEFAULT_LAKE).parent.mkdir(parents=True)
    (tmp_path / DEFAULT_LAKE).symlink_to(sample.root)
    monkeypatch.chdir(tmp_path)
    # WHEN queried without --lake THEN that lake answers
    status, out, _ = run(["SELECT count(*) AS n FROM billing_rows", "--format", "json"], capsys)
    assert status == 0
    assert json.loads(out) == {"n": len(sample.deliveries)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--named", "no_such_query"], "no named query 'no_such_query'; named queries: "),
        (["SELECT 1", "--lake", "/nonexistent/lake"], "no lake folder at /nonexistent/lake"),
        (["SELECT nothing FROM nowhere"], "query failed"),
    ],
)
def test_errors_are_one_line_without_traceback(
    sample: LakeSample, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--lake" not in args:
        args = [*args, "--lake", str(sample.root)]
    status, _, err = run(args, capsys)
    assert status == 2
    assert message in err
    assert "Traceback" not in err


def test_a_reader_that_goes_away_ends_the_query_quietly(sample: LakeSample) -> None:
    import subprocess
    import sys

    # GIVEN the query's output piped into a reader that takes one line and exits (like `| head -1`)
    query = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firehose.cli.main",
            "query",
            "SELECT * FROM billing_rows CROSS JOIN billing_rows b",
            "--lake",
            str(sample.root),
            "--format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert query.stdout is not None and query.stderr is not None
    first = query.stdout.readline()
    query.stdout.close()
    # WHEN it has gone  THEN the query ends with the shell's SIGPIPE status and no traceback
    status = query.wait(timeout=60)
    assert json.loads(first)
    assert status == 141
    assert b"Traceback" not in query.stderr.read()
