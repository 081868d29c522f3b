"""Provider directory management: import / export / set / remove, against the embedded AWS or real AWS.

Rules the voicemail solution does not enforce and we do: an extension is 1-5 digits in its canonical
form (DESIGN §3: Unicode decimal digits are stored as ASCII, leading zeros kept) and belongs to at most
one agent, counting extensions that differ only in leading zeros (``0417``, ``417``) as the same; a
username holds no control or Unicode format characters (U+202E would reverse what a reader sees). The
file is strict CSV: UTF-8, one header with each column once, quotes closed, fields under 128 KiB. ``import`` validates the whole file (and the table's current holders) before writing
anything and reports every bad line; it then writes 100 entries per DynamoDB transaction, each entry
conditional on the item being as it was checked, and rolls back the transactions already committed
when a later one fails. Writes update ``extension``/``username`` (and ``userId``, always the agent id:
the voicemail solution's nightly sync finds rows by it and would otherwise replace the row without its
extension), so an existing voicemail deployment's per-agent settings stay and its sync leaves the rows as
they are. Which side owns which attribute: docs/voicemail.md.

Checks and writes are not one transaction: two administrators assigning the same extension at the
same instant could both pass the check. The lookup Lambdas answer ``found=false`` for an extension
held twice rather than guess.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, TextIO

from firehose.cli.errors import CommandError
from lookup.directory import DirectoryEntry
from lookup.directory_admin import ChangesNotApplied, DirectoryAdmin, EntryChange
from lookup.identifiers import (
    canonical_extension,
    extension_clash_key,
    is_agent_id,
    is_extension,
    zero_padded_forms,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COLUMNS = ("agentId", "extension", "username")
REQUIRED_COLUMNS = ("agentId", "extension")
MAX_USERNAME = 128
MAX_FIELD = 128 * 1024
# Cells a spreadsheet would run as a formula (as transform.core.rows.csv_text_cell guards them).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Control, format (bidi overrides, zero-width), surrogate, private-use, unassigned, line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


@dataclass(frozen=True, slots=True)
class NumberedEntry:
    line: int
    entry: DirectoryEntry


class DirectoryRejected(CommandError):
    """Nothing was written; ``problems`` lists every reason, one per bad line."""

    def __init__(self, summary: str, problems: Sequence[LineProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join([summary, *(f"  {problem}" for problem in self.problems)]))


# --- validation (pure) -----------------------------------------------------------------------------


def entry_problem(agent_id: str, extension: str, username: str) -> str | None:
    if not agent_id:
        return "agentId is empty"
    if not is_agent_id(agent_id):
        return f"agentId {agent_id!r} is not an agent id (letters, digits, '-', '_', '.'; up to 128)"
    if not is_extension(canonical_extension(extension)):
        # A long value is not echoed: it may be a patient's phone number typed in the wrong column.
        shown = _shown(extension) if len(extension) <= 8 else f"of {len(extension)} characters"
        return f"extension {shown} must be 1-5 digits"
    if len(username) > MAX_USERNAME or any(_refused_char(char) for char in username):
        return (
            f"username of agent {agent_id} must be at most {MAX_USERNAME} printable characters "
            "(no control or Unicode format characters)"
        )
    return None


def _refused_char(char: str) -> bool:
    return unicodedata.category(char) in _REFUSED_CATEGORIES


def _shown(value: str) -> str:
    """A value for an error message: quoted, with refused characters escaped, and cut short."""
    shown = "".join(f"\\u{ord(char):04x}" if _refused_char(char) else char for char in value[:40])
    return repr(shown + ("..." if len(value) > 40 else ""))


def guarded_username(username: str) -> str:
    """A username as ``export`` writes it: one a spreadsheet would run as a formula gets a ``'``
    prefix (Connect user names cannot contain ``'``, so ``import`` takes the prefix off again)."""
    return "'" + username if username.startswith(FORMULA_TRIGGERS) else username


def unguarded_username(username: str) -> str:
    if username.startswith("'") and username[1:].startswith(FORMULA_TRIGGERS):
        return username[1:]
    return username


def parse_entries(
    rows: Iterable[tuple[int, Mapping[str, str]]],
) -> tuple[list[NumberedEntry], list[LineProblem]]:
    """Validate numbered rows (``agentId``, ``extension``, optional ``username``) as one set."""
    entries: list[NumberedEntry] = []
    problems: list[LineProblem] = []
    for line, row in rows:
        agent_id = (row.get("agentId") or "").strip()
        extension = canonical_extension(row.get("extension") or "")
        username = unguarded_username((row.get("username") or "").strip())
        problem = entry_problem(agent_id, extension, username)
        if problem is not None:
            problems.append(LineProblem(line, problem))
        else:
            entries.append(NumberedEntry(line, DirectoryEntry(agent_id, extension, username)))
    problems.extend(_duplicates(entries))
    return entries, sorted(problems, key=lambda problem: problem.line)


def _duplicates(entries: Sequence[NumberedEntry]) -> list[LineProblem]:
    problems: list[LineProblem] = []
    first_of_agent: dict[str, int] = {}
    holder_of_extension: dict[str, NumberedEntry] = {}  # by clash key: leading zeros ignored
    for item in entries:
        agent_id, extension = item.entry.agent_id, item.entry.extension
        if agent_id in first_of_agent:
            problems.append(
                LineProblem(item.line, f"agent {agent_id} already appears on line {first_of_agent[agent_id]}")
            )
            continue
        first_of_agent[agent_id] = item.line
        holder = holder_of_extension.get(extension_clash_key(extension))
        if holder is not None:
            same = "" if holder.entry.extension == extension else f" (as {holder.entry.extension})"
            problems.append(
                LineProblem(
                    item.line,
                    f"extension {extension} is given to agent {holder.entry.agent_id} on line {holder.line}"
                    f"{same} and to agent {agent_id} here",
                )
            )
            continue
        holder_of_extension[extension_clash_key(extension)] = item
    return problems


def table_conflicts(entries: Sequence[NumberedEntry], current: Iterable[DirectoryEntry]) -> list[LineProblem]:
    """Extensions the table already gives to another agent that keeps it after this import (leading
    zeros ignored: ``0417`` in the file clashes with ``417`` in the table)."""
    new_extension = {item.entry.agent_id: item.entry.extension for item in entries}
    holders: dict[str, list[DirectoryEntry]] = defaultdict(list)
    for entry in current:
        if entry.extension:
            holders[extension_clash_key(entry.extension)].append(entry)
    problems: list[LineProblem] = []
    for item in entries:
        agent_id, extension = item.entry.agent_id, item.entry.extension
        key = extension_clash_key(extension)
        for other in holders.get(key, ()):
            kept = new_extension.get(other.agent_id, other.extension)
            keeps_it = extension_clash_key(kept) == key
            if other.agent_id != agent_id and keeps_it:
                same = "" if kept == extension else f" as {kept}"
                problems.append(
                    LineProblem(
                        item.line,
                        f"extension {extension} is already held by agent {other.agent_id}{same}; "
                        f"cannot assign it to agent {agent_id}",
                    )
                )
    return problems


def decode_csv(data: bytes) -> str:
    """A directory file's bytes as text: UTF-8, a BOM allowed. Anything else rejects the whole file,
    naming the first line that is not UTF-8 (and not echoing it)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DirectoryRejected(
            "nothing imported: the file is not UTF-8 text", [LineProblem(line, "is not valid UTF-8")]
        ) from None


def read_csv(source: TextIO) -> tuple[list[tuple[int, dict[str, str]]], list[LineProblem]]:
    """Rows of a directory CSV with their line numbers, and the lines that do not fit the header.
    A bad header, an unclosed quote or a field over 128 KiB rejects the whole file."""
    reader = csv.reader(source, strict=True)
    records: list[tuple[int, list[str]]] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise DirectoryRejected(
                "nothing imported: the file is not valid CSV", [LineProblem(start, _csv_problem(error))]
            ) from None
        if any(len(field) > MAX_FIELD for field in record):
            raise DirectoryRejected(
                "nothing imported: the file is not valid CSV",
                [LineProblem(start, f"has a field over {MAX_FIELD // 1024} KiB")],
            )
        records.append((start, record))
    if not records:
        raise DirectoryRejected("nothing imported: the file is empty", [LineProblem(1, "no header")])
    header_line, raw_header = records[0]
    header = [name.strip() for name in raw_header]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    repeated = [name for name in dict.fromkeys(header) if header.count(name) > 1]
    if missing or unknown or repeated:
        problem = "header must be agentId,extension,username"
        if missing:
            problem += f"; missing {', '.join(missing)}"
        if unknown:
            problem += f"; unknown {', '.join(_shown(name) for name in unknown)}"
        if repeated:
            problem += f"; repeated {', '.join(repeated)}"
        raise DirectoryRejected(
            "nothing imported: the file's header is wrong", [LineProblem(header_line, problem)]
        )
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[LineProblem] = []
    for line, record in records[1:]:
        if len(record) > len(header):
            problems.append(LineProblem(line, "has more fields than the header"))
        elif any(value.strip() for value in record):  # blank lines are skipped
            row = dict.fromkeys(header, "")
            row.update(zip(header, record, strict=False))
            rows.append((line, row))
    return rows, problems


def _csv_problem(error: csv.Error) -> str:
    message = str(error)
    if "field larger than field limit" in message:
        return f"has a field over {MAX_FIELD // 1024} KiB"
    if "unexpected end of data" in message:
        return "has a quote that is never closed"
    if "NUL" in message:
        return "contains a NUL character"
    return "is not valid CSV (a quote in an unquoted field, or text after a closing quote)"


# --- operations ------------------------------------------------------------------------------------


def import_entries(
    table: DirectoryAdmin,
    rows: Sequence[tuple[int, Mapping[str, str]]],
    problems: Sequence[LineProblem] = (),
) -> int:
    """All or nothing: every row is checked (format, duplicates, the table's holders) before any
    write; each write is conditional on the item as it was checked, and a write that fails part-way
    is rolled back."""
    entries, row_problems = parse_entries(rows)
    problems = [*problems, *row_problems]
    current = list(table.scan())
    problems += table_conflicts(entries, current)
    if problems:
        problems.sort(key=lambda problem: problem.line)
        raise DirectoryRejected(f"nothing imported: {len(problems)} problem(s)", problems)
    checked = {entry.agent_id: entry for entry in current}
    changes = [EntryChange(item.entry, checked.get(item.entry.agent_id)) for item in entries]
    try:
        table.apply_changes(changes)
    except ChangesNotApplied as failure:
        raise import_failure(failure, entries) from None
    return len(entries)


def import_failure(failure: ChangesNotApplied, entries: Sequence[NumberedEntry]) -> CommandError:
    """What the user needs to know about a write that failed: whether the directory is unchanged,
    and if not, exactly how much of the file is written."""
    failed = f"writing entries {failure.failed.start + 1}-{failure.failed.stop} of {failure.total} failed"
    if failure.not_restored:
        count = len(failure.not_restored)
        shown = ", ".join(failure.not_restored[:10]) + (", ..." if count > 10 else "")
        return CommandError(
            f"import incomplete: {failed} ({failure.reason}), and rolling back failed: "
            f"{count} of the file's {failure.total} entries are written ({shown}), the rest are not. "
            "Running the same import again is safe: it checks the table afresh and writes the rest."
        )
    undone = (
        f"the {failure.rolled_back} entries already written were rolled back"
        if failure.rolled_back
        else "nothing was written"
    )
    if failure.changed_agents:
        line_of = {item.entry.agent_id: item.line for item in entries}
        return DirectoryRejected(
            f"nothing imported: the table changed after the file was checked ({failed}); "
            f"{undone}, so the import left the directory unchanged. Check the agents below and import again",
            [
                LineProblem(line_of[agent], f"agent {agent} changed in the table after the file was checked")
                for agent in failure.changed_agents
            ],
        )
    return CommandError(
        f"nothing imported: {failed} ({failure.reason}); {undone}, the directory is unchanged"
    )


def import_csv(table: DirectoryAdmin, source: TextIO | bytes) -> int:
    """``source``: the file's bytes (decoded strictly here) or text."""
    if isinstance(source, bytes):
        source = io.StringIO(decode_csv(source), newline="")
    rows, problems = read_csv(source)
    return import_entries(table, rows, problems)


def export_csv(table: DirectoryAdmin, output: IO[str]) -> int:
    """Every agent with an extension, ordered by extension, with a header: re-importable as is."""
    entries = sorted((entry for entry in table.scan() if entry.extension), key=_export_order)
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        writer.writerow((entry.agent_id, entry.extension, guarded_username(entry.username)))
    return len(entries)


def _export_order(entry: DirectoryEntry) -> tuple[int, str, str]:
    extension = canonical_extension(entry.extension)
    return (int(extension) if is_extension(extension) else -1, entry.extension, entry.agent_id)


def set_extension(table: DirectoryAdmin, agent_id: str, extension: str, username: str | None = None) -> str:
    """Give ``agent_id`` the canonical form of ``extension``, which is returned. Refused when another
    agent holds it, or holds it with other leading zeros."""
    problem = entry_problem(agent_id, extension, username or "")
    if problem is not None:
        raise CommandError(problem)
    extension = canonical_extension(extension)
    others = [
        f"{entry.agent_id}" + ("" if entry.extension == extension else f" (as {entry.extension})")
        for form in zero_padded_forms(extension)
        for entry in table.find_by_extension(form, limit=10)
        if entry.agent_id != agent_id
    ]
    if others:
        raise CommandError(
            f"extension {extension} is already held by agent {', '.join(others)}; "
            f"cannot assign it to agent {agent_id}"
        )
    table.set_extension(agent_id, extension, username)
    return extension


def remove_agent(table: DirectoryAdmin, agent_id: str) -> None:
    if not is_agent_id(agent_id):
        raise CommandError(f"agentId {agent_id!r} is not an agent id")
    if not table.remove_extension(agent_id):
        raise CommandError(f"agent {agent_id} is not in the directory table {table.table_name}")


def seed_directory(
    dynamodb_client: DynamoDBClient, table_name: str, entries: Iterable[Mapping[str, str]]
) -> int:
    """Write directory entries (mappings with ``agentId``, ``extension``, optional ``username``) with
    the same checks as ``import``; returns how many were written. For demos and tests."""
    rows = [(number, entry) for number, entry in enumerate(entries, start=1)]
    return import_entries(DirectoryAdmin(dynamodb_client, table_name), rows)
