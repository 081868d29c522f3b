"""The local lake (DuckDB over hive-partitioned Parquet) and the named queries, against a lake built from
realistic CTRs whose answers are computed independently from the CTRs themselves."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from firehose.offline.lake import LakeError, LocalLake, parquet_files
from tests.support.lake_samples import (
    FORMULA_EXTENSION,
    LakeSample,
    call_type,
    contact_duration,
    duration,
    extension,
    parse_ts,
    provider_left,
    write_lake,
)
from transform.core.columns import COLUMN_NAMES, COLUMNS, LAKE_TABLE, PARTITION_KEYS, arrow_schema
from transform.core.settings import TransformSettings
from transform.settlement.export import settle
from transform.settlement.queries import named_queries


def minutes(seconds: int) -> Decimal:
    return (Decimal(seconds) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def utc_day(ctr: dict[str, Any]) -> datetime:
    return parse_ts(ctr["InitiationTimestamp"]).astimezone(UTC)


def run_named(lake: LocalLake, name: str) -> list[dict[str, Any]]:
    return lake.query(named_queries()[name]).records()


# --- the lake's schema and reading -----------------------------------------------------------------


def test_lake_parquet_read_back_with_pyarrow_has_exactly_the_glue_schema(sample: LakeSample) -> None:
    # GIVEN the lake's Parquet objects, written as the lake delivery stream writes them
    files = parquet_files(sample.root)
    # THEN there are several objects over several day partitions, and each has the registry's schema
    assert len({path.parent for path in files}) == 3
    assert len(files) > 3
    for path in files:
        assert pq.read_schema(path).remove_metadata() == arrow_schema()


def test_duckdb_reads_every_delivered_row_with_the_glue_types(sample: LakeSample, lake: LocalLake) -> None:
    # WHEN the table is described and counted
    described = {row[0]: row[1] for row in lake.query(f"DESCRIBE {LAKE_TABLE}").rows}
    count = lake.query("SELECT count(*) FROM billing_rows").rows[0][0]
    # THEN every copy delivered is a row, and the columns are the registry's plus string partition keys
    assert count == len(sample.deliveries)
    glue_to_duckdb = {"string": "VARCHAR", "bigint": "BIGINT", "timestamp": "TIMESTAMP"}
    assert described == {
        **{column.name: glue_to_duckdb[column.type.glue_type] for column in COLUMNS},
        **dict.fromkeys(PARTITION_KEYS, "VARCHAR"),
    }


def test_a_lake_whose_path_holds_a_quote_reads_every_row(sample: LakeSample, tmp_path: Path) -> None:
    # GIVEN the sample lake copied under a folder whose name holds quotes (its paths go into DuckDB's SQL)
    copy = tmp_path / "dr o'brien's lake"
    shutil.copytree(sample.root, copy)
    # WHEN it is opened and counted
    with LocalLake(copy) as lake:
        count = lake.query("SELECT count(*) FROM billing_rows").rows[0][0]
    # THEN every delivered copy is read
    assert count == len(sample.deliveries)


def test_duckdb_rows_hold_the_ctr_values_and_their_partition(sample: LakeSample, lake: LocalLake) -> None:
    # GIVEN the first delivered CTR (a contact initiated at 03:59:30Z on 2026-11-01)
    ctr = sample.deliveries[0]
    # WHEN its row is read back
    records = lake.query(
        "SELECT * FROM billing_rows WHERE contact_id = ? ORDER BY last_update_timestamp", [ctr["ContactId"]]
    ).records()
    # THEN values are typed (UTC timestamps without zone, integers) and the partition is its initiation day
    assert len(records) == 1
    row = records[0]
    assert row["initiation_timestamp"] == datetime(2026, 11, 1, 3, 59, 30)
    assert row["duration_seconds"] == duration(ctr)
    assert row["provider_extension"] == extension(ctr)
    assert row["call_type"] == call_type(ctr)
    assert row["patient_phone"] == ctr["CustomerEndpoint"]["Address"]
    assert (row["year"], row["month"], row["day"]) == ("2026", "11", "01")


def test_latest_view_keeps_one_row_per_contact_with_its_latest_values(
    sample: LakeSample, lake: LocalLake
) -> None:
    # WHEN the latest-version view is read
    rows = {row["contact_id"]: row for row in lake.query("SELECT * FROM latest_billing_rows").records()}
    # THEN one row per contact, each the version with the greatest LastUpdateTimestamp
    latest = sample.latest_ctrs()
    assert len(rows) == len(latest) < len(sample.deliveries)
    for ctr in latest:
        row = rows[ctr["ContactId"]]
        assert row["duration_seconds"] == duration(ctr)
        assert row["provider_extension"] == extension(ctr)
        assert row["last_update_timestamp"] == parse_ts(ctr["LastUpdateTimestamp"]).replace(tzinfo=None)
    assert list(lake.query("SELECT * FROM latest_billing_rows").columns) == [*COLUMN_NAMES, *PARTITION_KEYS]


def naive_utc(moment: datetime) -> datetime:
    """A lake timestamp as DuckDB returns it: UTC without a zone (Glue ``timestamp``)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def test_rows_end_provider_time_when_the_provider_left_and_carry_the_whole_contact(
    sample: LakeSample, lake: LocalLake
) -> None:
    # GIVEN a sample with contacts whose provider left before the disconnect (cold transfers to an outside
    # number), after-contact work recorded after the disconnect, and the first leg of a transfer
    left_early = [c for c in sample.deliveries if provider_left(c) < parse_ts(c["DisconnectTimestamp"])]
    late_work = [
        c
        for c in sample.deliveries
        if (c["Agent"].get("AfterContactWorkStartTimestamp") or "") > c["DisconnectTimestamp"]
    ]
    without_work = [c for c in sample.deliveries if not c["Agent"].get("AfterContactWorkStartTimestamp")]
    assert left_early and late_work and without_work
    assert any(c.get("NextContactId") for c in sample.deliveries)
    # WHEN every row is read back
    rows = {
        (row["contact_id"], row["last_update_timestamp"]): row
        for row in lake.query("SELECT * FROM billing_rows").records()
    }
    # THEN each holds when the provider left, provider time up to then, the whole contact's length, the
    # next leg, and the call type of DESIGN.md §3
    for ctr in sample.deliveries:
        row = rows[(ctr["ContactId"], naive_utc(parse_ts(ctr["LastUpdateTimestamp"])))]
        assert row["provider_left_timestamp"] == naive_utc(provider_left(ctr))
        assert row["duration_seconds"] == duration(ctr)
        assert row["contact_duration_seconds"] == contact_duration(ctr)
        assert row["next_contact_id"] == (ctr.get("NextContactId") or "")
        assert row["call_type"] == call_type(ctr)
    # and an external transfer bills less than the contact was open
    assert all(duration(c) < contact_duration(c) - 60 for c in left_early)
    assert {call_type(c) for c in sample.deliveries if c["InitiationMethod"] == "API"} == {"OUTBOUND"}
    assert {call_type(c) for c in sample.deliveries if c["InitiationMethod"] == "WEBRTC_API"} == {"INBOUND"}


