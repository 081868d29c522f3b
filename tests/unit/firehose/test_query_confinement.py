"""``ctr-billing query`` reads the lake and nothing else: no other file, no URL, no writes, no settings
changes, no values of the lake in its errors, no terminal control sequences in its table output."""

from __future__ import annotations

from pathlib import Path

import pytest

from firehose.cli.main import main
from firehose.offline.lake import LakeError, LocalLake
from tests.support.lake_samples import LakeSample


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["query", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_parquet('https://example.org/lake.parquet')",
        "SELECT * FROM read_json('/etc/os-release')",
    ],
)
def test_a_query_cannot_read_outside_the_lake(
    sample: LakeSample, sql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN SQL naming a file or URL that is not one of the lake's
    # WHEN run  THEN refused with one line naming the rule, and nothing read is printed
    status, out, err = run([sql, "--lake", str(sample.root)], capsys)
    assert status == 2
    assert out == ""
    assert "reads or writes outside the lake's files" in err
    assert "root:" not in err


def test_a_query_cannot_write_even_inside_the_lake_folder(
    sample: LakeSample, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN COPY ... TO a file in the lake folder itself (PHI written where anyone may read it)
    target = sample.root / "copied.csv"
    sql = f"COPY (SELECT patient_phone FROM billing_rows) TO '{target}'"  # noqa: S608
    # WHEN run  THEN refused and no file appears
    status, _, err = run([sql, "--lake", str(sample.root)], capsys)
    assert status == 2
    assert "outside the lake's files" in err
    assert not target.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = true",
        "SET allowed_paths = ['/etc/passwd']",
        "SET autoinstall_known_extensions = true",
    ],
)
def test_a_query_cannot_lift_the_confinement(sample: LakeSample, sql: str) -> None:
    # GIVEN the lake open  WHEN a statement tries to change its locked settings  THEN it fails
    with LocalLake(sample.root) as lake:
        with pytest.raises(LakeError):
            lake.query(sql)
        # AND files outside stay unreadable afterwards
        with pytest.raises(LakeError, match="outside the lake's files"):
            lake.query("SELECT * FROM read_csv('/etc/passwd')")


def test_extensions_are_neither_installed_nor_loaded(sample: LakeSample) -> None:
    with LocalLake(sample.root) as lake:
        for sql in ("INSTALL httpfs", "LOAD httpfs"):
            with pytest.raises(LakeError):
                lake.query(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT json_extract(patient_phone, '$.x') FROM billing_rows WHERE patient_phone <> ''",
        "SELECT CAST(patient_phone AS INTEGER) FROM billing_rows WHERE patient_phone <> ''",
        "SELECT strptime(patient_phone, '%Y') FROM billing_rows WHERE patient_phone <> ''",
    ],
)
def test_errors_on_lake_values_never_show_the_value(
    sample: LakeSample, sql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a query that fails on a patient's phone number
    phones = {ctr["CustomerEndpoint"]["Address"] for ctr in sample.deliveries if ctr.get("CustomerEndpoint")}
    # WHEN run  THEN the error names its kind only: no phone number, not even its digits
    status, _, err = run([sql, "--lake", str(sample.root)], capsys)
    assert status == 2
    assert "values are not shown" in err
    assert not any(phone in err or phone[1:] in err for phone in phones)


def test_errors_about_the_sql_text_are_shown_in_full(
    sample: LakeSample, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(["SELECT no_such_column FROM billing_rows", "--lake", str(sample.root)], capsys)
    assert status == 2
    assert "no_such_column" in err


def test_table_output_shows_control_characters_as_escapes(
    sample: LakeSample, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN values holding a terminal escape sequence, a carriage return and a right-to-left override
    sql = "SELECT chr(27) || '[2J' AS screen, 'a' || chr(13) || 'b' AS cr, 'x' || chr(8238) || 'y' AS rtl"
    # WHEN printed as a table
    status, out, _ = run([sql, "--lake", str(sample.root)], capsys)
    # THEN each is written as a visible escape, never as the character itself
    assert status == 0
    assert "\\x1b[2J" in out and "a\\rb" in out and "x\\u202ey" in out
    assert not any(character in out for character in ("\x1b", "\r", "\u202e"))


def test_the_lake_and_the_settled_manifests_stay_readable(tmp_path: Path, sample: LakeSample) -> None:
    # GIVEN the confinement  WHEN the lake's own tables are read  THEN they answer
    with LocalLake(sample.root, tmp_path) as lake:
        assert lake.query("SELECT count(*) FROM billing_rows").rows[0][0] == len(sample.deliveries)
        assert lake.query("SELECT count(*) FROM settled_manifests").rows == [(0,)]
