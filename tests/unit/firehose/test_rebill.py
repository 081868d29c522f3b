"""``ctr-billing rebill`` (DESIGN §7) without AWS: which raw objects a day reads, the raw→core→settlement
path against the stream's lake→settlement path, the corrections file, and the errors a user meets."""

from __future__ import annotations

import copy
import gzip
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from firehose.cli.main import main
from firehose.offline.lake import LocalLake
from firehose.offline.rebill.archive import (
    ArrivalWindow,
    LocalArchive,
    RebillError,
    arrival_hour,
    list_objects,
    open_archive,
    select_objects,
)
from firehose.offline.rebill.corrections import Correction, corrections, is_settled_prefix
from firehose.offline.rebill.run import LakeWriter, StreamingEngine, arrow_table, lake_row, rebill, split
from firehose.runtime.parquet import ParquetConverter
from lookup.directory import DirectoryEntry
from tests.support.ctr_factory import billable_ctr, voicemail_ctr
from tests.support.lake_samples import LakeSample, parse_ts
from transform.core.batch import PendingContact
from transform.core.columns import arrow_schema
from transform.core.rows import json_row
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings
from transform.settlement.export import settle
from transform.stages.enrichment import DirectoryEnrichment

NOW = datetime(2026, 11, 9, 6, 0, tzinfo=UTC)
PHONE = "+12025550143"
CONTACT_COLUMNS = (
    "contact_id,call_type,initiation_timestamp,duration_seconds,patient_phone,provider_extension"
)


# --- helpers -------------------------------------------------------------------------------------------


def write_archive(root: Path, objects: Mapping[str, Sequence[bytes | dict[str, Any]]]) -> Path:
    """A raw archive folder as the demo leaves it: ``root/ctr/<key>``, each object GZIP JSON lines."""
    for key, lines in objects.items():
        path = root / "ctr" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        body = b"".join(
            (line if isinstance(line, bytes) else json.dumps(line, separators=(",", ":")).encode()) + b"\n"
            for line in lines
        )
        path.write_bytes(gzip.compress(body))
    return root


def archive_of(root: Path, deliveries: Iterable[dict[str, Any]], per_object: int = 5) -> Path:
    """The deliveries as the raw stream archives them: keyed by the hour they arrived (a minute after
    their LastUpdateTimestamp), a few records per object, in delivery order."""
    by_hour: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ctr in deliveries:
        by_hour[f"{arrival(ctr):%Y/%m/%d/%H}"].append(ctr)
    objects: dict[str, list[bytes | dict[str, Any]]] = {}
    for hour, ctrs in sorted(by_hour.items()):
        for number, start in enumerate(range(0, len(ctrs), per_object)):
            objects[f"{hour}/ctr-billing-raw-1-{hour.replace('/', '-')}-{number:04d}.gz"] = list(
                ctrs[start : start + per_object]
            )
    return write_archive(root, objects)


def arrival(ctr: dict[str, Any]) -> datetime:
    return parse_ts(ctr["LastUpdateTimestamp"]) + timedelta(minutes=1)


def settings_for(**environ: str) -> TransformSettings:
    return TransformSettings.from_environ(environ)


def export_csv(lake: Path, day: date, settings: TransformSettings) -> bytes:
    """What ``ctr-billing export`` settles from the stream's lake."""
    with LocalLake(lake) as local:
        return settle(local, day, settings, NOW).csv


def lines_of(body: bytes) -> list[str]:
    return body.decode().splitlines()


# --- the arrival window --------------------------------------------------------------------------------