# --- named queries against independently computed truth --------------------------------------------


def test_monthly_minutes_by_provider_matches_the_ctrs(sample: LakeSample, lake: LocalLake) -> None:
    # GIVEN the truth: per month and extension, the latest version's seconds with the provider
    seconds: Counter[tuple[str, str, str]] = Counter()
    calls: Counter[tuple[str, str, str]] = Counter()
    for ctr in sample.latest_ctrs():
        day = utc_day(ctr)
        key = (f"{day:%Y}", f"{day:%m}", extension(ctr))
        seconds[key] += duration(ctr)
        calls[key] += 1
    # WHEN the named query runs
    rows = run_named(lake, "monthly_minutes_by_provider")
    # THEN it has exactly those groups and figures, in order
    assert [(r["year"], r["month"], r["provider_extension"]) for r in rows] == sorted(seconds)
    for row in rows:
        key = (row["year"], row["month"], row["provider_extension"])
        assert row["calls"] == calls[key]
        assert row["billable_seconds"] == seconds[key]
        assert Decimal(str(row["billable_minutes"])) == minutes(seconds[key])
    assert {row["provider_extension"] for row in rows} >= {"", "4417", "5120", "7301", FORMULA_EXTENSION}


def test_daily_calls_by_call_type_matches_the_ctrs(sample: LakeSample, lake: LocalLake) -> None:
    # GIVEN the truth per UTC day and call type
    truth: dict[tuple[str, str], list[int]] = defaultdict(list)
    for ctr in sample.latest_ctrs():
        truth[(f"{utc_day(ctr):%Y-%m-%d}", call_type(ctr))].append(duration(ctr))
    # WHEN the named query runs
    rows = run_named(lake, "daily_calls_by_call_type")
    # THEN every day and call type, with its call count and seconds
    assert [(r["call_date"], r["call_type"]) for r in rows] == sorted(truth)
    assert {r["call_type"] for r in rows} == {"INBOUND", "OUTBOUND"}
    for row in rows:
        durations = truth[(row["call_date"], row["call_type"])]
        assert (row["calls"], row["billable_seconds"]) == (len(durations), sum(durations))
        assert Decimal(str(row["billable_minutes"])) == minutes(sum(durations))


