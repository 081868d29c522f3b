"""The named queries' SQL files: valid Athena SQL built on one latest-version view, the settlement
export's SQL ranking versions with that view's own SELECT, and the template deploying the files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlglot
from sqlglot import exp

from firehose.deploy.template import (
    TEMPLATE_PATH,
    load_template,
    loads_template,
    resource_properties,
    resources_of_type,
)
from firehose.offline.lake import ATHENA_DIALECT, to_duckdb
from transform.core.columns import COLUMN_NAMES, LAKE_TABLE, PARTITION_KEYS
from transform.core.settings import TransformSettings
from transform.settlement.export import SETTLEMENT_SQL, settle
from transform.settlement.queries import (
    LATEST_VIEW,
    QUERIES_DIR,
    QueryFileError,
    named_queries,
    sql_string,
    view_select,
)

EXPECTED_QUERIES = {
    "latest_billing_rows",
    "monthly_minutes_by_provider",
    "daily_calls_by_call_type",
    "republished_contacts",
    "vendor_reconciliation",
}


def parse(sql: str) -> exp.Expression:
    statements = sqlglot.parse(sql, read=ATHENA_DIALECT)
    assert len(statements) == 1
    statement = statements[0]
    assert statement is not None
    return statement


def tables(statement: exp.Expression) -> set[str]:
    ctes = {cte.alias for cte in statement.find_all(exp.CTE)}
    return {table.name for table in statement.find_all(exp.Table)} - ctes


def test_every_named_query_is_one_athena_statement_that_translates_to_duckdb() -> None:
    queries = named_queries()
    assert set(queries) == EXPECTED_QUERIES
    for sql in queries.values():
        parse(sql)
        assert to_duckdb(sql)


def test_the_latest_view_selects_every_registry_column_and_the_partition_keys() -> None:
    # GIVEN the view's definition
    statement = parse(named_queries()[LATEST_VIEW])
    # THEN it creates the view, over billing_rows, with exactly the lake's columns in registry order
    assert isinstance(statement, exp.Create)
    assert statement.this.name == LATEST_VIEW
    select = statement.expression
    assert isinstance(select, exp.Select)
    assert [projection.alias_or_name for projection in select.expressions] == [*COLUMN_NAMES, *PARTITION_KEYS]
    assert tables(select) == {LAKE_TABLE}


def test_every_billing_query_reads_the_latest_view_or_needs_every_version() -> None:
    # GIVEN the queries other than the view
    reads = {name: tables(parse(sql)) for name, sql in named_queries().items() if name != LATEST_VIEW}
    # THEN each reads latest versions, except the one about versions, which reads every copy
    assert reads == {
        "monthly_minutes_by_provider": {LATEST_VIEW},
        "daily_calls_by_call_type": {LATEST_VIEW},
        "vendor_reconciliation": {LATEST_VIEW, "settled_manifests"},
        "republished_contacts": {LAKE_TABLE},
    }


def test_the_settlement_export_ranks_versions_with_the_latest_view_s_own_select() -> None:
    # GIVEN the view's definition and the export's SQL
    view = parse(named_queries()[LATEST_VIEW])
    assert isinstance(view, exp.Create)
    export = parse(SETTLEMENT_SQL)
    # THEN the export reads from the view's SELECT itself, so both pick the same row
    source = export.find(exp.From)  # breadth first: the outermost FROM
    assert source is not None and isinstance(source.this, exp.Subquery)
    assert source.this.this == view.expression
    assert view_select() in SETTLEMENT_SQL
    # AND that ranking puts the latest update first and breaks ties (identical redeliveries) over every
    # other column: deterministic
    (window,) = view.find_all(exp.Window)
    order = [ordered.this.name for ordered in window.args["order"].expressions]
    assert order[0] == "last_update_timestamp"
    assert sorted(order) == sorted(set(COLUMN_NAMES) - {"contact_id"})


def test_the_view_s_select_is_read_from_its_file(tmp_path: Path) -> None:
    # GIVEN a view file whose ranking differs from the project's
    changed = named_queries()[LATEST_VIEW].replace("last_update_timestamp DESC NULLS LAST", "contact_id")
    (tmp_path / f"{LATEST_VIEW}.sql").write_text(changed, encoding="utf-8")
    # WHEN its SELECT is read
    select = view_select(directory=tmp_path)
    # THEN it is the file's, as written after the CREATE line (comments before it dropped)
    assert select == changed.split(f"CREATE OR REPLACE VIEW {LATEST_VIEW} AS", 1)[1].strip()
    assert select.startswith("SELECT") and "ORDER BY\n                contact_id," in select


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "DROP VIEW latest_billing_rows;\nCREATE OR REPLACE VIEW latest_billing_rows AS SELECT 1",
        "CREATE OR REPLACE VIEW other_view AS SELECT 1",
    ],
)
def test_a_view_file_that_is_not_the_view_s_one_statement_is_refused(tmp_path: Path, text: str) -> None:
    # GIVEN a view file holding something else, or more, than the view's statement
    (tmp_path / f"{LATEST_VIEW}.sql").write_text(text, encoding="utf-8")
    # WHEN/THEN reading its SELECT is refused, naming the view (a statement before it would be lost)
    with pytest.raises(QueryFileError, match=LATEST_VIEW):
        view_select(directory=tmp_path)


def test_a_missing_view_file_is_refused_naming_it(tmp_path: Path) -> None:
    # GIVEN no view file WHEN/THEN reading its SELECT is refused, naming it
    with pytest.raises(QueryFileError, match="cannot read the latest_billing_rows view's query"):
        view_select(directory=tmp_path)


def test_a_sql_string_literal_doubles_its_quotes() -> None:
    # GIVEN text with and without quotes (Athena's execution parameters, DuckDB's file paths)
    # WHEN quoted THEN each is one SQL string literal of that text
    assert sql_string("2026") == "'2026'"
    assert sql_string("/lake/o'brien's/x.parquet") == "'/lake/o''brien''s/x.parquet'"
    literal = sqlglot.parse_one("SELECT " + sql_string("it's"), read=ATHENA_DIALECT).expressions[0]
    assert literal.this == "it's"


def test_the_settlement_export_selects_every_registry_column_in_order() -> None:
    statement = parse(SETTLEMENT_SQL)
    assert isinstance(statement, exp.Select)
    assert [projection.alias_or_name for projection in statement.expressions] == list(COLUMN_NAMES)
    assert tables(statement) == {LAKE_TABLE}
    assert len(list(statement.find_all(exp.Placeholder))) == 8


# --- the template's side -----------------------------------------------------------------------------


def test_the_template_deploys_each_named_query_file_as_its_query_string() -> None:
    # GIVEN the template's named queries, as written and as CloudFormation receives them
    source = loads_template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    written = {
        properties["Name"]: properties["QueryString"]
        for _, resource in resources_of_type(source, "AWS::Athena::NamedQuery")
        for properties in [resource["Properties"]]
    }
    rendered = {
        properties["Name"]: properties
        for _, resource in resources_of_type(load_template(), "AWS::Athena::NamedQuery")
        for properties in [resource["Properties"]]
    }
    # THEN there is one per file; the template names the file rather than holding a copy of it
    queries = named_queries()
    assert set(written) == set(rendered) == set(queries)
    for name, sql in queries.items():
        assert written[name] == {"Fn::Embed": f"{QUERIES_DIR.name}/{name}.sql"}
        # AND CloudFormation receives the file's SQL, in the billing database and workgroup
        assert rendered[name]["QueryString"] == sql
        assert rendered[name]["Database"] == {"Ref": "GlueDatabase"}
        assert rendered[name]["WorkGroup"] == {"Ref": "AthenaWorkGroup"}


def test_the_settled_manifests_table_has_the_manifest_fields() -> None:
    # GIVEN the Glue table the reconciliation reads
    table = resource_properties(load_template(), "SettledManifestsTable")["TableInput"]
    columns = {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}
    # THEN it is named as the query names it and has every field the export writes in a manifest
    assert table["Name"] == "settled_manifests"
    assert table["StorageDescriptor"]["Location"] == {"Fn::Sub": "s3://${VendorBucket}/settled/"}
    manifest = json.loads(
        settle(_EmptyEngine(), date(2026, 11, 2), TransformSettings(), datetime.now(UTC)).manifest
    )
    assert set(columns) == set(manifest)
    assert columns["rows"] == "bigint"
    assert columns["columns"] == "array<string>"


def test_the_export_lambda_runs_daily_after_midnight_in_the_billing_time_zone() -> None:
    template = load_template()
    function = resource_properties(template, "SettlementExportFunction")
    schedule = resource_properties(template, "SettlementSchedule")
    # THEN the handler is the settlement's, configured like the stream's transform
    assert function["Handler"] == "transform.settlement.handler.lambda_handler"
    variables = function["Environment"]["Variables"]
    assert variables["ATHENA_WORKGROUP"] == {"Ref": "AthenaWorkGroup"}
    assert variables["GLUE_DATABASE"] == {"Ref": "GlueDatabase"}
    assert variables["VENDOR_BUCKET"] == {"Ref": "VendorBucket"}
    assert variables["BILLING_TIMEZONE"] == {"Ref": "BillingTimezone"}
    assert variables["CSV_COLUMNS"] == {"Ref": "CsvColumns"}
    # and the schedule fires once a day, at half past the settlement hour, in the billing zone, passing its time
    hour = template["Parameters"]["SettlementHour"]
    assert (hour["Type"], hour["MinValue"], hour["MaxValue"]) == ("Number", 0, 23)
    assert schedule["ScheduleExpression"] == {"Fn::Sub": "cron(30 ${SettlementHour} * * ? *)"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "BillingTimezone"}
    assert schedule["Target"]["Arn"] == {"Fn::GetAtt": ["SettlementExportFunction", "Arn"]}
    assert json.loads(schedule["Target"]["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}


# Zones with daylight saving whose clocks jump at 01:00-03:00 local time (US, EU, Australia).
DAYLIGHT_SAVING_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Australia/Sydney",
)


def test_the_default_settlement_time_waits_for_late_records_and_exists_every_day() -> None:
    # GIVEN the default settlement hour
    hour = int(load_template()["Parameters"]["SettlementHour"]["Default"])

    # THEN the export waits hours after midnight for CTRs of calls ending just before it, after-contact
    # work and republished versions
    assert hour >= 2
    # AND half past that hour is a wall time every day of the year in zones with daylight saving
    # (EventBridge Scheduler skips a scheduled time that does not exist)
    for zone_name in DAYLIGHT_SAVING_ZONES:
        zone = ZoneInfo(zone_name)
        for offset in range(366):
            scheduled = datetime.combine(date(2026, 1, 1) + timedelta(days=offset), time(hour, 30), zone)
            assert scheduled.astimezone(UTC).astimezone(zone).time() == time(hour, 30), (zone_name, scheduled)


def test_the_export_role_writes_only_settled_files_of_the_vendor_bucket() -> None:
    role = resource_properties(load_template(), "SettlementExportRole")
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    writes = [s for s in statements if "s3:PutObject" in _actions(s)]
    vendor_writes = [s for s in writes if "VendorBucket" in json.dumps(s["Resource"])]
    assert [s["Resource"] for s in vendor_writes] == [{"Fn::Sub": "${VendorBucket.Arn}/settled/*"}]
    assert all(s["Resource"] != "*" for s in statements if s["Sid"] != "XRayTraces")


def test_a_day_whose_export_gives_up_waits_in_an_encrypted_dead_letter_queue_that_alarms() -> None:
    # GIVEN the template's settlement export, its schedule and their roles
    template = load_template()
    queue_arn = {"Fn::GetAtt": ["SettlementDeadLetterQueue", "Arn"]}
    function = resource_properties(template, "SettlementExportFunction")
    schedule = resource_properties(template, "SettlementSchedule")

    # THEN both the function's failed asynchronous invocations and the schedule's undelivered ones
    # go to the queue, which is encrypted with the project's key and keeps messages for 14 days
    assert function["DeadLetterConfig"] == {"TargetArn": queue_arn}
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": queue_arn}
    queue = resource_properties(template, "SettlementDeadLetterQueue")
    assert queue["KmsMasterKeyId"] == {"Fn::GetAtt": ["BillingKey", "Arn"]}
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    # and each role may send to that queue and no other
    for role in ("SettlementExportRole", "SettlementScheduleRole"):
        statements = [
            s
            for policy in resource_properties(template, role)["Policies"]
            for s in policy["PolicyDocument"]["Statement"]
        ]
        sends = [s["Resource"] for s in statements if any(a.startswith("sqs:") for a in _actions(s))]
        assert sends == [queue_arn], role
    # and a message waiting there raises an alarm on the project's topic
    alarms = [
        resource["Properties"]
        for _, resource in resources_of_type(template, "AWS::CloudWatch::Alarm")
        if resource["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SettlementDeadLetterQueue", "QueueName"]}}]
    ]
    assert len(alarms) == 1
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarms[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


class _EmptyEngine:
    def fetch(self, sql: str, parameters: Sequence[str]) -> list[dict[str, object]]:
        return []
