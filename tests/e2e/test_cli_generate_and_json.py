"""``ctr-billing generate`` (example CTRs and Lambda events) and the machine-readable summaries."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.events import load_event

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "firehose.cli.main"]

pytestmark = pytest.mark.e2e


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


def _keys(value: object) -> object:
    if isinstance(value, dict):
        return {key: _keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keys(value[0])] if value else []
    return type(value).__name__


def test_generate_ctrs_writes_json_lines_and_the_truth_beside_them(tmp_path: Path) -> None:
    output = tmp_path / "ctrs.jsonl"
    done = run_cli("generate", "ctrs", "--contacts", "40", "--seed", "5", "--output", str(output))
    assert done.returncode == 0, done.stderr
    lines = output.read_text().splitlines()
    truth = json.loads((tmp_path / "ctrs.jsonl.truth.json").read_text())
    assert len(lines) == truth["records"]
    assert truth["contacts"] == 40
    assert sum(1 for line in lines if "ContactId" in json.loads(line)) == truth["ctr_records"]
    # the same seed gives the same file
    again = tmp_path / "again.jsonl"
    run_cli("generate", "ctrs", "--contacts", "40", "--seed", "5", "--output", str(again))
    assert again.read_bytes() == output.read_bytes()


def test_generate_ctrs_follows_the_mix(tmp_path: Path) -> None:
    output = tmp_path / "voicemail.jsonl"
    done = run_cli("generate", "ctrs", "--contacts", "10", "--mix", "voicemail=1", "--output", str(output))
    assert done.returncode == 0, done.stderr
    truth = json.loads((tmp_path / "voicemail.jsonl.truth.json").read_text())
    assert truth["contacts_by_kind"] == {"voicemail": 10}
    assert truth["billable_contacts"] == 0
    refused = run_cli("generate", "ctrs", "--contacts", "1", "--mix", "nonsense=1", "--output", str(output))
    assert refused.returncode == 2
    assert "KIND=WEIGHT" in refused.stderr


def test_a_firehose_event_carries_the_given_ctrs_in_the_published_shape(tmp_path: Path) -> None:
    ctrs = tmp_path / "ctrs.jsonl"
    run_cli("generate", "ctrs", "--contacts", "5", "--output", str(ctrs))
    done = run_cli("generate", "event", "firehose", "--input", str(ctrs))
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout)
    published = load_event("firehose-transformation-kinesis-source.json")
    assert _keys(event) == _keys(published)
    assert [base64.b64decode(record["data"]) for record in event["records"]] == ctrs.read_bytes().splitlines()
    assert len({record["recordId"] for record in event["records"]}) == len(event["records"])

    # and the transform Lambda answers every record
    from transform.handler import lambda_handler

    class Context:
        function_name = "transform"
        memory_limit_in_mb = 256
        invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:transform"
        aws_request_id = "1"

    answer = lambda_handler(event, Context())
    assert [r["recordId"] for r in answer["records"]] == [r["recordId"] for r in event["records"]]


@pytest.mark.parametrize(
    ("function", "published", "parameter"),
    [
        ("lookup-by-extension", "connect-get-agent-by-extension", "extensionNumber"),
        ("lookup-by-agent", "connect-get-agent-extension-by-agent-id", "AgentArn"),
    ],
)
def test_a_contact_flow_event_has_the_published_shape(
    tmp_path: Path, function: str, published: str, parameter: str
) -> None:
    output = tmp_path / "event.json"
    done = run_cli("generate", "event", "contact-flow", "--function", function, "--output", str(output))
    assert done.returncode == 0, done.stderr
    event = json.loads(output.read_text())
    expected = load_event(f"{published}.json")
    assert set(event["Details"]["ContactData"]) == set(expected["Details"]["ContactData"])
    assert set(event["Details"]["Parameters"]) == {parameter}
    assert isinstance(event["Details"]["Parameters"][parameter], str)
    assert event["Name"] == "ContactFlowEvent"


def test_transform_json_prints_the_summary_on_stdout(tmp_path: Path) -> None:
    done = run_cli(
        "transform",
        "--input",
        "firehose/data/example-ctrs.jsonl",
        "--output",
        str(tmp_path / "o.csv"),
        "--json",
    )
    summary = json.loads(done.stdout)
    assert set(summary) == {"lines", "outcomes", "not_billable"}
    assert "\x1b" not in done.stderr


def test_a_sql_parse_error_prints_no_ansi_codes_when_piped(tmp_path: Path) -> None:
    (tmp_path / "billing_rows").mkdir()
    done = run_cli("query", "SELECT FROM WHERE (", "--lake", str(tmp_path))
    assert done.returncode == 2
    assert "cannot parse" in done.stderr
    assert "\x1b" not in done.stderr
