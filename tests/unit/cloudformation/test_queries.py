"""The named queries' SQL files: valid Athena SQL built on one latest-version view, and the settlement
export's SQL picking the same version as that view."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from firehose.deploy.template import load_template, resource_properties, resources_of_type
from firehose.offline.lake import ATHENA_DIALECT, LATEST_VIEW, named_queries, to_duckdb
from transform.core.columns import COLUMN_NAMES, LAKE_TABLE, PARTITION_KEYS
from transform.core.settings import TransformSettings
from transform.settlement.export import SETTLEMENT_SQL, settle

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


def test_the_settlement_export_ranks_versions_exactly_as_the_latest_view() -> None:
    # GIVEN the version ranking window of the view and of the export's SQL
    view_windows = list(parse(named_queries()[LATEST_VIEW]).find_all(exp.Window))
    export_windows = list(parse(SETTLEMENT_SQL).find_all(exp.Window))
    # THEN both rank with the same partitioning and the same total order, so they pick the same row
    assert len(view_windows) == len(export_windows) == 1
    assert view_windows[0] == export_windows[0]
    # latest update first; ties (identical redeliveries) broken over every other column: deterministic
    order = [ordered.this.name for ordered in view_windows[0].args["order"].expressions]
    assert order[0] == "last_update_timestamp"
    assert sorted(order) == sorted(set(COLUMN_NAMES) - {"contact_id"})


def test_the_settlement_export_selects_every_registry_column_in_order() -> None:
    statement = parse(SETTLEMENT_SQL)
    assert isinstance(statement, exp.Select)
    assert [projection.alias_or_name for projection in statement.expressions] == list(COLUMN_NAMES)
    assert tables(statement) == {LAKE_TABLE}
    assert len(list(statement.find_all(exp.Placeholder))) == 8


# --- the template's side -----------------------------------------------------------------------------


def test_the_template_holds_each_named_query_with_the_files_sql() -> None:
    # GIVEN the template's named queries
    template = load_template()
    in_template = {
        properties["Name"]: properties
        for _, resource in resources_of_type(template, "AWS::Athena::NamedQuery")
        for properties in [resource["Properties"]]
    }
    # THEN there is one per file, with the file's SQL verbatim, in the billing database and workgroup
    queries = named_queries()
    assert set(in_template) == set(queries)
    for name, sql in queries.items():
        assert in_template[name]["QueryString"] == sql, (
            f"template QueryString of {name} differs from its file"
        )
        assert in_template[name]["Database"] == {"Ref": "GlueDatabase"}
        assert in_template[name]["WorkGroup"] == {"Ref": "AthenaWorkGroup"}


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
        if resource["Properties"].get("Namespace") == "AWS/SQS"
    ]
    assert [alarm["Dimensions"] for alarm in alarms] == [
        [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SettlementDeadLetterQueue", "QueueName"]}}]
    ]
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarms[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


class _EmptyEngine:
    def fetch(self, sql: str, parameters: Sequence[str]) -> list[dict[str, object]]:
        return []
