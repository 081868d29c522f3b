"""``ctr-billing directory`` against the embedded AWS (moto server over HTTP), as a user runs it:
import / export / set / remove and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.awsrequest import AWSResponse, HTTPHeaders

from firehose.cli.main import main
from firehose.offline.directory_files import DirectoryRejected, seed_directory
from lookup.directory import DirectoryEntry
from lookup.directory_admin import DirectoryAdmin
from tests.support.voicemail_solution import connect_sync

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytest_plugins = ["tests.support.lookup_fixtures"]
pytestmark = pytest.mark.integration

A1 = "agent-0001"
A2 = "agent-0002"
A3 = "agent-0003"


@pytest.fixture
def cli(aws_env: str, directory_table: str, capsys: pytest.CaptureFixture[str]) -> Any:
    """Runs ``ctr-billing directory ...`` against the test table; returns (status, stdout, stderr)."""

    def run(*args: str, table: str | None = directory_table) -> tuple[int, str, str]:
        options = ["--endpoint-url", aws_env] + (["--table", table] if table else [])
        status = main(["directory", *args, *options])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture
def table(dynamodb: DynamoDBClient, directory_table: str) -> DirectoryAdmin:
    return DirectoryAdmin(dynamodb, directory_table)


@pytest.fixture
def cli_session(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """The boto3 session the CLI's clients come from: handlers registered on its events (e.g.
    ``before-call.dynamodb.TransactWriteItems``) see, and may answer, every call the CLI makes."""
    session = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return session


def aws_error(code: str, status: int = 400, **members: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """A response that makes botocore raise ``ClientError`` with this code, as DynamoDB's would."""
    parsed = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse("http://injected", status, HTTPHeaders(), None), {**parsed, **members}


def on_calls(numbers: set[int], action: Callable[[], Any]) -> Callable[..., Any]:
    """A ``before-call`` handler that runs ``action`` on the given calls (1-based) and lets the others
    through; what ``action`` returns (a response, or None to send the real request) is the answer."""
    calls = 0

    def handler(**_: Any) -> Any:
        nonlocal calls
        calls += 1
        return action() if calls in numbers else None

    return handler


def raw_items(dynamodb: DynamoDBClient, table_name: str) -> dict[str, dict[str, Any]]:
    """Every item of the table with all its attributes, by agent id."""
    items: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True):
        for item in page["Items"]:
            items[item["agentId"]["S"]] = item
    return items


def many_rows(count: int) -> str:
    """A directory CSV of ``count`` agents (agent-0000 on line 2 ...), extensions 1000 + n."""
    return "agentId,extension,username\n" + "".join(
        f"agent-{n:04d},{1000 + n},dr.{n}\n" for n in range(count)
    )


def entries(table: DirectoryAdmin) -> set[DirectoryEntry]:
    return set(table.scan())


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "directory.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- import / export -------------------------------------------------------------------------------


def test_import_then_export_round_trips(cli: Any, table: DirectoryAdmin, tmp_path: Path) -> None:
    # GIVEN a directory CSV (username optional per line)
    source = write(tmp_path, f"agentId,extension,username\n{A2},202,dr.b\n{A1},101,dr.a\n\n{A3},7,\n")
    # WHEN it is imported
    status, _, err = cli("import", source)
    # THEN every entry is in the table
    assert status == 0, err
    assert "imported 3 entries" in err
    assert entries(table) == {
        DirectoryEntry(A1, "101", "dr.a"),
        DirectoryEntry(A2, "202", "dr.b"),
        DirectoryEntry(A3, "7", ""),
    }
    # AND the export is the same directory, ordered by extension, with a header
    status, out, _ = cli("export")
    assert status == 0
    assert out == f"agentId,extension,username\n{A3},7,\n{A1},101,dr.a\n{A2},202,dr.b\n"
    # AND re-importing the export changes nothing
    assert cli("import", write(tmp_path, out))[0] == 0
    assert len(entries(table)) == 3