def test_republished_contacts_lists_versions_and_what_changed(sample: LakeSample, lake: LocalLake) -> None:
    # GIVEN the truth: contacts delivered with more than one distinct LastUpdateTimestamp
    versions: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for ctr in sample.deliveries:
        versions[ctr["ContactId"]][ctr["LastUpdateTimestamp"]] = ctr
    republished = {contact: copies for contact, copies in versions.items() if len(copies) > 1}
    assert len(republished) == 5
    # WHEN the named query runs
    rows = {row["contact_id"]: row for row in run_named(lake, "republished_contacts")}
    # THEN exactly those contacts, with their version count and the changed billing fields
    assert set(rows) == set(republished)
    for contact_id, copies in republished.items():
        first, latest = copies[min(copies)], copies[max(copies)]
        changed = []
        if duration(first) != duration(latest):
            changed += ["duration_seconds"]
        if extension(first) != extension(latest):
            changed += ["provider_extension"]
        if first["DisconnectTimestamp"] != latest["DisconnectTimestamp"]:
            changed += ["disconnect_timestamp"]
        row = rows[contact_id]
        assert row["versions"] == len(copies)
        assert row["changed_columns"] == ",".join(changed)
        assert (row["first_duration_seconds"], row["latest_duration_seconds"]) == (
            duration(first),
            duration(latest),
        )
        assert (row["first_provider_extension"], row["latest_provider_extension"]) == (
            extension(first),
            extension(latest),
        )
    # A redelivered identical copy is not a version: the contact delivered twice unchanged is absent.
    redelivered = [c["ContactId"] for c in sample.deliveries]
    twice_unchanged = [cid for cid, n in Counter(redelivered).items() if n > 1 and cid not in republished]
    assert twice_unchanged
    assert not set(twice_unchanged) & set(rows)


# --- errors and edges ------------------------------------------------------------------------------


def test_an_empty_lake_answers_every_named_query_with_no_rows(tmp_path: Path) -> None:
    # GIVEN a lake folder without any Parquet object yet
    (tmp_path / "lake" / LAKE_TABLE).mkdir(parents=True)
    with LocalLake(tmp_path / "lake") as lake:
        # WHEN every named query runs THEN each answers with its columns and no rows
        for name, sql in named_queries().items():
            if name == "latest_billing_rows":
                continue
            result = lake.query(sql)
            assert result.columns
            assert result.rows == []


def test_sql_that_is_not_one_athena_statement_is_a_clear_error(lake: LocalLake) -> None:
    with pytest.raises(LakeError, match="cannot parse"):
        lake.query("SELECT FROM WHERE (")
    with pytest.raises(LakeError, match="one SQL statement"):
        lake.query("SELECT 1; SELECT 2")
    with pytest.raises(LakeError, match="query failed"):
        lake.query("SELECT no_such_column FROM billing_rows")


def test_a_query_failing_on_a_value_does_not_quote_the_value(lake: LocalLake) -> None:
    # GIVEN the lake's patient phone numbers
    phones = [row[0] for row in lake.query("SELECT patient_phone FROM billing_rows").rows if row[0]]
    assert phones
    # WHEN a query fails converting one of them (DuckDB quotes the value it could not convert)
    with pytest.raises(LakeError) as error:
        lake.query("SELECT CAST(patient_phone AS DATE) FROM billing_rows")
    # THEN the error says what kind of failure it was, and no phone number (not even its digits) appears
    message = str(error.value)
    assert "ConversionException" in message
    assert not [phone for phone in phones if phone in message or phone.lstrip("+") in message]