def test_a_day_reads_the_objects_that_arrived_from_the_day_before_through_window_days_after() -> None:
    # GIVEN keys around the window of 2026-11-02 with the default three days
    window = ArrivalWindow.for_day(date(2026, 11, 2), 3)
    listed = [
        ("2026/10/31/23/before.gz", 10),
        ("2026/11/05/23/last-hour.gz", 10),
        ("2026/11/01/00/first-hour.gz", 10),
        ("2026/11/06/00/after.gz", 10),
        ("2026/11/02/13/b.gz", 10),
        ("2026/11/02/13/a.gz", 10),
        ("2026/11/03/12/.partial.gz", 10),  # a hidden file (an upload in progress)
        ("2026/11/02/7/short-hour.gz", 10),
        ("2026/13/02/07/no-such-month.gz", 10),
        ("2026/11/02/13/nested/deeper.gz", 10),
    ]
    # WHEN the objects are selected
    selected = select_objects(listed, window)
    # THEN only arrival hours from 11-01 00h through 11-05 23h (UTC) are read, in arrival then key order
    assert [item.key for item in selected] == [
        "2026/11/01/00/first-hour.gz",
        "2026/11/02/13/a.gz",
        "2026/11/02/13/b.gz",
        "2026/11/05/23/last-hour.gz",
    ]
    assert selected[0].arrived == datetime(2026, 11, 1, 0, tzinfo=UTC)
    assert (window.start, window.end) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 6, tzinfo=UTC),
    )
    assert window.days == [date(2026, 11, day) for day in range(1, 6)]


def test_window_days_zero_reads_through_the_end_of_the_day_itself() -> None:
    window = ArrivalWindow.for_day(date(2026, 11, 2), 0)
    keys = [("2026/11/02/23/in.gz", 1), ("2026/11/03/00/out.gz", 1), ("2026/11/01/00/in.gz", 1)]
    assert [item.key for item in select_objects(keys, window)] == [
        "2026/11/01/00/in.gz",
        "2026/11/02/23/in.gz",
    ]


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(RebillError, match="--window-days"):
        ArrivalWindow.for_day(date(2026, 11, 2), -1)


@pytest.mark.parametrize(
    ("key", "hour"),
    [
        ("2026/11/02/13/x.gz", datetime(2026, 11, 2, 13, tzinfo=UTC)),
        ("2026/02/29/00/x.gz", None),  # not a date
        ("2026/11/02/24/x.gz", None),
        ("errors/processing-failed/2026/11/02/x", None),  # the raw bucket's error output
        ("2026/11/02/13/_temporary", None),
    ],
)
def test_arrival_hour_is_read_from_the_key(key: str, hour: datetime | None) -> None:
    assert arrival_hour(key) == hour


def test_a_local_archive_is_the_demo_s_raw_folder_or_its_ctr_folder(tmp_path: Path) -> None:
    # GIVEN a demo-shaped raw folder with one object in the window and the error output beside ctr/
    raw = write_archive(tmp_path / "raw", {"2026/11/02/13/one.gz": [billable_ctr()]})
    (raw / "errors" / "processing-failed" / "2026" / "11" / "02").mkdir(parents=True)
    window = ArrivalWindow.for_day(date(2026, 11, 2))
    # WHEN it is opened as DIR/raw or as DIR/raw/ctr THEN the same object is listed, relative to ctr/
    for given in (raw, raw / "ctr"):
        archive = open_archive(str(given))
        assert archive == LocalArchive(raw / "ctr")
        assert [item.key for item in list_objects(archive, window)] == ["2026/11/02/13/one.gz"]


def test_split_keeps_objects_in_order_in_runs_of_about_equal_size() -> None:
    window = ArrivalWindow.for_day(date(2026, 11, 2))
    objects = select_objects([(f"2026/11/02/{hour:02d}/o.gz", 10) for hour in range(12)], window)
    groups = split(objects, 4)
    assert [len(group) for group in groups] == [3, 3, 3, 3]
    assert [item for group in groups for item in group] == objects
    assert split(objects, 1) == [objects]


