"""The named queries' SQL files: valid Athena SQL built on one latest-version view, and the settlement
export's SQL picking the same version as that view."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from firehose.lake import ATHENA_DIALECT, LATEST_VIEW, named_queries, to_duckdb
from transform.columns import COLUMN_NAMES, LAKE_TABLE, PARTITION_KEYS
from transform.settlement import SETTLEMENT_SQL

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