def test_export_to_a_file(cli: Any, table: DirectoryAdmin, tmp_path: Path) -> None:
    table.set_extension(A1, "11", "dr.a")
    target = tmp_path / "out.csv"
    assert cli("export", "--output", str(target))[0] == 0
    assert target.read_text() == f"agentId,extension,username\n{A1},11,dr.a\n"


def test_import_of_more_than_one_transaction(cli: Any, table: DirectoryAdmin, tmp_path: Path) -> None:
    rows = "".join(f"agent-{n:04d},{1000 + n},\n" for n in range(250))
    assert cli("import", write(tmp_path, "agentId,extension,username\n" + rows))[0] == 0
    assert len(entries(table)) == 250


def test_import_rejects_every_bad_line_and_writes_nothing(
    cli: Any, table: DirectoryAdmin, tmp_path: Path
) -> None:
    # GIVEN the table already gives 500 to agent-0009
    table.set_extension("agent-0009", "500")
    before = entries(table)
    source = write(
        tmp_path,
        "agentId,extension,username\n"
        f"{A1},101,dr.a\n"  # line 2: fine
        f"{A2},12345678,dr.b\n"  # line 3: too long
        "not an id,102,\n"  # line 4: bad agent id
        f"{A1},103,\n"  # line 5: agent twice
        f"{A3},101,\n"  # line 6: extension twice in the file
        "agent-0004,500,\n"  # line 7: held by agent-0009 in the table
        "agent-0005,104,x,extra\n"  # line 8: more fields than the header
        "agent-0006,,\n",  # line 9: no extension
    )
    # WHEN it is imported
    status, _, err = cli("import", source)
    # THEN nothing is written and every bad line is reported with its number
    assert status == 2
    assert entries(table) == before
    assert "nothing imported: 7 problem(s)" in err
    for expected in (
        "line 3: extension '12345678' must be 1-5 digits",
        "line 4: agentId 'not an id' is not an agent id",
        f"line 5: agent {A1} already appears on line 2",
        f"line 6: extension 101 is given to agent {A1} on line 2 and to agent {A3} here",
        "line 7: extension 500 is already held by agent agent-0009; cannot assign it to agent agent-0004",
        "line 8: has more fields than the header",
        "line 9: extension '' must be 1-5 digits",
    ):
        assert expected in err
    assert "  line 2:" not in err


def test_import_may_swap_extensions_between_agents(cli: Any, table: DirectoryAdmin, tmp_path: Path) -> None:
    table.set_extension(A1, "101")
    table.set_extension(A2, "202")
    assert cli("import", write(tmp_path, f"agentId,extension\n{A1},202\n{A2},101\n"))[0] == 0
    assert {(e.agent_id, e.extension) for e in entries(table)} == {(A1, "202"), (A2, "101")}


@pytest.mark.parametrize(
    "header", ["agent,extension,username", "agentId,username", "agentId,extension,email", ""]
)
def test_import_refuses_a_wrong_header(cli: Any, table: DirectoryAdmin, tmp_path: Path, header: str) -> None:
    status, _, err = cli("import", write(tmp_path, f"{header}\n{A1},101,dr.a\n"))
    assert status == 2
    assert "line 1: header must be agentId,extension,username" in err
    assert entries(table) == set()


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    assert err.startswith("ctr-billing: ")
    return err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # issue 13 item 11: invalid UTF-8 and a field over 128 KiB were tracebacks
        (
            b"agentId,extension,username\nagent-0001,101,dr.a\nagent-0002,102,dr.\xff\n",
            "line 3: is not valid UTF-8",
        ),
        (
            b"agentId,extension,username\nagent-0001,101," + b"x" * (129 * 1024) + b"\n",
            "line 2: has a field over 128 KiB",
        ),
        (
            b'agentId,extension,username\nagent-0001,101,"' + b"x" * (129 * 1024) + b'"\n',
            "line 2: has a field over 128 KiB",
        ),
        # item 12: a repeated column and an unclosed quote were taken silently
        (
            b"agentId,extension,extension\nagent-0001,101,102\n",
            "line 1: header must be agentId,extension,username; repeated extension",
        ),
        (
            b'agentId,extension,username\nagent-0001,101,dr.a\nagent-0002,"102,dr.b\nagent-0003,103,dr.c\n',
            "line 3: has a quote that is never closed",
        ),
        (b"agentId,extension,username\nagent-0001,101,dr.a\nagent-0002,102,dr\x00b\n", "line 3"),
    ],
)
def test_import_refuses_a_file_that_is_not_strict_csv_with_a_one_line_reason(
    cli: Any, table: DirectoryAdmin, tmp_path: Path, content: bytes, problem: str
) -> None:
    source = tmp_path / "directory.csv"
    source.write_bytes(content)
    status, _, err = cli("import", str(source))
    assert status == 2
    assert problem in _one_line_error(err)
    assert len(err) < 1000  # the bad field is not echoed
    assert entries(table) == set()
    assert source.read_bytes() == content


