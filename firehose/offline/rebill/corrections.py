"""Corrections: a rebilled day's file against the settled one, contact by contact and column by column;
and reading the settled file (local or S3).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from firehose.offline.lake import LakeError, S3Location, s3_client
from firehose.offline.rebill.archive import RebillError
from transform.core.columns import COLUMNS_BY_NAME, Column, ColumnType
from transform.core.rows import csv_text_cell
from transform.core.settings import TransformSettings

CORRECTIONS_HEADER = ("contact_id", "change", "column", "settled", "rebilled")
CONTACT_ID = "contact_id"
# The corrections' own columns are plain text (formula-guarded); a settled or rebilled cell keeps its
# registry column's strict format (a phone number stays as the settled file spells it).
_PLAIN_TEXT = Column("text", ColumnType.STRING, "")

# --- corrections: rebilled vs settled -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Correction:
    contact_id: str
    change: str  # added | removed | changed
    column: str = ""
    settled: str = ""
    rebilled: str = ""


@dataclass(frozen=True, slots=True)
class Corrections:
    lines: tuple[Correction, ...]
    added: int
    removed: int
    changed: int

    @property
    def csv(self) -> bytes:
        """``corrections-DATE.csv``: header, then one line per correction, cells quoted and
        formula-guarded as the settled file's (a cell keeps its own column's strict format)."""
        contact_column = COLUMNS_BY_NAME[CONTACT_ID]
        out = [",".join(CORRECTIONS_HEADER) + "\n"]
        for line in self.lines:
            value_column = COLUMNS_BY_NAME.get(line.column, _PLAIN_TEXT)
            cells = (
                csv_text_cell(line.contact_id, contact_column),
                csv_text_cell(line.change, _PLAIN_TEXT),
                csv_text_cell(line.column, _PLAIN_TEXT),
                csv_text_cell(line.settled, value_column),
                csv_text_cell(line.rebilled, value_column),
            )
            out.append(",".join(cells) + "\n")
        return "".join(out).encode()

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "lines": len(self.lines),
        }


def corrections_name(day: date) -> str:
    return f"corrections-{day.isoformat()}.csv"


def parse_billing_csv(body: bytes, what: str) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """A settlement file's header and its rows (cell text as the file holds it, quoting undone) by
    contact_id, in file order."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RebillError(f"the {what} file is not UTF-8") from None
    # newline="": a CR inside a quoted cell is cell text, not a line end.
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise RebillError(f"the {what} file is empty: it has no header line")
    if CONTACT_ID not in header:
        raise RebillError(
            f"the {what} file has no {CONTACT_ID} column (its columns: {', '.join(header)}); "
            "rows are matched by contact_id"
        )
    by_contact: dict[str, list[dict[str, str]]] = {}
    for cells in reader:
        if len(cells) != len(header):
            raise RebillError(
                f"the {what} file's line {reader.line_num} has {len(cells)} cells, its header {len(header)}"
            )
        row = dict(zip(header, cells, strict=True))
        by_contact.setdefault(row[CONTACT_ID], []).append(row)
    return header, by_contact


def corrections(settled: bytes, rebilled: bytes) -> Corrections:
    """What changes from the settled file to the rebilled one, matched by contact_id.

    A contact only in the rebilled file is one ``added`` line, only in the settled file one ``removed``
    line; a contact in both has one ``changed`` line per column whose cell differs (over the columns of
    either file: a column one file lacks reads as empty). Lines are ordered by contact_id, then column.
    """
    settled_header, settled_rows = parse_billing_csv(settled, "settled")
    rebilled_header, rebilled_rows = parse_billing_csv(rebilled, "rebilled")
    columns = sorted(set(settled_header) | set(rebilled_header))
    lines: list[Correction] = []
    added: set[str] = set()
    removed: set[str] = set()
    changed: set[str] = set()
    for contact_id in sorted(settled_rows.keys() | rebilled_rows.keys()):
        before = settled_rows.get(contact_id, [])
        after = rebilled_rows.get(contact_id, [])
        # Several rows of one contact (its versions straddle two UTC days) pair up in file order.
        for index in range(max(len(before), len(after))):
            if index >= len(before):
                added.add(contact_id)
                lines.append(Correction(contact_id, "added"))
            elif index >= len(after):
                removed.add(contact_id)
                lines.append(Correction(contact_id, "removed"))
            else:
                old, new = before[index], after[index]
                for column in columns:
                    was, now = old.get(column, ""), new.get(column, "")
                    if was != now:
                        changed.add(contact_id)
                        lines.append(Correction(contact_id, "changed", column, was, now))
    lines.sort(key=lambda line: (line.contact_id, line.column))
    return Corrections(tuple(lines), len(added), len(removed), len(changed))


def read_settled(settled: str, day: date) -> tuple[str, bytes]:
    """``--settled``: a folder or s3:// prefix holding ``billing-DATE.csv`` (or that file itself); its
    location and bytes."""
    from transform.settlement.export import csv_name

    name = csv_name(day)
    if settled.startswith("s3://"):
        try:
            location = S3Location.parse(settled)
        except LakeError as error:
            raise RebillError(str(error)) from None
        key = location.prefix + name
        client = s3_client()
        try:
            body: bytes = client.get_object(Bucket=location.bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise RebillError(f"no settled file s3://{location.bucket}/{key}") from None
        return f"s3://{location.bucket}/{key}", body
    path = Path(settled)
    target = path if path.is_file() else path / name
    if not target.is_file():
        raise RebillError(f"no settled file {name} at {path}")
    return str(target), target.read_bytes()


def is_settled_prefix(to: str) -> bool:
    """Whether ``--to`` names a ``settled/`` prefix or folder, where only the export writes."""
    trimmed = to[len("s3://") :] if to.startswith("s3://") else to
    return trimmed.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] == "settled"


def settled_columns_needed(settings: TransformSettings) -> None:
    if CONTACT_ID not in settings.csv_columns:
        raise RebillError(
            f"--settled matches rows by {CONTACT_ID}, which is not among CSV_COLUMNS "
            f"({', '.join(settings.csv_columns)}): add it to CSV_COLUMNS, for the export and the rebill alike"
        )