def test_athena_functions_are_translated_to_duckdb(lake: LocalLake) -> None:
    # GIVEN Trino functions DuckDB spells differently (date_format, max_by, from_iso8601_timestamp)
    sql = (
        "SELECT date_format(max(initiation_timestamp), '%Y-%m-%d') AS last_day, "
        "max_by(contact_id, initiation_timestamp) AS last_contact, "
        "count_if(initiation_timestamp >= from_iso8601_timestamp('2026-11-03T00:00:00Z')) AS on_the_third "
        "FROM latest_billing_rows"
    )
    # WHEN run locally THEN DuckDB answers them
    row = lake.query(sql).records()[0]
    assert row["last_day"] == "2026-11-03"
    assert row["last_contact"].startswith("c")
    assert row["on_the_third"] > 0


def test_a_parquet_object_with_another_schema_is_reported_without_row_values(tmp_path: Path) -> None:
    # GIVEN a lake whose object lacks the registry's columns
    import pyarrow as pa

    folder = tmp_path / "lake" / LAKE_TABLE / "year=2026" / "month=11" / "day=02"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"patient_phone": ["+12025550143"]}), folder / "x.parquet")
    # WHEN it is opened THEN a LakeError names the folder, not the data
    with pytest.raises(LakeError, match="cannot read the lake") as error:
        LocalLake(tmp_path / "lake")
    assert "+12025550143" not in str(error.value)


# --- a lake written partly before the registry gained its last three columns -----------------------

# The columns the second version of the billing rules added (DESIGN.md §3), at the end of the registry.
ADDED_COLUMNS = ("provider_left_timestamp", "contact_duration_seconds", "next_contact_id")


def version_one_schema() -> pa.Schema:
    """The lake's Parquet schema before the change: 19 columns, without the added ones."""
    schema = arrow_schema()
    for name in ADDED_COLUMNS:
        schema = schema.remove(schema.get_field_index(name))
    return schema


@pytest.fixture(scope="module")
def mixed(sample: LakeSample, tmp_path_factory: pytest.TempPathFactory) -> LakeSample:
    """The sample's deliveries, the first 30 written with the old schema and the rest with the new.

    The rest includes later versions of contacts first delivered before the change, and an identical
    redelivery of one of them."""
    root = tmp_path_factory.mktemp("mixed") / "lake"
    write_lake(root, sample.deliveries[:30], schema=version_one_schema())
    write_lake(root, sample.deliveries[30:], first_batch=100)
    return LakeSample(root, sample.deliveries)


def test_the_old_schema_is_the_registry_without_the_added_columns() -> None:
    # The fixture's old files must be what the lake delivery stream wrote before the change.
    assert len(version_one_schema()) == 19
    assert [*version_one_schema().names, *ADDED_COLUMNS] == list(COLUMN_NAMES)


def test_a_lake_of_old_and_new_parquet_reads_with_nulls_in_the_old_rows(mixed: LakeSample) -> None:
    # GIVEN a lake holding Parquet objects of both schemas
    schemas = {len(pq.read_schema(path)) for path in parquet_files(mixed.root)}
    assert schemas == {19, 22}
    old_versions = {
        (c["ContactId"], naive_utc(parse_ts(c["LastUpdateTimestamp"]))) for c in mixed.deliveries[:30]
    }
    # WHEN it is opened and read
    with LocalLake(mixed.root) as lake:
        described = [row[0] for row in lake.query(f"DESCRIBE {LAKE_TABLE}").rows]
        rows = lake.query("SELECT * FROM billing_rows").records()
    # THEN every delivered copy is a row, under the registry's columns
    assert described == [*COLUMN_NAMES, *PARTITION_KEYS]
    assert len(rows) == len(mixed.deliveries)
    # and the added columns are null in the rows written before, filled in the rows written after
    assert sum(1 for row in rows if row["contact_duration_seconds"] is None) == 30
    for row in rows:
        if row["contact_duration_seconds"] is None:
            assert (row["contact_id"], row["last_update_timestamp"]) in old_versions
            assert (row["provider_left_timestamp"], row["next_contact_id"]) == (None, None)
        else:
            assert row["provider_left_timestamp"] is not None and row["next_contact_id"] is not None
    # and the columns both schemas hold read the same in either kind of file
    for ctr in mixed.deliveries:
        row = next(
            r
            for r in rows
            if (r["contact_id"], r["last_update_timestamp"])
            == (ctr["ContactId"], naive_utc(parse_ts(ctr["LastUpdateTimestamp"])))
        )
        assert (row["duration_seconds"], row["provider_extension"]) == (duration(ctr), extension(ctr))