# --- the raw -> core -> settlement path agrees with the stream's lake -----------------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
@pytest.mark.parametrize("day", [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)])
def test_rebilling_the_raw_copies_of_a_lake_settles_byte_identical_to_the_export(
    sample: LakeSample, tmp_path: Path, zone: str, day: date
) -> None:
    # GIVEN the sample lake (DST days, republished versions with changed durations and extensions,
    # identical redeliveries, a formula-looking extension) and a raw archive of the same deliveries
    raw = archive_of(tmp_path / "raw", sample.deliveries)
    settings = settings_for(BILLING_TIMEZONE=zone, CSV_COLUMNS=CONTACT_COLUMNS + ",last_update_timestamp")
    # WHEN the day is rebilled from the archive
    result = rebill(open_archive(str(raw)), day, settings, NOW)
    # THEN the file is the export's, byte for byte, and every delivery that arrived in the window was read
    assert result.settlement.csv == export_csv(sample.root, day, settings)
    assert result.settlement.rows > 0
    arrived = sum(1 for ctr in sample.deliveries if arrival(ctr).date() >= day - timedelta(days=1))
    assert result.counts.lines == arrived
    assert result.counts.outcomes == {"BillableContact": arrived}
    assert result.counts.rows + result.counts.other_days == arrived


def test_only_the_rows_of_the_utc_days_the_billing_day_touches_are_written(
    sample: LakeSample, tmp_path: Path
) -> None:
    # GIVEN the sample's three UTC days of contacts
    raw = archive_of(tmp_path / "raw", sample.deliveries)
    per_utc_day: dict[date, int] = defaultdict(int)
    for ctr in sample.deliveries:
        per_utc_day[parse_ts(ctr["InitiationTimestamp"]).date()] += 1
    # WHEN 11-02 is rebilled in UTC, then in New York (whose 11-02 reaches into 11-03 UTC)
    utc = rebill(open_archive(str(raw)), date(2026, 11, 2), TransformSettings(), NOW)
    new_york = rebill(
        open_archive(str(raw)), date(2026, 11, 2), settings_for(BILLING_TIMEZONE="America/New_York"), NOW
    )
    # THEN the lake held the versions of the UTC days the window touches, nothing else
    assert utc.counts.rows == per_utc_day[date(2026, 11, 2)]
    assert new_york.counts.rows == per_utc_day[date(2026, 11, 2)] + per_utc_day[date(2026, 11, 3)]
    assert utc.counts.other_days == len(sample.deliveries) - utc.counts.rows


def test_a_bad_line_costs_that_line_counted_never_the_run(tmp_path: Path) -> None:
    # GIVEN one object with a billable CTR between lines the Lambda would fail or drop
    null_id = billable_ctr()
    null_id["ContactId"] = None
    raw = write_archive(
        tmp_path / "raw",
        {
            "2026/11/02/15/mixed.gz": [
                b"not json " + PHONE.encode(),
                b"\xff\xfe" + PHONE.encode(),
                billable_ctr(contact_id="kept", phone=PHONE),
                b"   ",
                null_id,
                {"EventType": "HEART_BEAT"},
                voicemail_ctr(),
                b"[1, 2]",
            ]
        },
    )
    # WHEN the day is rebilled
    result = rebill(open_archive(str(raw)), date(2026, 11, 2), TransformSettings(), NOW)
    # THEN the billable contact is billed and each other line has the Lambda's outcome
    assert lines_of(result.settlement.csv)[1:] == ["INBOUND,2026-11-02T14:13:58Z,1011,+12025550143,4417,60"]
    assert result.counts.lines == 8
    assert result.counts.outcomes == {
        "MalformedRecord": 3,
        "BillableContact": 1,
        "InvalidContactRecord": 1,
        "NotAContactRecord": 1,
        "NotBillable": 1,
    }
    assert result.counts.not_billable == {"NotConnectedToAgent": 1}
    # and the failures name the object, the line and the problem, never the content
    assert result.counts.failures == [
        ("2026/11/02/15/mixed.gz", 1, "data is not JSON"),
        ("2026/11/02/15/mixed.gz", 2, "data is not UTF-8"),
        ("2026/11/02/15/mixed.gz", 5, "ContactId is not a non-empty string"),
        ("2026/11/02/15/mixed.gz", 8, "data is not a JSON object"),
    ]
    assert PHONE not in repr(result.counts.as_dict())


