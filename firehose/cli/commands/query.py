"""``ctr-billing query``: run Athena SQL, or one of the template's named queries, on a local lake."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from firehose.cli.errors import CommandError
from firehose.offline.lake import DEFAULT_LAKE, LakeError, LocalLake, QueryResult
from transform.core.columns import COLUMNS_BY_NAME, Column, ColumnType
from transform.core.rows import csv_text_cell
from transform.settlement.queries import QueryFileError, named_queries, view_select

FORMATS = ("table", "csv", "json")
# Formula guard for computed columns (no strict format of their own).
_COMPUTED = Column("computed", ColumnType.STRING, "a query's computed column")


def register(subparsers: Any) -> None:
    queries = ", ".join(named_queries())
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "query",
        help="run Athena SQL or a named query on a local data lake (DuckDB)",
        description=(
            "Run Athena (Trino) SQL on a local lake folder with DuckDB; the SQL is translated with sqlglot. "
            "Tables: billing_rows (every delivered version), latest_billing_rows (the latest version of "
            "each contact) and settled_manifests (the settled files' manifests). "
            f"Named queries (cloudformation/queries/): {queries}."
        ),
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("sql", nargs="?", help="one SQL statement in Athena's dialect")
    what.add_argument("--named", metavar="NAME", help="a named query of the template")
    parser.add_argument(
        "--lake",
        type=Path,
        default=DEFAULT_LAKE,
        help=f"lake folder holding billing_rows/year=/month=/day=/ (default: the last demo's, {DEFAULT_LAKE})",
    )
    parser.add_argument(
        "--settled",
        type=Path,
        help="folder of settled files for settled_manifests (default: settled/ beside the lake folder)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (aligned columns, for people), csv (header and rows) or json (one object per row, "
        "JSON lines); default: table",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    sql = args.sql
    if args.named is not None:
        queries = named_queries()
        if args.named not in queries:
            raise CommandError(f"no named query {args.named!r}; named queries: {', '.join(queries)}")
        sql = queries[args.named]
        if f"CREATE OR REPLACE VIEW {args.named} AS" in sql:
            # A view's named query creates the view (in Athena); here its rows are what a user wants.
            try:
                sql = view_select(args.named)
            except QueryFileError as error:
                raise CommandError(str(error)) from None
            print(
                f"{args.named} is a view (its named query is CREATE OR REPLACE VIEW {args.named} AS "
                "SELECT ...): showing the view's rows",
                file=sys.stderr,
            )
    lake: Path = args.lake
    if not lake.is_dir():
        raise CommandError(f"no lake folder at {lake}: run a demo first or pass --lake DIR")
    settled = args.settled if args.settled is not None else lake.parent / "settled"
    try:
        with LocalLake(lake, settled) as local:
            result = local.query(sql)
    except LakeError as error:
        raise CommandError(str(error)) from None
    {"table": write_table, "csv": write_csv, "json": write_json}[args.format](result, out)
    return 0


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


# C0 and C1 control characters, DEL, and the bidirectional overrides: in a terminal they can move the
# cursor, rewrite earlier lines or reorder what is shown.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(text: str) -> str:
    """A table cell as it can be shown safely: control characters written as escapes (``\x1b``)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def write_table(result: QueryResult, out: TextIO) -> None:
    cells = [[_visible(_text(value)) for value in row] for row in result.rows]
    widths = [len(name) for name in result.columns]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    numeric = [
        bool(result.rows)
        and all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in result.rows)
        for i in range(len(result.columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return " | ".join(parts).rstrip() + "\n"

    out.write(line([_visible(name) for name in result.columns]))
    out.write("-+-".join("-" * width for width in widths) + "\n")
    for row in cells:
        out.write(line(row))
    out.write(f"({len(cells)} row{'s' if len(cells) != 1 else ''})\n")


def write_csv(result: QueryResult, out: TextIO) -> None:
    """Header and rows, with the vendor CSV's cell rules (RFC 4180 quoting, formula guard)."""
    out.write(",".join(csv_text_cell(name, _COMPUTED) for name in result.columns) + "\n")
    guards = [COLUMNS_BY_NAME.get(name, _COMPUTED) for name in result.columns]
    for row in result.rows:
        cells = [
            _text(value) if isinstance(value, int | float | Decimal) else csv_text_cell(_text(value), guard)
            for value, guard in zip(row, guards, strict=True)
        ]
        out.write(",".join(cells) + "\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


def write_json(result: QueryResult, out: TextIO) -> None:
    """One JSON object per row (JSON lines)."""
    for row in result.rows:
        record = {name: _json_value(value) for name, value in zip(result.columns, row, strict=True)}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
