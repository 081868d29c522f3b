"""``ctr-billing demo`` as a user runs it: the whole pipeline on simulated traffic, checked against the
simulator's truth, and on a file of records put unchanged."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.demo_runner import run_demo

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "firehose" / "data" / "example-ctrs.jsonl"
PHONE = re.compile(rb"\+1\d{10}")


def test_demo_on_simulated_traffic_delivers_what_the_simulator_predicts(tmp_path: Path) -> None:
    # GIVEN an output folder WHEN the demo runs on 400 simulated contacts
    out = tmp_path / "demo"
    result = run_demo("--contacts", "400", "--seed", "11", "--out", str(out), timeout=300)

    # THEN it succeeds and its summary matches the simulator's truth
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_put"] == summary["simulation"]["records"]
    assert summary["raw_records"] == summary["records_put"]
    # and every raw object version was Object-Locked by the stack as it arrived
    assert summary["raw_versions_locked"] == summary["raw_versions"] > 0
    assert summary["vendor_rows"] == summary["billable_expected"] > 0
    assert summary["lake_rows"] == summary["lake_rows_expected"] == summary["simulation"]["billable_records"]
    # and the rules, not only the counts: the provider time billed and the calls billed as outbound
    assert summary["vendor_seconds"] == summary["vendor_seconds_expected"] > 0
    assert summary["vendor_outbound_rows"] == summary["vendor_outbound_expected"] > 0
    assert summary["lake_seconds"] == summary["lake_seconds_expected"] > 0
    assert summary["processing_failed"] == 0
    assert summary["records_per_second"] > 0
    # and the memory of the pipeline, its Lambda workers and the embedded AWS (a process of its own)
    # is reported apart
    memory = summary["peak_rss_mb"]
    assert set(memory) == {"pipeline_process_mb", "lambda_worker_mb", "embedded_aws_mb"}
    assert all(value > 0 for value in memory.values())
    assert set(summary["streams"]) == {"RawDeliveryStream", "VendorDeliveryStream", "LakeDeliveryStream"}

    # and the folders hold what the summary counted, read the way a user would
    vendor_lines = [
        line
        for path in (out / "vendor" / "billing").rglob("*.csv")
        for line in path.read_bytes().splitlines()
    ]
    assert len(vendor_lines) == summary["vendor_rows"]
    raw_lines = [
        line
        for path in (out / "raw" / "ctr").rglob("*.gz")
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    assert len(raw_lines) == summary["records_put"]
    lake_rows = sum(
        pq.read_table(path).num_rows for path in (out / "lake" / "billing_rows").rglob("*.parquet")
    )
    assert lake_rows == summary["lake_rows"]
    assert "MISMATCH" not in result.stdout and "vendor CSV rows" in result.stdout
    # and the kinds of contact each rule is about are generated, billed or not as the rules say, and shown
    kinds = summary["simulation"]["kinds"]
    new_kinds = ("external_transfer", "conference", "api_chat", "in_app_call", "api_outbound")
    assert all(kinds[kind]["contacts"] > 0 for kind in new_kinds)
    assert kinds["api_chat"]["billable"] == 0
    external = kinds["external_transfer"]
    assert external["billable"] == external["contacts"]
    assert external["billable_seconds"] < external["contact_seconds_of_billable"]
    assert all(re.search(rf"^{kind} +{kinds[kind]['contacts']} ", result.stdout, re.M) for kind in new_kinds)

    # and no phone number reached the transform logs or the output's object keys
    for log in (out / "logs").glob("*.log"):
        assert not PHONE.search(log.read_bytes()), log.name
    assert not any(PHONE.search(str(path).encode()) for path in out.rglob("*"))


def test_demo_with_input_puts_each_line_unchanged(tmp_path: Path) -> None:
    # GIVEN a file of CTR lines and one line that is not JSON
    source = tmp_path / "input.jsonl"
    lines = EXAMPLES.read_bytes().splitlines()
    source.write_bytes(b"\n".join([*lines, b"not json at all"]) + b"\n")
    out = tmp_path / "demo"

    # WHEN the demo runs on it
    result = run_demo("--input", str(source), "--out", str(out), timeout=300)

    # THEN every line was archived byte for byte, and the bad one is a vendor processing-failed error
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records_put"] == len(lines) + 1
    archived = [
        line
        for path in (out / "raw" / "ctr").rglob("*.gz")
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    assert sorted(archived) == sorted([*lines, b"not json at all"])
    assert summary["processing_failed"] == 1
    assert list((out / "vendor" / "errors" / "processing-failed").rglob("*"))


def test_serve_runs_the_pipeline_until_interrupted(tmp_path: Path) -> None:
    import os
    import signal
    import time
    import urllib.error
    import urllib.request

    import boto3

    # GIVEN ``ctr-billing serve`` running with short buffers
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firehose.cli.main",
            "serve",
            "--state",
            str(tmp_path / "state"),
            "--buffer-interval",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    endpoint = ""
    try:
        assert process.stdout is not None
        printed: list[str] = []
        while not any(line.startswith("Ctrl-C") for line in printed):
            line = process.stdout.readline()
            assert line, "serve exited early"
            printed.append(line.strip())
        # WHEN a client configured from the printed environment puts a CTR
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in printed if line.startswith("export ")
        )
        outputs = dict(
            line.split(": ", 1)
            for line in printed
            if line.count(": ") == 1 and not line.startswith("embedded")
        )
        session = boto3.session.Session(
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            region_name=exports["AWS_DEFAULT_REGION"],
        )
        endpoint = exports["AWS_ENDPOINT_URL"]
        session.client("kinesis", endpoint_url=endpoint).put_record(
            StreamName=outputs["ContactTraceRecordsStream"],
            Data=EXAMPLES.read_bytes().splitlines()[0],
            PartitionKey="p",
        )
        # THEN the raw archive receives it while serve keeps running
        s3 = session.client("s3", endpoint_url=endpoint)
        deadline = time.monotonic() + 60
        while not s3.list_objects_v2(Bucket=outputs["ContactTraceRecordsBucket"], Prefix="ctr/").get(
            "KeyCount"
        ):
            assert time.monotonic() < deadline, "nothing delivered"
            time.sleep(0.2)
        assert process.poll() is None
    finally:
        # and Ctrl-C (to the whole process group, as a terminal sends it) drains and stops it cleanly,
        # the embedded AWS process with it
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 0
    assert endpoint
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5)  # noqa: S310 - was on 127.0.0.1