def test_the_directory_stage_fills_extensions_on_chunks_of_billable_contacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 1,200 billable contacts without an extension attribute and a directory knowing their agent
    ctrs = [
        billable_ctr(contact_id=f"c{number:04d}", extension=None, agent_id="agent-7")
        for number in range(1200)
    ]
    raw = write_archive(tmp_path / "raw", {"2026/11/02/15/o.gz": ctrs})
    calls: list[int] = []

    class Directory:
        def entries_for_agents(self, agent_ids: Sequence[str]) -> dict[str, DirectoryEntry]:
            calls.append(len(agent_ids))
            return {"agent-7": DirectoryEntry("agent-7", "0417", "dr.okafor")}

    chunks: list[int] = []

    def stage(contacts: Sequence[PendingContact]) -> None:
        chunks.append(len(contacts))
        DirectoryEnrichment(Directory())(contacts)

    monkeypatch.setattr("firehose.offline.rebill.run.batch_stages", lambda settings: (stage,))
    settings = settings_for(DIRECTORY_TABLE="providers", CSV_COLUMNS="contact_id,provider_extension")
    # WHEN the day is rebilled
    result = rebill(open_archive(str(raw)), date(2026, 11, 2), settings, NOW, jobs=1)
    # THEN the stage ran on Firehose-batch-sized chunks and every row has the directory's extension
    assert chunks == [500, 500, 200]
    assert calls == [1, 1, 1]
    rows = lines_of(result.settlement.csv)[1:]
    assert len(rows) == 1200
    assert {row.split(",")[1] for row in rows} == {"0417"}


def test_a_process_pool_writes_the_same_file_as_one_process(sample: LakeSample, tmp_path: Path) -> None:
    # GIVEN the sample's deliveries in many small objects
    raw = archive_of(tmp_path / "raw", sample.deliveries, per_object=2)
    settings = settings_for(CSV_COLUMNS=CONTACT_COLUMNS, BILLING_TIMEZONE="America/New_York")
    # WHEN the day is rebilled by one process and by two
    alone = rebill(open_archive(str(raw)), date(2026, 11, 2), settings, NOW, jobs=1)
    pooled = rebill(open_archive(str(raw)), date(2026, 11, 2), settings, NOW, jobs=2)
    # THEN the files and the counts are the same
    assert pooled.jobs == 2
    assert pooled.settlement.csv == alone.settlement.csv
    assert pooled.counts.as_dict() == alone.counts.as_dict()


def test_lake_rows_convert_to_parquet_as_the_lake_stream_s_format_conversion_does() -> None:
    # GIVEN contacts whose JSON rows hold nulls, timestamps with offsets and fractions, and plain text
    ctrs = [
        billable_ctr(contact_id=f"c{number}", hold_seconds=None, number_of_holds=None) for number in range(3)
    ]
    ctrs[1]["InitiationTimestamp"] = "2026-11-02T09:13:58.734-05:00"
    ctrs[2]["LastUpdateTimestamp"] = "garbage"
    contacts = [classify(ctr, TransformSettings()) for ctr in ctrs]
    assert all(isinstance(contact, BillableContact) for contact in contacts)
    # WHEN the rows become Arrow here and through the runtime's ParquetConverter (JSON text -> Glue types)
    ours = arrow_table([lake_row(contact) for contact in contacts])  # type: ignore[arg-type]
    converted = ParquetConverter(arrow_schema()).convert([json_row(contact) for contact in contacts])  # type: ignore[arg-type]
    assert converted.parquet is not None and not converted.failures
    # THEN both tables are equal, schema and values
    assert ours.equals(pq.read_table(io.BytesIO(converted.parquet)))