@pytest.mark.parametrize("bad", ["\u202e", "\u200b", "\u2028", "\x7f", "\x85"])
def test_import_and_set_refuse_usernames_with_format_or_control_characters(
    cli: Any, table: DirectoryAdmin, tmp_path: Path, bad: str
) -> None:
    # item 12: U+202E (right-to-left override) shows "dr.evil" reversed to whoever reads the export
    status, _, err = cli("import", write(tmp_path, f"agentId,extension,username\n{A1},101,dr.{bad}live\n"))
    assert status == 2
    assert "line 2: username of agent agent-0001 must be at most 128 printable characters" in err
    status, _, err = cli("set", A1, "101", "--username", f"dr.{bad}live")
    assert status == 2
    assert "no control or Unicode format characters" in err
    assert entries(table) == set()


def test_export_guards_usernames_a_spreadsheet_would_run_and_import_takes_the_guard_off(
    cli: Any, table: DirectoryAdmin, tmp_path: Path
) -> None:
    # GIVEN usernames (as the voicemail sync may write them from Connect) that start like formulas
    table.set_extension(A1, "101", "=HYPERLINK(1)")
    table.set_extension(A2, "102", "+dr")
    table.set_extension(A3, "103", "dr=a")
    # WHEN exported  THEN each formula-like cell gets a ' prefix
    status, out, _ = cli("export")
    assert status == 0
    assert out == f"agentId,extension,username\n{A1},101,'=HYPERLINK(1)\n{A2},102,'+dr\n{A3},103,dr=a\n"
    # AND re-importing the export restores the names as they were
    assert cli("import", write(tmp_path, out))[0] == 0
    assert table.get(A1) == DirectoryEntry(A1, "101", "=HYPERLINK(1)")
    assert table.get(A2) == DirectoryEntry(A2, "102", "+dr")


def test_a_failed_export_leaves_the_previous_file_as_it_was(
    cli: Any, table: DirectoryAdmin, tmp_path: Path, cli_session: boto3.Session
) -> None:
    # GIVEN a backup from yesterday, and a scan that fails today
    backup = tmp_path / "backup.csv"
    backup.write_text(f"agentId,extension,username\n{A1},101,dr.a\n")
    table.set_extension(A1, "101", "dr.a")
    cli_session.events.register(
        "before-call.dynamodb.Scan", lambda **_: aws_error("InternalServerError", 500)
    )
    # WHEN the export fails
    status, _, err = cli("export", "--output", str(backup))
    # THEN it says so in one line and the backup is untouched (issue 13 item 8: it was left at 0 bytes)
    assert status == 2
    _one_line_error(err)
    assert backup.read_text() == f"agentId,extension,username\n{A1},101,dr.a\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["backup.csv"]


@pytest.mark.parametrize("target", ["/dev/full", "folder"])
def test_export_to_an_unwritable_place_is_a_one_line_error(
    cli: Any, table: DirectoryAdmin, tmp_path: Path, target: str
) -> None:
    table.set_extension(A1, "101", "dr.a")
    if target == "folder":
        target = str(tmp_path)
    status, _, err = cli("export", "--output", target)
    assert status == 2
    assert target in _one_line_error(err)


# --- extensions in the canonical form (DESIGN §3, issue 13 item 13) ---------------------------------


