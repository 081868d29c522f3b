"""``ctr-billing rebill`` against the embedded AWS (a moto server over HTTP): an s3:// raw archive, an s3://
settled file and destination, and the provider directory in DynamoDB for the enrichment stage."""

from __future__ import annotations

import gzip
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from firehose.cli.main import main
from firehose.offline.directory_files import seed_directory
from firehose.offline.lake import LocalLake
from tests.support.ctr_factory import billable_ctr
from tests.support.lake_samples import LakeSample, build_lake, parse_ts
from tests.support.lookup_fixtures import directory_table_definition
from tests.support.moto_server import REGION
from transform.core.settings import TransformSettings
from transform.settlement.export import settle

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
DAY = "2026-11-02"
COLUMNS = "contact_id,call_type,initiation_timestamp,duration_seconds,patient_phone,provider_extension"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> LakeSample:
    return build_lake(tmp_path_factory.mktemp("rebill") / "lake")


@pytest.fixture
def s3(aws_env: str) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=aws_env)


def new_bucket(s3: Any, kind: str) -> str:
    # moto's backends are shared by every server of the test session: a name of its own.
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def raw_objects(deliveries: Iterable[dict[str, Any]]) -> dict[str, bytes]:
    """The raw stream's objects: keyed by arrival hour (a minute after each CTR's last update)."""
    by_hour: dict[str, list[bytes]] = defaultdict(list)
    for ctr in deliveries:
        arrived = parse_ts(ctr["LastUpdateTimestamp"]) + timedelta(minutes=1)
        by_hour[f"{arrived:%Y/%m/%d/%H}"].append(json.dumps(ctr, separators=(",", ":")).encode() + b"\n")
    return {
        f"ctr/{hour}/ctr-billing-raw-1-{hour.replace('/', '-')}-00-00-{uuid.uuid4()}.gz": gzip.compress(
            b"".join(lines)
        )
        for hour, lines in sorted(by_hour.items())
    }


def upload_raw(s3: Any, bucket: str, deliveries: Iterable[dict[str, Any]]) -> dict[str, bytes]:
    """The raw bucket as Firehose leaves it: data under ctr/, error output beside it."""
    objects = raw_objects(deliveries)
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="errors/processing-failed/2026/11/02/x.gz", Body=b"not gzip")
    return objects


