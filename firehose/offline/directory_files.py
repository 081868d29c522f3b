"""Provider directory management: import / export / set / remove, against the embedded AWS or real AWS.

Rules the voicemail solution does not enforce and we do: an extension is 1-5 digits and belongs to at
most one agent. ``import`` validates the whole file (and the table's current holders) before writing
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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from firehose.cli.errors import CommandError
from lookup.directory import DirectoryEntry
from lookup.directory_admin import ChangesNotApplied, DirectoryAdmin, EntryChange
from lookup.identifiers import is_agent_id, is_extension

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COLUMNS = ("agentId", "extension", "username")
REQUIRED_COLUMNS = ("agentId", "extension")
MAX_USERNAME = 128


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
    if not is_extension(extension):
        return f"extension {extension!r} must be 1-5 digits"
    if len(username) > MAX_USERNAME or any(ord(char) < 32 for char in username):
        return f"username of agent {agent_id} must be at most {MAX_USERNAME} printable characters"
    return None


def parse_entries(
    rows: Iterable[tuple[int, Mapping[str, str]]],
) -> tuple[list[NumberedEntry], list[LineProblem]]:
    """Validate numbered rows (``agentId``, ``extension``, optional ``username``) as one set."""
    entries: list[NumberedEntry] = []
    problems: list[LineProblem] = []
    for line, row in rows:
        agent_id = (row.get("agentId") or "").strip()
        extension = (row.get("extension") or "").strip()
        username = (row.get("username") or "").strip()
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
    holder_of_extension: dict[str, NumberedEntry] = {}
    for item in entries:
        agent_id, extension = item.entry.agent_id, item.entry.extension
        if agent_id in first_of_agent:
            problems.append(
                LineProblem(item.line, f"agent {agent_id} already appears on line {first_of_agent[agent_id]}")
            )
            continue
        first_of_agent[agent_id] = item.line
        holder = holder_of_extension.get(extension)
        if holder is not None:
            problems.append(
                LineProblem(
                    item.line,
                    f"extension {extension} is given to agent {holder.entry.agent_id} on line {holder.line} "
                    f"and to agent {agent_id} here",
                )
            )
            continue
        holder_of_extension[extension] = item
    return problems


def table_conflicts(entries: Sequence[NumberedEntry], current: Iterable[DirectoryEntry]) -> list[LineProblem]:
    """Extensions the table already gives to another agent that keeps it after this import."""
    new_extension = {item.entry.agent_id: item.entry.extension for item in entries}
    holders: dict[str, list[str]] = defaultdict(list)
    for entry in current:
        if entry.extension:
            holders[entry.extension].append(entry.agent_id)
    problems: list[LineProblem] = []
    for item in entries:
        agent_id, extension = item.entry.agent_id, item.entry.extension
        for other in holders.get(extension, ()):
            keeps_it = new_extension.get(other, extension) == extension
            if other != agent_id and keeps_it:
                problems.append(
                    LineProblem(
                        item.line,
                        f"extension {extension} is already held by agent {other}; "
                        f"cannot assign it to agent {agent_id}",
                    )
                )
    return problems


def read_csv(source: TextIO) -> tuple[list[tuple[int, dict[str, str]]], list[LineProblem]]:
    """Rows of a directory CSV with their line numbers, and the lines that do not fit the header.
    A bad header rejects the whole file."""
    reader = csv.DictReader(source)
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown:
        problem = "header must be agentId,extension,username"
        if missing:
            problem += f"; missing {', '.join(missing)}"
        if unknown:
            problem += f"; unknown {', '.join(unknown)}"
        raise DirectoryRejected("nothing imported: the file's header is wrong", [LineProblem(1, problem)])
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[LineProblem] = []
    for row in reader:
        if None in row:
            problems.append(LineProblem(reader.line_num, "has more fields than the header"))
        elif any((value or "").strip() for value in row.values()):  # blank lines are skipped
            rows.append((reader.line_num, {key: value or "" for key, value in row.items()}))
    return rows, problems


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


def import_csv(table: DirectoryAdmin, source: TextIO) -> int:
    rows, problems = read_csv(source)
    return import_entries(table, rows, problems)


def export_csv(table: DirectoryAdmin, output: TextIO) -> int:
    """Every agent with an extension, ordered by extension, with a header: re-importable as is."""
    entries = sorted((entry for entry in table.scan() if entry.extension), key=_export_order)
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        writer.writerow((entry.agent_id, entry.extension, entry.username))
    return len(entries)


def _export_order(entry: DirectoryEntry) -> tuple[int, str, str]:
    return (int(entry.extension) if entry.extension.isdigit() else -1, entry.extension, entry.agent_id)


def set_extension(table: DirectoryAdmin, agent_id: str, extension: str, username: str | None = None) -> None:
    problem = entry_problem(agent_id, extension, username or "")
    if problem is not None:
        raise CommandError(problem)
    others = [
        entry.agent_id for entry in table.find_by_extension(extension, limit=10) if entry.agent_id != agent_id
    ]
    if others:
        raise CommandError(
            f"extension {extension} is already held by agent {', '.join(others)}; "
            f"cannot assign it to agent {agent_id}"
        )
    table.set_extension(agent_id, extension, username)


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