def test_set_stores_unicode_digits_as_ascii_keeping_leading_zeros(cli: Any, table: DirectoryAdmin) -> None:
    status, _, err = cli("set", A1, "\u096a\u096a\u0967\u096d")  # Devanagari 4417
    assert status == 0, err
    assert "now has extension 4417" in err
    assert cli("set", A2, "\u0660\u0664\u0661\u0666")[0] == 0  # Arabic-Indic 0416
    assert {(e.agent_id, e.extension) for e in entries(table)} == {(A1, "4417"), (A2, "0416")}


@pytest.mark.parametrize(
    ("held", "asked"), [("417", "0417"), ("0417", "417"), ("00417", "\u0660\u0664\u0661\u0667"), ("0", "00")]
)
def test_set_refuses_an_extension_equal_to_another_agents_but_for_leading_zeros(
    cli: Any, table: DirectoryAdmin, held: str, asked: str
) -> None:
    table.set_extension(A1, held)
    status, _, err = cli("set", A2, asked)
    assert status == 2
    assert f"is already held by agent {A1} (as {held}); cannot assign it to agent {A2}" in err
    assert table.get(A2) is None
    # the holder itself may change its zeros
    assert cli("set", A1, asked)[0] == 0


def test_import_refuses_extensions_equal_but_for_leading_zeros(
    cli: Any, table: DirectoryAdmin, tmp_path: Path
) -> None:
    table.set_extension("agent-0009", "500")
    source = write(
        tmp_path,
        "agentId,extension,username\n"
        f"{A1},417,\n"
        f"{A2},0417,\n"  # line 3: clashes with line 2
        f"{A3},0500,\n"  # line 4: clashes with the table's 500
        "agent-0004,\u0664\u0664\u0661\u0667,\n",  # line 5: Arabic-Indic 4417: fine
    )
    status, _, err = cli("import", source)
    assert status == 2
    assert f"line 3: extension 0417 is given to agent {A1} on line 2 (as 417) and to agent {A2} here" in err
    assert (
        f"line 4: extension 0500 is already held by agent agent-0009 as 500; cannot assign it to agent {A3}"
        in err
    )
    assert "line 5" not in err
    # AND without the clashes, the Unicode digits are stored as ASCII
    source = write(
        tmp_path, "agentId,extension,username\nagent-0004,\u0664\u0664\u0661\u0667,\nagent-0009,0500,\n"
    )
    assert cli("import", source)[0] == 0
    assert table.get("agent-0004") == DirectoryEntry("agent-0004", "4417", "")
    assert table.get("agent-0009") == DirectoryEntry("agent-0009", "0500", "")


def test_import_of_a_missing_file(cli: Any, tmp_path: Path) -> None:
    status, _, err = cli("import", str(tmp_path / "nope.csv"))
    assert status == 2
    assert "nope.csv" in err


@pytest.fixture
def populated(dynamodb: DynamoDBClient, directory_table: str) -> dict[str, dict[str, Any]]:
    """A table the 250-row file touches in every way: an agent it moves (with voicemail settings and a
    username it replaces), a voicemail-only item it gives an extension, an agent of the second
    transaction, and an agent outside the file. Returns the items as they are."""
    for item in (
        {
            "agentId": {"S": "agent-0000"},
            "extension": {"S": "9000"},
            "username": {"S": "dr.old"},
            "transcribeVoicemail": {"BOOL": True},
        },
        {"agentId": {"S": "agent-0001"}, "encryptVoicemail": {"BOOL": False}},
        {"agentId": {"S": "agent-0150"}, "extension": {"S": "9150"}},
        {"agentId": {"S": "agent-0900"}, "extension": {"S": "9900"}, "username": {"S": "dr.other"}},
    ):
        dynamodb.put_item(TableName=directory_table, Item=item)
    return raw_items(dynamodb, directory_table)


