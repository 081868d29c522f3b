"""The lake's named queries: Athena SQL files in ``cloudformation/queries/``, one per query.

Each file is the one source of its query: the template embeds it (``firehose.deploy.template``), the local
lake runs it through DuckDB (``firehose.offline.lake``), and the settlement export ranks versions with the
``latest_billing_rows`` view's own SELECT (``transform.settlement.export``). The Lambda zip carries the
folder at the same path relative to this package as the repository does (``firehose.deploy.packaging``),
so one path finds it in both.
"""

from __future__ import annotations

from pathlib import Path

QUERIES_DIR = Path(__file__).resolve().parents[2] / "cloudformation" / "queries"
# The view of the latest version of every contact, which the other billing queries read.
LATEST_VIEW = "latest_billing_rows"


class QueryFileError(ValueError):
    """A named query's file is missing or not the statement it must be; the message names it."""


def named_queries(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """The named queries (Athena SQL) by name: the files' names without ``.sql``."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.sql"))}


def view_select(view: str = LATEST_VIEW, directory: Path = QUERIES_DIR) -> str:
    """The SELECT of the named query ``CREATE OR REPLACE VIEW <view> AS <select>``: the view's rows, to
    read as a subquery where the view itself may not exist (Athena before anyone ran the named query)."""
    path = directory / f"{view}.sql"
    try:
        sql = path.read_text(encoding="utf-8")
    except OSError as error:
        raise QueryFileError(f"cannot read the {view} view's query {path}: {error.strerror}") from None
    head, found, select = sql.partition(f"CREATE OR REPLACE VIEW {view} AS")
    # Only comments may come before the statement: anything else would be lost with the head.
    if not found or any(line.strip() and not line.lstrip().startswith("--") for line in head.splitlines()):
        raise QueryFileError(f"{path} is not one CREATE OR REPLACE VIEW {view} AS SELECT ... statement")
    return select.strip()


def sql_string(value: str) -> str:
    """A SQL string literal (single quotes doubled): Athena's text execution parameters, DuckDB's paths."""
    return "'" + value.replace("'", "''") + "'"