def test_the_latest_view_over_a_mixed_lake_takes_each_contact_s_latest_version(mixed: LakeSample) -> None:
    # GIVEN the latest version of each contact, and which of them were delivered only before the change
    latest = {ctr["ContactId"]: ctr for ctr in mixed.latest_ctrs()}
    after = {(c["ContactId"], c["LastUpdateTimestamp"]) for c in mixed.deliveries[30:]}
    old_only = {cid for cid, ctr in latest.items() if (cid, ctr["LastUpdateTimestamp"]) not in after}
    republished_across = {c["ContactId"] for c in mixed.deliveries[30:]} & {
        c["ContactId"] for c in mixed.deliveries[:30]
    }
    assert old_only and republished_across
    # WHEN the view is created and read
    with LocalLake(mixed.root) as lake:
        lake.query(named_queries()["latest_billing_rows"])
        rows = {row["contact_id"]: row for row in lake.query("SELECT * FROM latest_billing_rows").records()}
    # THEN one row per contact with its latest values; a contact republished after the change has the
    # added columns of its new version, one delivered only before has them null
    assert set(rows) == set(latest)
    for contact_id, ctr in latest.items():
        row = rows[contact_id]
        assert row["last_update_timestamp"] == naive_utc(parse_ts(ctr["LastUpdateTimestamp"]))
        assert row["duration_seconds"] == duration(ctr)
        assert row["provider_extension"] == extension(ctr)
        if contact_id in old_only:
            assert (row["provider_left_timestamp"], row["contact_duration_seconds"]) == (None, None)
        else:
            assert row["provider_left_timestamp"] == naive_utc(provider_left(ctr))
            assert row["contact_duration_seconds"] == contact_duration(ctr)
    assert all(rows[cid]["contact_duration_seconds"] is not None for cid in republished_across)


@pytest.mark.parametrize("day", [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)])
def test_the_settlement_of_a_mixed_lake_leaves_only_the_added_cells_of_old_rows_empty(
    sample: LakeSample, mixed: LakeSample, day: date
) -> None:
    # GIVEN every registry column settled in UTC, and the contacts whose latest version is an old row
    settings = TransformSettings.from_environ({"CSV_COLUMNS": ",".join(COLUMN_NAMES)})
    after = {(c["ContactId"], c["LastUpdateTimestamp"]) for c in mixed.deliveries[30:]}
    old_only = {
        c["ContactId"] for c in mixed.latest_ctrs() if (c["ContactId"], c["LastUpdateTimestamp"]) not in after
    }
    now = datetime(2026, 11, 4, 5, 10, tzinfo=UTC)
    # WHEN the day is settled from the mixed lake and from the same deliveries written with the new schema
    with LocalLake(mixed.root) as lake:
        settled = settle(lake, day, settings, now)
    with LocalLake(sample.root) as lake:
        rewritten = settle(lake, day, settings, now)
    # THEN the same contacts in the same order, every cell equal but the added columns of old rows,
    # which are empty
    mixed_lines = [line.split(",") for line in settled.csv.decode().splitlines()]
    new_lines = [line.split(",") for line in rewritten.csv.decode().splitlines()]
    assert mixed_lines[0] == new_lines[0] == list(COLUMN_NAMES)
    assert settled.rows == rewritten.rows == len(mixed_lines) - 1 > 0
    added = [COLUMN_NAMES.index(name) for name in ADDED_COLUMNS]
    contact = COLUMN_NAMES.index("contact_id")
    empty_rows = 0
    for mixed_line, new_line in zip(mixed_lines[1:], new_lines[1:], strict=True):
        assert mixed_line[contact] == new_line[contact]
        expected = list(new_line)
        if new_line[contact] in old_only:
            empty_rows += 1
            for index in added:
                expected[index] = ""
        assert mixed_line == expected
    assert 0 < empty_rows == sum(1 for line in new_lines[1:] if line[contact] in old_only) < settled.rows