@pytest.mark.parametrize(("code", "status"), [("ValidationException", 400), ("InternalServerError", 500)])
def test_import_failing_in_a_later_transaction_is_rolled_back(
    cli: Any,
    cli_session: boto3.Session,
    dynamodb: DynamoDBClient,
    directory_table: str,
    populated: dict[str, dict[str, Any]],
    tmp_path: Path,
    code: str,
    status: int,
) -> None:
    # GIVEN a 250-row file (three transactions) and a table with entries the first transaction changes
    source = write(tmp_path, many_rows(250))
    # AND DynamoDB fails the second transaction (a 500's outcome is unknown, so it is undone too)
    transactions = on_calls({2}, lambda: aws_error(code, status))
    cli_session.events.register("before-call.dynamodb.TransactWriteItems", transactions)
    # WHEN the file is imported
    status_code, _, err = cli("import", source)
    # THEN the import fails, saying so and that nothing of it remains
    assert status_code == 2
    assert (
        "nothing imported: writing entries 101-200 of 250 failed "
        f"(DynamoDB TransactWriteItems on table {directory_table} failed: {code}); "
        "the 100 entries already written were rolled back, the directory is unchanged"
    ) in err
    # AND the table is exactly as before: moved extensions, usernames and voicemail settings restored,
    # created items deleted, and the third transaction never sent
    assert raw_items(dynamodb, directory_table) == populated


@pytest.mark.parametrize(
    ("agent", "line", "transaction", "rows"),
    [
        ("agent-0150", 152, 2, 250),  # held 9150 when checked
        ("agent-0160", 162, 2, 250),  # absent when checked
        ("agent-0000", 2, 1, 5),  # a one-transaction import
    ],
)
def test_import_refuses_to_overwrite_a_concurrent_change(
    cli: Any,
    cli_session: boto3.Session,
    dynamodb: DynamoDBClient,
    directory_table: str,
    populated: dict[str, dict[str, Any]],
    tmp_path: Path,
    agent: str,
    line: int,
    transaction: int,
    rows: int,
) -> None:
    # GIVEN a file that was checked against the table
    source = write(tmp_path, many_rows(rows))

    # AND another administrator gives one of its agents another extension before that agent is written
    def concurrent_set() -> None:
        dynamodb.update_item(
            TableName=directory_table,
            Key={"agentId": {"S": agent}},
            UpdateExpression="SET extension = :e",
            ExpressionAttributeValues={":e": {"S": "777"}},
        )

    cli_session.events.register(
        "before-call.dynamodb.TransactWriteItems", on_calls({transaction}, concurrent_set)
    )
    # WHEN the file is imported
    status, _, err = cli("import", source)
    # THEN it is refused, naming the agent and its line, and nothing of the file stays written
    assert status == 2
    assert "nothing imported: the table changed after the file was checked" in err
    assert "so the import left the directory unchanged" in err
    assert f"  line {line}: agent {agent} changed in the table after the file was checked" in err
    # AND the other administrator's change is kept, everything else is as before
    expected = dict(populated)
    expected[agent] = {**populated.get(agent, {"agentId": {"S": agent}}), "extension": {"S": "777"}}
    assert raw_items(dynamodb, directory_table) == expected


def test_import_whose_rollback_fails_says_exactly_what_is_written(
    cli: Any, cli_session: boto3.Session, table: DirectoryAdmin, tmp_path: Path
) -> None:
    # GIVEN an empty table, a 250-row file, a second transaction that fails,
    # and a rollback whose first three deletes fail too
    source = write(tmp_path, many_rows(250))
    failing_transaction = on_calls({2}, lambda: aws_error("ValidationException"))
    failing_deletes = on_calls({1, 2, 3}, lambda: aws_error("InternalServerError", 500))
    cli_session.events.register("before-call.dynamodb.TransactWriteItems", failing_transaction)
    cli_session.events.register("before-call.dynamodb.DeleteItem", failing_deletes)
    # WHEN the file is imported
    status, _, err = cli("import", source)
    # THEN the failure says how many entries are written, which ones, and that a re-run is safe
    assert status == 2
    assert "import incomplete: writing entries 101-200 of 250 failed" in err
    assert (
        "3 of the file's 250 entries are written (agent-0000, agent-0001, agent-0002), the rest are not"
    ) in err
    assert "Running the same import again is safe" in err
    assert entries(table) == {DirectoryEntry(f"agent-{n:04d}", str(1000 + n), f"dr.{n}") for n in range(3)}
    # AND running the same import again (DynamoDB healthy again) writes the whole file
    cli_session.events.unregister("before-call.dynamodb.TransactWriteItems", failing_transaction)
    cli_session.events.unregister("before-call.dynamodb.DeleteItem", failing_deletes)
    status, _, err = cli("import", source)
    assert status == 0, err
    assert len(entries(table)) == 250