def local_raw(folder: Path, objects: dict[str, bytes]) -> Path:
    for key, body in objects.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return folder


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def read(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def settled_csv(sample: LakeSample, day: date, environ: dict[str, str]) -> bytes:
    with LocalLake(sample.root) as lake:
        return settle(lake, day, TransformSettings.from_environ(environ), NOW).csv


def test_rebill_reads_an_s3_raw_archive_and_writes_the_day_and_its_corrections_to_s3(
    sample: LakeSample,
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the sample's deliveries in a raw bucket, and the day settled (from the stream's lake) in the
    # vendor bucket's settled/ prefix with contact_id among the columns
    raw, vendor = new_bucket(s3, "raw"), new_bucket(s3, "vendor")
    objects = upload_raw(s3, raw, sample.deliveries)
    settled = settled_csv(sample, date(2026, 11, 2), {"CSV_COLUMNS": COLUMNS})
    s3.put_object(Bucket=vendor, Key=f"settled/billing-{DAY}.csv", Body=settled)
    monkeypatch.setenv("CSV_COLUMNS", COLUMNS)
    monkeypatch.setenv("MIN_BILLABLE_SECONDS", "600")
    # WHEN the day is rebilled with a ten-minute minimum, S3 to S3
    status = main(
        [
            "rebill",
            "--date",
            DAY,
            "--raw",
            f"s3://{raw}",
            "--to",
            f"s3://{vendor}/rebill/{DAY}/",
            "--settled",
            f"s3://{vendor}/settled/",
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    # THEN the day's file, manifest and corrections are under the destination; settled/ is untouched
    assert status == 0
    assert keys(s3, vendor) == [
        f"rebill/{DAY}/billing-{DAY}.csv",
        f"rebill/{DAY}/billing-{DAY}.manifest.json",
        f"rebill/{DAY}/corrections-{DAY}.csv",
        f"settled/billing-{DAY}.csv",
    ]
    assert read(s3, vendor, f"settled/billing-{DAY}.csv") == settled
    # and the file is what a rebill of the same objects from a folder gives
    body = read(s3, vendor, f"rebill/{DAY}/billing-{DAY}.csv")
    folder = local_raw(tmp_path / "raw", objects)
    assert main(["rebill", "--date", DAY, "--raw", str(folder), "--to", str(tmp_path / "local")]) == 0
    assert body == (tmp_path / "local" / f"billing-{DAY}.csv").read_bytes()
    manifest = json.loads(read(s3, vendor, f"rebill/{DAY}/billing-{DAY}.manifest.json"))
    assert manifest["rows"] == summary["billing"]["rows"] == body.count(b"\n") - 1
    # and the corrections remove exactly the settled calls shorter than ten minutes
    short = sorted(
        line.split(",")[0] for line in settled.decode().splitlines()[1:] if int(line.split(",")[3]) < 600
    )
    assert short
    corrections = read(s3, vendor, f"rebill/{DAY}/corrections-{DAY}.csv").decode().splitlines()
    assert corrections == ["contact_id,change,column,settled,rebilled", *(f"{c},removed,,," for c in short)]
    assert summary["corrections"]["removed"] == len(short)
    assert summary["corrections"]["file"] == f"s3://{vendor}/rebill/{DAY}/corrections-{DAY}.csv"
    assert summary["objects"] == len(objects)


def test_an_s3_archive_read_by_a_process_pool_gives_the_same_file(
    sample: LakeSample, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the raw bucket, named with its ctr/ prefix
    raw, vendor = new_bucket(s3, "raw"), new_bucket(s3, "vendor")
    upload_raw(s3, raw, sample.deliveries)
    monkeypatch.setenv("BILLING_TIMEZONE", "America/New_York")
    # WHEN the day is rebilled by one process and by two (each worker its own S3 client)
    for jobs in ("1", "2"):
        assert (
            main(
                [
                    "rebill",
                    "--date",
                    DAY,
                    "--raw",
                    f"s3://{raw}/ctr/",
                    "--to",
                    f"s3://{vendor}/j{jobs}/",
                    "--jobs",
                    jobs,
                ]
            )
            == 0
        )
    capsys.readouterr()
    # THEN both files are the same, and the export's of the stream's lake
    one, two = (read(s3, vendor, f"j{jobs}/billing-{DAY}.csv") for jobs in ("1", "2"))
    assert one == two == settled_csv(sample, date(2026, 11, 2), {"BILLING_TIMEZONE": "America/New_York"})


def test_directory_enrichment_fills_extensions_from_dynamodb(
    aws_env: str, s3: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the provider directory in DynamoDB and contacts whose CTRs carry no extension attribute
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env)
    table = f"providers-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(TableName=table, **directory_table_definition())
    seed_directory(dynamodb, table, [{"agentId": "agent-a", "extension": "0417", "username": "dr.okafor"}])
    raw, vendor = new_bucket(s3, "raw"), new_bucket(s3, "vendor")
    ctrs = [
        billable_ctr(contact_id="from-directory", extension=None, agent_id="agent-a"),
        billable_ctr(contact_id="own-attribute", extension="5120", agent_id="agent-a"),
        billable_ctr(contact_id="unknown-agent", extension=None, agent_id="agent-z"),
    ]
    upload_raw(s3, raw, ctrs)
    monkeypatch.setenv("DIRECTORY_TABLE", table)
    monkeypatch.setenv("CSV_COLUMNS", "contact_id,provider_extension")
    # WHEN the day is rebilled
    assert main(["rebill", "--date", DAY, "--raw", f"s3://{raw}", "--to", f"s3://{vendor}/review/"]) == 0
    capsys.readouterr()
    # THEN the directory's extension fills only the contact without one, as the Lambda's stage does
    assert read(s3, vendor, f"review/billing-{DAY}.csv").decode().splitlines() == [
        "contact_id,provider_extension",
        "from-directory,0417",
        "own-attribute,5120",
        "unknown-agent,",
    ]


def test_a_missing_bucket_is_a_clear_error(
    aws_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["rebill", "--date", DAY, "--raw", "s3://no-such-raw-bucket", "--to", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "no-such-raw-bucket" in err and "NoSuchBucket" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_bucket_without_objects_in_the_window_says_where_it_looked(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = new_bucket(s3, "raw")
    s3.put_object(Bucket=raw, Key="ctr/2026/10/01/12/old.gz", Body=gzip.compress(b"{}\n"))
    assert main(["rebill", "--date", DAY, "--raw", f"s3://{raw}", "--to", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (
        f"no raw-archive objects arrived from 2026-11-01 00h to 2026-11-05 23h UTC under s3://{raw}/ctr/"
        in err
    )


def test_a_missing_settled_file_on_s3_is_named(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor = new_bucket(s3, "vendor")
    monkeypatch.setenv("CSV_COLUMNS", "contact_id")
    status = main(
        [
            "rebill",
            "--date",
            DAY,
            "--raw",
            str(tmp_path),
            "--to",
            str(tmp_path / "o"),
            "--settled",
            f"s3://{vendor}/settled/",
        ]
    )
    assert status == 2
    assert f"no settled file s3://{vendor}/settled/billing-{DAY}.csv" in capsys.readouterr().err
