"""``ctr-billing transform`` run as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from transform.core.columns import DEFAULT_CSV_COLUMNS, arrow_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "firehose" / "data" / "example-ctrs.jsonl"
CLI = shutil.which("ctr-billing", path=str(Path(sys.executable).parent)) or "ctr-billing"

pytestmark = pytest.mark.e2e


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CLI, *args], capture_output=True, input=stdin, env=env, timeout=120, check=False)


def billable_example_ids() -> set[str]:
    """Independent truth for the bundled examples: a voice contact that reached an agent, not a monitor."""
    ids = set()
    for line in EXAMPLES.read_text().splitlines():
        ctr = json.loads(line)
        agent = ctr.get("Agent")
        if (
            ctr.get("ContactId")
            and ctr.get("Channel") == "VOICE"
            and isinstance(agent, dict)
            and agent.get("ConnectedToAgentTimestamp")
            and ctr.get("InitiationMethod") != "MONITOR"
        ):
            ids.add(ctr["ContactId"])
    return ids


def test_csv_output_has_header_and_one_row_per_billable_ctr(tmp_path: Path) -> None:
    # GIVEN the bundled example CTRs (voicemail, abandoned, queue, outbound, transfer, chat, monitor, agent event)
    output = tmp_path / "billing.csv"
    # WHEN the offline CLI writes CSV
    completed = run_cli("transform", "--input", str(EXAMPLES), "--format", "csv", "--output", str(output))
    # THEN it succeeds, the file starts with the default header and holds one row per billable CTR version
    assert completed.returncode == 0, completed.stderr.decode()
    rows = list(csv.reader(output.read_text().splitlines()))
    assert tuple(rows[0]) == DEFAULT_CSV_COLUMNS
    versions = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    expected = sum(1 for ctr in versions if ctr.get("ContactId") in billable_example_ids())
    assert len(rows) - 1 == expected
    # AND the outcome summary on stderr counts every line
    summary = json.loads(completed.stderr.decode()[: completed.stderr.decode().rindex("}") + 1])
    assert summary["lines"] == len(versions)
    assert summary["outcomes"]["BillableContact"] == expected


def test_parquet_output_has_the_lake_schema(tmp_path: Path) -> None:
    # GIVEN the example CTRs, gzipped
    source = tmp_path / "ctrs.jsonl.gz"
    source.write_bytes(gzip.compress(EXAMPLES.read_bytes()))
    output = tmp_path / "billing.parquet"
    # WHEN the CLI writes Parquet
    completed = run_cli("transform", "--input", str(source), "--format", "parquet", "--output", str(output))
    # THEN the file has exactly the data lake's schema and every billable contact
    assert completed.returncode == 0, completed.stderr.decode()
    table = pq.read_table(output)
    assert table.schema.equals(arrow_schema())
    assert set(table.column("contact_id").to_pylist()) == billable_example_ids()


def test_json_rows_from_stdin_to_stdout() -> None:
    # GIVEN CTRs on stdin WHEN the CLI writes JSON rows to stdout
    completed = run_cli(
        "transform", "--input", "-", "--format", "json", "--output", "-", stdin=EXAMPLES.read_bytes()
    )
    # THEN every line is a JSON row with the contact's id
    assert completed.returncode == 0, completed.stderr.decode()
    rows = [json.loads(line) for line in completed.stdout.decode().splitlines()]
    assert {row["contact_id"] for row in rows} == billable_example_ids()


def test_bad_lines_are_counted_reported_without_content_and_kept_in_rejects(tmp_path: Path) -> None:
    # GIVEN a file with a broken line holding a phone number and a CTR with an unparsable timestamp
    good = EXAMPLES.read_text().splitlines()[0]
    broken_timestamp = json.loads(good)
    broken_timestamp["DisconnectTimestamp"] = "yesterday"
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join([good, '{"phone": "+12025550199"', json.dumps(broken_timestamp)]) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    # WHEN the CLI runs
    completed = run_cli(
        "transform", "--input", str(source), "--output", str(tmp_path / "o.csv"), "--rejects", str(rejects)
    )
    # THEN it finishes with status 1 (some lines failed), names the failing lines and problems, never
    # their content
    stderr = completed.stderr.decode()
    assert completed.returncode == 1
    assert "line 2: data is not JSON" in stderr
    assert "line 3: DisconnectTimestamp not an ISO 8601 timestamp" in stderr
    assert "+12025550199" not in stderr and "yesterday" not in stderr
    # AND the rejected lines are kept as they were
    assert rejects.read_text().splitlines() == source.read_text().splitlines()[1:]


def test_bad_setting_fails_naming_the_variable(tmp_path: Path) -> None:
    # GIVEN an unknown CSV column in the environment
    env = {"PATH": "/usr/bin:/bin", "CSV_COLUMNS": "call_type,ssn"}
    # WHEN the CLI starts THEN it fails with a message naming the variable
    completed = run_cli("transform", "--input", str(EXAMPLES), "--output", str(tmp_path / "o.csv"), env=env)
    assert completed.returncode == 2
    assert b"CSV_COLUMNS" in completed.stderr and b"ssn" in completed.stderr


def test_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    completed = run_cli(
        "transform", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o.csv")
    )
    assert completed.returncode == 2
    assert b"no such file" in completed.stderr


# --- hostile and broken inputs: one clear line, status 2, nothing half-written, the input untouched ----


def _one_line_error(completed: subprocess.CompletedProcess[bytes]) -> str:
    stderr = completed.stderr.decode()
    assert completed.returncode == 2, stderr
    assert stderr.startswith("ctr-billing: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.parametrize("option", ["--output", "--rejects"])
def test_writing_over_the_input_is_refused(tmp_path: Path, option: str) -> None:
    # GIVEN a CTR file  WHEN an output names the same file (through another spelling of its path)
    source = tmp_path / "ctrs.jsonl"
    source.write_bytes(EXAMPLES.read_bytes())
    other = {"--output": str(tmp_path / "o.csv"), "--rejects": str(tmp_path / "r.jsonl")}
    other[option] = str(tmp_path / "." / "ctrs.jsonl")
    completed = run_cli(
        "transform", "--input", str(source), *[part for item in other.items() for part in item]
    )
    # THEN refused, and the input is as it was
    assert "is the --input file" in _one_line_error(completed)
    assert source.read_bytes() == EXAMPLES.read_bytes()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: gzip.compress(data)[:-40], "not a complete gzip file"),
        (lambda data: data, "not a complete gzip file"),  # plain text named .gz
    ],
)
def test_a_broken_gzip_input_leaves_an_earlier_output_untouched(
    tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    # GIVEN an output from an earlier run and a damaged .gz input
    output = tmp_path / "billing.csv"
    output.write_bytes(b"earlier,run\n")
    source = tmp_path / "ctrs.jsonl.gz"
    source.write_bytes(damage(EXAMPLES.read_bytes()))
    # WHEN transformed
    completed = run_cli("transform", "--input", str(source), "--output", str(output))
    # THEN one line says what is wrong; the earlier output is intact and no partial file is left
    assert message in _one_line_error(completed)
    assert output.read_bytes() == b"earlier,run\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["billing.csv", "ctrs.jsonl.gz"]


def test_an_output_that_is_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    completed = run_cli("transform", "--input", str(EXAMPLES), "--output", str(tmp_path))
    assert "is a folder" in _one_line_error(completed)


def test_a_full_disk_is_a_clear_error() -> None:
    completed = run_cli("transform", "--input", str(EXAMPLES), "--output", "/dev/full")
    assert "No space left on device" in _one_line_error(completed)


def test_a_byte_order_mark_before_the_first_line_is_accepted(tmp_path: Path) -> None:
    # GIVEN a CTR file saved with a UTF-8 byte-order mark
    source = tmp_path / "bom.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + EXAMPLES.read_bytes())
    # WHEN transformed  THEN every line is handled as without the mark
    with_bom = run_cli("transform", "--input", str(source), "--output", str(tmp_path / "a.csv"))
    without = run_cli("transform", "--input", str(EXAMPLES), "--output", str(tmp_path / "b.csv"))
    assert with_bom.returncode == without.returncode == 0, with_bom.stderr.decode()
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