def test_import_retries_a_throttled_transaction(
    cli: Any, cli_session: boto3.Session, table: DirectoryAdmin, tmp_path: Path
) -> None:
    # GIVEN DynamoDB throttles the second transaction once
    throttled = aws_error(
        "TransactionCanceledException", CancellationReasons=[{"Code": "None"}, {"Code": "ThrottlingError"}]
    )
    calls: list[str] = []
    cli_session.events.register("before-call.dynamodb.TransactWriteItems", lambda **_: calls.append("call"))
    cli_session.events.register("before-call.dynamodb.TransactWriteItems", on_calls({2}, lambda: throttled))
    # WHEN a 250-row file is imported
    status, _, err = cli("import", write(tmp_path, many_rows(250)))
    # THEN the transaction is retried and the whole file is written
    assert status == 0, err
    assert len(calls) == 4
    assert len(entries(table)) == 250


# --- set / remove ----------------------------------------------------------------------------------


def test_set_adds_and_changes_an_extension_keeping_other_attributes(
    cli: Any, table: DirectoryAdmin, dynamodb: DynamoDBClient, directory_table: str
) -> None:
    # GIVEN a voicemail-solution item for A1 with its own settings
    dynamodb.put_item(
        TableName=directory_table,
        Item={"agentId": {"S": A1}, "extension": {"S": "100"}, "transcribeVoicemail": {"BOOL": True}},
    )
    # WHEN set gives A1 another extension and a username, and A2 a first one
    assert cli("set", A1, "4417", "--username", "dr.okafor")[0] == 0
    assert cli("set", A2, "12")[0] == 0
    # THEN both are in the directory and the voicemail settings survived
    assert entries(table) == {DirectoryEntry(A1, "4417", "dr.okafor"), DirectoryEntry(A2, "12", "")}
    item = dynamodb.get_item(TableName=directory_table, Key={"agentId": {"S": A1}})["Item"]
    assert item["transcribeVoicemail"] == {"BOOL": True}
    # AND setting the same extension again is fine (idempotent)
    assert cli("set", A1, "4417")[0] == 0
    assert table.get(A1) == DirectoryEntry(A1, "4417", "dr.okafor")


def test_set_refuses_an_extension_held_by_another_agent_naming_both(cli: Any, table: DirectoryAdmin) -> None:
    table.set_extension(A1, "4417")
    status, _, err = cli("set", A2, "4417")
    assert status == 2
    assert f"extension 4417 is already held by agent {A1}; cannot assign it to agent {A2}" in err
    assert table.get(A2) is None


@pytest.mark.parametrize(
    ("agent", "extension", "problem"),
    [
        (A1, "123456", "must be 1-5 digits"),
        (A1, "4a", "must be 1-5 digits"),
        ("a/b", "1", "is not an agent id"),
    ],
)
def test_set_refuses_malformed_input(
    cli: Any, table: DirectoryAdmin, agent: str, extension: str, problem: str
) -> None:
    status, _, err = cli("set", agent, extension)
    assert status == 2
    assert problem in err
    assert entries(table) == set()


def test_remove_deletes_a_plain_entry_and_keeps_voicemail_settings(
    cli: Any, table: DirectoryAdmin, dynamodb: DynamoDBClient, directory_table: str
) -> None:
    table.set_extension(A1, "101", "dr.a")
    dynamodb.put_item(
        TableName=directory_table,
        Item={"agentId": {"S": A2}, "extension": {"S": "202"}, "encryptVoicemail": {"BOOL": False}},
    )
    assert cli("remove", A1)[0] == 0
    assert cli("remove", A2)[0] == 0
    # A1 is gone entirely; A2 keeps its voicemail settings but no extension
    assert dynamodb.get_item(TableName=directory_table, Key={"agentId": {"S": A1}}).get("Item") is None
    item = dynamodb.get_item(TableName=directory_table, Key={"agentId": {"S": A2}})["Item"]
    assert "extension" not in item and item["encryptVoicemail"] == {"BOOL": False}
    assert table.find_by_extension("202") == []
    # AND the extension is free for someone else
    assert cli("set", A3, "202")[0] == 0