def test_rows_parquet_refuses_cost_those_rows_only(tmp_path: Path) -> None:
    # GIVEN a row with a lone surrogate (which no parsed CTR holds, but a bug could make) among good ones
    contact = classify(billable_ctr(), TransformSettings())
    assert isinstance(contact, BillableContact)
    broken = copy.copy(contact)
    broken.provider_extension = "\ud800"
    writer = LakeWriter(tmp_path, 0)
    for line, item in enumerate((contact, broken, contact), start=1):
        writer.write(item, ("2026", "11", "02"), ("2026/11/02/15/o.gz", line))
    # WHEN the writer closes THEN the good rows are written and the bad one's origin is told, not its value
    rows, refused = writer.close()
    assert rows == 2
    assert refused == [("2026/11/02/15/o.gz", 2)]
    assert (
        pq.read_table(
            tmp_path / "billing_rows" / "year=2026" / "month=11" / "day=02" / "part-000000.parquet"
        ).num_rows
        == 2
    )


@pytest.mark.parametrize("columns", [CONTACT_COLUMNS, "duration_seconds", "provider_extension,contact_id"])
@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_the_streaming_engine_settles_exactly_as_the_export_s_engine(
    sample: LakeSample, columns: str, zone: str
) -> None:
    # GIVEN the sample lake and the export's settings WHEN it is settled through both engines
    settings = settings_for(CSV_COLUMNS=columns, BILLING_TIMEZONE=zone)
    for day in (date(2026, 11, 1), date(2026, 11, 2)):
        with LocalLake(sample.root) as lake:
            streamed = settle(StreamingEngine(lake, settings.csv_columns), day, settings, NOW)
        # THEN the CSV and the manifest are the same bytes
        exported = export_settlement(sample.root, day, settings)
        assert (streamed.csv, streamed.manifest) == (exported.csv, exported.manifest)


def export_settlement(lake: Path, day: date, settings: TransformSettings) -> Any:
    with LocalLake(lake) as local:
        return settle(local, day, settings, NOW)


# --- corrections ---------------------------------------------------------------------------------------

HEADER = "contact_id,call_type,initiation_timestamp,duration_seconds,patient_phone,provider_extension\n"


def csv_body(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(line + "\n" for line in lines)).encode()


def test_corrections_list_added_removed_and_changed_contacts_column_by_column() -> None:
    # GIVEN a settled file and a rebilled one: c2 gone, c4 new, c1 and c3 changed, c5 the same
    settled = csv_body(
        "c1,INBOUND,2026-11-02T14:13:58Z,1616,+12025550143,4417",
        "c2,INBOUND,2026-11-02T14:20:00Z,60,+12025550144,5120",
        'c3,OUTBOUND,2026-11-02T15:00:00Z,300,+12025550145,"\'=2+5"',
        "c5,INBOUND,2026-11-02T16:00:00Z,90,,7301",
    )
    rebilled = csv_body(
        "c1,INBOUND,2026-11-02T14:13:58Z,460,+12025550143,4417",
        'c3,INBOUND,2026-11-02T15:00:00Z,300,+12025550145,"a,b"',
        "c4,OUTBOUND,2026-11-02T15:30:00Z,75,+12025550146,",
        "c5,INBOUND,2026-11-02T16:00:00Z,90,,7301",
    )
    # WHEN they are compared
    result = corrections(settled, rebilled)
    # THEN there is one line per added or removed contact and per changed cell, by contact then column
    assert list(result.lines) == [
        Correction("c1", "changed", "duration_seconds", "1616", "460"),
        Correction("c2", "removed"),
        Correction("c3", "changed", "call_type", "OUTBOUND", "INBOUND"),
        Correction("c3", "changed", "provider_extension", "'=2+5", "a,b"),
        Correction("c4", "added"),
    ]
    assert result.as_dict() == {"added": 1, "removed": 1, "changed": 2, "lines": 5}
    # and the file quotes as the settled file does (the formula guard kept, never doubled)
    assert result.csv.decode().splitlines() == [
        "contact_id,change,column,settled,rebilled",
        "c1,changed,duration_seconds,1616,460",
        "c2,removed,,,",
        "c3,changed,call_type,OUTBOUND,INBOUND",
        'c3,changed,provider_extension,\'=2+5,"a,b"',
        "c4,added,,,",
    ]


def test_identical_files_give_only_the_header() -> None:
    body = csv_body("c1,INBOUND,2026-11-02T14:13:58Z,1616,+12025550143,4417")
    result = corrections(body, body)
    assert result.csv == b"contact_id,change,column,settled,rebilled\n"
    assert result.as_dict() == {"added": 0, "removed": 0, "changed": 0, "lines": 0}


def test_a_phone_number_stays_as_the_settled_file_spells_it_and_a_formula_is_guarded() -> None:
    # GIVEN a changed phone number and a changed free-text cell that looks like a formula
    header = "contact_id,patient_phone,queue_name\n"
    settled = csv_body("c1,+12025550143,Telehealth", header=header)
    rebilled = csv_body("c1,+12025550199,@SUM(A1)", header=header)
    # WHEN compared THEN the E.164 number passes unchanged and the formula gets the guard
    assert corrections(settled, rebilled).csv.decode().splitlines()[1:] == [
        "c1,changed,patient_phone,+12025550143,+12025550199",
        "c1,changed,queue_name,Telehealth,'@SUM(A1)",
    ]


def test_a_column_only_one_file_has_reads_as_empty_in_the_other() -> None:
    # GIVEN CSV_COLUMNS gained provider_left_timestamp and lost hold_seconds since the day was settled
    settled = csv_body("c1,60,1616", header="contact_id,hold_seconds,duration_seconds\n")
    rebilled = csv_body(
        "c1,460,2026-11-02T14:21:38Z", header="contact_id,duration_seconds,provider_left_timestamp\n"
    )
    # WHEN compared THEN each column of either file is compared, in column-name order
    assert list(corrections(settled, rebilled).lines) == [
        Correction("c1", "changed", "duration_seconds", "1616", "460"),
        Correction("c1", "changed", "hold_seconds", "60", ""),
        Correction("c1", "changed", "provider_left_timestamp", "", "2026-11-02T14:21:38Z"),
    ]


def test_a_contact_settled_twice_is_paired_row_by_row() -> None:
    # GIVEN a contact whose versions straddle two UTC days (one row per partition) in the settled file
    header = "contact_id,duration_seconds\n"
    settled = csv_body("c1,60", "c1,70", header=header)
    rebilled = csv_body("c1,60", header=header)
    result = corrections(settled, rebilled)
    assert list(result.lines) == [Correction("c1", "removed")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no header"),
        (b"call_type,duration_seconds\nINBOUND,60\n", "no contact_id column"),
        (b"contact_id,duration_seconds\nc1\n", "line 2 has 1 cells"),
        (b"contact_id\n\xff\n", "not UTF-8"),
    ],
)
def test_a_settled_file_that_cannot_be_matched_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(RebillError, match=message):
        corrections(body, csv_body("c1,INBOUND,2026-11-02T14:13:58Z,1616,+12025550143,4417"))


# --- the command and its errors ------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CSV_COLUMNS",
        "BILLING_TIMEZONE",
        "MIN_BILLABLE_SECONDS",
        "DIRECTORY_TABLE",
        "LEDGER_TABLE",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def raw_day(tmp_path: Path) -> Path:
    """A raw archive with two contacts of 2026-11-02, one short."""
    return write_archive(
        tmp_path / "raw",
        {
            "2026/11/02/15/a.gz": [
                billable_ctr(contact_id="long", talk_seconds=600, phone=PHONE),
                billable_ctr(
                    contact_id="short",
                    talk_seconds=20,
                    initiated=datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
                ),
            ]
        },
    )