def test_remove_of_an_unknown_agent_is_refused(cli: Any, table: DirectoryAdmin, directory_table: str) -> None:
    status, _, err = cli("remove", A1)
    assert status == 2
    assert f"agent {A1} is not in the directory table {directory_table}" in err


@pytest.mark.parametrize("agent", ["a/b", "", ".dot-first", "x" * 129, "agent 1"])
def test_remove_refuses_a_malformed_agent_id_and_changes_nothing(
    cli: Any, dynamodb: DynamoDBClient, directory_table: str, populated: dict[str, dict[str, Any]], agent: str
) -> None:
    # GIVEN a populated directory
    # WHEN remove is given something that is not an agent id
    status, _, err = cli("remove", agent)
    # THEN it is refused with a clear message and the table is untouched
    assert status == 2
    assert f"ctr-billing: agentId {agent!r} is not an agent id" in err
    assert raw_items(dynamodb, directory_table) == populated


# --- configuration and AWS errors ------------------------------------------------------------------


def test_table_comes_from_directory_table_env(
    cli: Any, table: DirectoryAdmin, directory_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIRECTORY_TABLE", directory_table)
    assert cli("set", A1, "1", table=None)[0] == 0
    assert table.get(A1) == DirectoryEntry(A1, "1", "")


def test_no_table_is_a_clear_error(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIRECTORY_TABLE", raising=False)
    status, _, err = cli("export", table=None)
    assert status == 2
    assert "no directory table: pass --table or set DIRECTORY_TABLE" in err


def test_missing_table_is_reported_with_the_aws_error_code(cli: Any) -> None:
    status, _, err = cli("export", table="no-such-table")
    assert status == 2
    assert "ResourceNotFoundException" in err
    assert "Traceback" not in err


# --- seeding for demos -----------------------------------------------------------------------------


def test_seed_directory_applies_the_import_rules(
    dynamodb: DynamoDBClient, directory_table: str, table: DirectoryAdmin
) -> None:
    written = seed_directory(
        dynamodb,
        directory_table,
        [{"agentId": A1, "extension": "101", "username": "dr.a"}, {"agentId": A2, "extension": "102"}],
    )
    assert written == 2
    with pytest.raises(DirectoryRejected) as rejected:
        seed_directory(dynamodb, directory_table, [{"agentId": A3, "extension": "101"}])
    assert [str(problem) for problem in rejected.value.problems] == [
        f"line 1: extension 101 is already held by agent {A1}; cannot assign it to agent {A3}"
    ]
    assert entries(table) == {DirectoryEntry(A1, "101", "dr.a"), DirectoryEntry(A2, "102", "")}


# --- living beside the voicemail solution's nightly sync ------------------------------------------


def plain_items(dynamodb: DynamoDBClient, table_name: str) -> list[dict[str, Any]]:
    """The table's items as the voicemail solution's DocumentClient scan sees them (plain values)."""
    deserializer = TypeDeserializer()
    return [
        {name: deserializer.deserialize(value) for name, value in item.items()}
        for item in raw_items(dynamodb, table_name).values()
    ]


def run_connect_sync(
    dynamodb: DynamoDBClient, table_name: str, connect_users: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """One run of the voicemail's ConnectSync against the table: its matching rule (reproduced in
    tests/support/voicemail_solution.py from its source) decides the writes, which are then made. Returns them."""
    requests = connect_sync(connect_users, plain_items(dynamodb, table_name))
    serializer = TypeSerializer()
    writes = []
    for request in requests:
        if "PutRequest" in request:
            item = {
                name: serializer.serialize(value) for name, value in request["PutRequest"]["Item"].items()
            }
            writes.append({"PutRequest": {"Item": item}})
        else:
            # The JavaScript passes {agentId: undefined} for a row without userId; DynamoDB refuses it.
            key = request["DeleteRequest"]["Key"]["agentId"]
            assert key is not None, "the sync would issue a delete with an undefined key"
            writes.append({"DeleteRequest": {"Key": {"agentId": {"S": key}}}})
    if writes:
        dynamodb.batch_write_item(RequestItems={table_name: writes})
    return requests


def test_rows_written_by_the_cli_survive_the_voicemail_sync_unchanged(
    cli: Any, dynamodb: DynamoDBClient, directory_table: str, tmp_path: Path
) -> None:
    # GIVEN providers entered with import and set, under their Connect user names
    assert (
        cli("import", write(tmp_path, f"agentId,extension,username\n{A1},101,dr.a\n{A2},202,dr.b\n"))[0] == 0
    )
    assert cli("set", A3, "303", "--username", "dr.c")[0] == 0
    before = raw_items(dynamodb, directory_table)
    # WHEN the voicemail's nightly sync runs against Connect, where those are the instance's users
    connect_users = [
        {"Id": A1, "Username": "dr.a"},
        {"Id": A2, "Username": "dr.b"},
        {"Id": A3, "Username": "dr.c"},
    ]
    requests = run_connect_sync(dynamodb, directory_table, connect_users)
    # THEN it finds every row by userId and has nothing to write: the rows are as the CLI left them
    assert requests == []
    assert raw_items(dynamodb, directory_table) == before
    assert all(item["userId"] == item["agentId"] for item in before.values())


def test_a_row_without_a_username_keeps_its_extension_through_the_sync(
    cli: Any, dynamodb: DynamoDBClient, directory_table: str, table: DirectoryAdmin
) -> None:
    # GIVEN a provider set without a username
    assert cli("set", A1, "101")[0] == 0
    # WHEN the sync runs THEN it fills in the Connect user name and keeps everything else
    run_connect_sync(dynamodb, directory_table, [{"Id": A1, "Username": "dr.a"}])
    assert table.get(A1) == DirectoryEntry(A1, "101", "dr.a")
    assert raw_items(dynamodb, directory_table)[A1]["userId"] == {"S": A1}


def test_a_row_without_user_id_is_what_the_sync_would_overwrite_and_set_mends_it(
    cli: Any, dynamodb: DynamoDBClient, directory_table: str, table: DirectoryAdmin
) -> None:
    # GIVEN a row as an earlier ctr-billing wrote it: no userId
    dynamodb.put_item(
        TableName=directory_table,
        Item={"agentId": {"S": A1}, "extension": {"S": "101"}, "username": {"S": "dr.a"}},
    )
    # WHEN the sync's matching rule looks at it THEN it misses the row: it would put the user back
    # without the extension, and delete a row by an undefined key
    requests = connect_sync([{"Id": A1, "Username": "dr.a"}], plain_items(dynamodb, directory_table))
    assert requests == [
        {"PutRequest": {"Item": {"userId": A1, "username": "dr.a", "agentId": A1}}},
        {"DeleteRequest": {"Key": {"agentId": None}}},
    ]
    # AND setting the extension again with the CLI adds the userId, after which the sync leaves it alone
    assert cli("set", A1, "101")[0] == 0
    assert run_connect_sync(dynamodb, directory_table, [{"Id": A1, "Username": "dr.a"}]) == []
    assert table.get(A1) == DirectoryEntry(A1, "101", "dr.a")


def test_the_sync_removes_rows_of_users_gone_from_connect(
    cli: Any, dynamodb: DynamoDBClient, directory_table: str, table: DirectoryAdmin
) -> None:
    # The voicemail owns which rows exist: a provider deleted from Connect loses the row, extension included.
    assert cli("set", A1, "101", "--username", "dr.a")[0] == 0
    assert cli("set", A2, "202", "--username", "dr.b")[0] == 0
    run_connect_sync(dynamodb, directory_table, [{"Id": A1, "Username": "dr.a"}])
    assert entries(table) == {DirectoryEntry(A1, "101", "dr.a")}