def rebill_cli(*arguments: str) -> int:
    return main(["rebill", *arguments])


def test_the_command_writes_the_day_s_file_manifest_and_corrections(
    raw_day: Path,
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the day rebilled once with contact_id among the columns (what was "settled")
    monkeypatch.setenv("CSV_COLUMNS", "contact_id,duration_seconds")
    assert rebill_cli("--date", "2026-11-02", "--raw", str(raw_day), "--to", str(tmp_path / "first")) == 0
    capsys.readouterr()
    # WHEN it is rebilled with a 60-second minimum against that file, with a JSON summary
    monkeypatch.setenv("MIN_BILLABLE_SECONDS", "60")
    status = rebill_cli(
        "--date", "2026-11-02", "--raw", str(raw_day), "--to", str(tmp_path / "review"),
        "--settled", str(tmp_path / "first"), "--json",
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    # THEN the short call is removed, the files are in --to, and the summary says so
    assert status == 0
    review = tmp_path / "review"
    assert (review / "corrections-2026-11-02.csv").read_text() == (
        "contact_id,change,column,settled,rebilled\nshort,removed,,,\n"
    )
    assert (review / "billing-2026-11-02.csv").read_text() == "contact_id,duration_seconds\nlong,600\n"
    manifest = json.loads((review / "billing-2026-11-02.manifest.json").read_text())
    assert manifest["rows"] == 1 and manifest["columns"] == ["contact_id", "duration_seconds"]
    assert summary["corrections"] == {
        "added": 0,
        "removed": 1,
        "changed": 0,
        "lines": 1,
        "settled": str(tmp_path / "first" / "billing-2026-11-02.csv"),
        "file": str(review / "corrections-2026-11-02.csv"),
    }
    assert summary["lines"] == 2 and summary["objects"] == 1
    assert summary["outcomes"] == {"BillableContact": 1, "NotBillable": 1}
    assert summary["not_billable"] == {"BelowMinimumDuration": 1}
    assert summary["billing"]["rows"] == 1


def test_the_text_summary_names_the_counts_and_the_files(
    raw_day: Path, tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rebill_cli("--date", "2026-11-02", "--raw", str(raw_day), "--to", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert "from 1 raw objects" in out
    assert "lines read: 2" in out
    assert "BillableContact: 2" in out
    assert f"{tmp_path / 'out' / 'billing-2026-11-02.csv'}: 2 rows" in out
    assert PHONE not in out


@pytest.mark.parametrize(
    ("arguments", "environ", "message"),
    [
        (["--date", "2026-13-02"], {}, "--date must be YYYY-MM-DD, a calendar day, got '2026-13-02'"),
        (["--date", "2026-11-02", "--raw", "{missing}"], {}, "no raw-archive folder at"),
        (
            ["--date", "2026-10-01"],
            {},
            "no raw-archive objects arrived from 2026-09-30 00h to 2026-10-04 23h UTC",
        ),
        (
            ["--date", "2026-11-02"],
            {"MIN_BILLABLE_SECONDS": "soon"},
            "MIN_BILLABLE_SECONDS must be a whole number",
        ),
        (["--date", "2026-11-02", "--settled", "{tmp}/settled"], {}, "--settled matches rows by contact_id"),
        (
            ["--date", "2026-11-02", "--settled", "{tmp}/nothing-here"],
            {"CSV_COLUMNS": "contact_id"},
            "no settled file billing-2026-11-02.csv at",
        ),
        (["--date", "2026-11-02", "--to", "{tmp}/settled/"], {}, "is a settled/ prefix"),
        (["--date", "2026-11-02", "--to", "s3://vendor/settled"], {}, "is a settled/ prefix"),
        (
            ["--date", "2026-11-02", "--to", "{tmp}/s", "--settled", "{tmp}/s"],
            {"CSV_COLUMNS": "contact_id"},
            "--to must not be the --settled location",
        ),
        (["--date", "2026-11-02", "--jobs", "0"], {}, "--jobs must be at least 1"),
    ],
)
def test_errors_are_one_clear_line_without_content(
    raw_day: Path,
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    environ: dict[str, str],
    message: str,
) -> None:
    # GIVEN a raw archive, a destination and the options of the case
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    defaults = {"--raw": str(raw_day), "--to": str(tmp_path / "out")}
    given = [part.format(tmp=tmp_path, missing=tmp_path / "missing") for part in arguments]
    for option, value in defaults.items():
        if option not in given:
            given += [option, value]
    # WHEN the command runs THEN it fails with status 2 and one line naming the problem, writing nothing
    assert rebill_cli(*given) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_unreadable_object_stops_the_run_naming_it(
    raw_day: Path, tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an object that is not GZIP (then one cut short) beside a good one
    for key, body in (
        ("16/plain.gz", PHONE.encode() + b"\n"),
        ("17/cut.gz", gzip.compress(json.dumps(billable_ctr()).encode())[:300]),
    ):
        path = raw_day / "ctr" / "2026" / "11" / "02" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        # WHEN the day is rebilled THEN the run stops with the object's key and nothing is written
        assert rebill_cli("--date", "2026-11-02", "--raw", str(raw_day), "--to", str(tmp_path / "out")) == 2
        err = capsys.readouterr().err
        assert f"cannot read raw object {path} as GZIP JSON lines" in err
        assert PHONE not in err
        assert not (tmp_path / "out").exists()
        path.unlink()


@pytest.mark.parametrize(
    ("to", "settled"),
    [
        ("s3://vendor/settled/", True),
        ("s3://vendor/settled", True),
        ("out/settled", True),
        ("/x/settled-review", False),
        ("s3://vendor/rebill/", False),
        ("settled", True),
    ],
)
def test_a_settled_prefix_is_recognised(to: str, settled: bool) -> None:
    assert is_settled_prefix(to) is settled


def test_a_settled_file_without_contact_id_is_refused_before_anything_is_read_or_written(
    raw_day: Path,
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a day settled before contact_id was among the columns
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "billing-2026-11-02.csv").write_text("call_type,duration_seconds\nINBOUND,600\n")
    monkeypatch.setenv("CSV_COLUMNS", "contact_id,duration_seconds")
    # WHEN the day is rebilled against it THEN it is refused, naming the columns it has, and nothing is written
    status = rebill_cli(
        "--date", "2026-11-02", "--raw", str(raw_day), "--to", str(tmp_path / "out"), "--settled", str(tmp_path / "old")
    )  # fmt: skip
    assert status == 2
    assert (
        "the settled file has no contact_id column (its columns: call_type, duration_seconds)"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_an_unreadable_object_read_by_a_pool_worker_stops_the_run_naming_it(tmp_path: Path) -> None:
    # GIVEN eight good objects and a truncated one among them
    objects: dict[str, list[bytes | dict[str, Any]]] = {
        f"2026/11/02/{hour:02d}/o.gz": [billable_ctr(contact_id=f"c{hour}")] for hour in range(8)
    }
    raw = write_archive(tmp_path / "raw", objects)
    broken = raw / "ctr" / "2026" / "11" / "02" / "03" / "o.gz"
    broken.write_bytes(broken.read_bytes()[:-12])
    # WHEN the day is rebilled by two processes THEN the worker's error reaches the caller as it is
    with pytest.raises(RebillError, match=f"cannot read raw object {broken} as GZIP JSON lines"):
        rebill(open_archive(str(raw)), date(2026, 11, 2), TransformSettings(), NOW, jobs=2)
