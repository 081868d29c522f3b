"""The directory table's retries and the admin's rollback expressions, without a server (the table itself
is tested against the embedded AWS in tests/integration/test_directory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lookup.directory import DirectoryEntry, DirectoryError, DirectoryTable
from lookup.directory_admin import DirectoryAdmin, EntryChange, _reverting_update
from transform.core.backoff import Backoff

ROOT = Path(__file__).resolve().parents[3]
TABLE = "provider-directory"


class UnprocessedClient:
    """Answers ``BatchGetItem`` with every key unprocessed ``times`` times, then with the items."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def batch_get_item(self, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.times:
            return {"Responses": {TABLE: []}, "UnprocessedKeys": dict(RequestItems)}
        keys = RequestItems[TABLE]["Keys"]
        items = [{"agentId": key["agentId"], "extension": {"S": "4417"}} for key in keys]
        return {"Responses": {TABLE: items}, "UnprocessedKeys": {}}


def test_unprocessed_keys_are_read_again_after_the_backoffs_pauses() -> None:
    # GIVEN a table that leaves the keys unprocessed twice
    client = UnprocessedClient(times=2)
    sleeps: list[float] = []
    table = DirectoryTable(client, TABLE, sleep=sleeps.append)  # type: ignore[arg-type]
    # WHEN an agent is read
    found = table.batch_get(["a1"])
    # THEN it is found on the third call, after the default backoff's pauses (doubling, no jitter)
    assert found == {"a1": DirectoryEntry("a1", "4417")}
    assert client.calls == 3
    assert sleeps == [Backoff(jitter=False).pause(1), Backoff(jitter=False).pause(2)] == [0.1, 0.2]


def test_keys_left_unprocessed_past_the_retries_fail_the_read_naming_no_agent() -> None:
    # GIVEN a table that never gets to the keys
    client = UnprocessedClient(times=100)
    table = DirectoryTable(client, TABLE, retries=3, sleep=lambda _: None)  # type: ignore[arg-type]
    # WHEN an agent is read THEN it fails after the first call and three retries
    with pytest.raises(DirectoryError, match="left keys unprocessed after 3 retries") as raised:
        table.batch_get(["agent-secret"])
    assert client.calls == 4
    assert "agent-secret" not in str(raised.value)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_a_throttled_transaction_is_retried_after_the_backoffs_pause(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN an admin whose backoff never jitters, and a transaction throttled once
    client, stubber = stubbed
    stubber.add_client_error("transact_write_items", service_error_code="ThrottlingException")
    stubber.add_response("transact_write_items", {})
    sleeps: list[float] = []
    backoff = Backoff(base_seconds=0.25, jitter=False)
    admin = DirectoryAdmin(client, TABLE, backoff=backoff, sleep=sleeps.append)
    # WHEN one change is applied THEN it is written on the second attempt, after that backoff's pause
    admin.apply_changes([EntryChange(DirectoryEntry("a1", "4417"), None)])
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    ("written", "before", "expression", "values"),
    [
        # every attribute the write set had a value before: each gets it back
        (
            DirectoryEntry("a1", "200", "dr.new"),
            DirectoryEntry("a1", "100", "dr.old", user_id="a1"),
            "SET #e = :pe, #u = :pu, #i = :pi",
            {":pe": {"S": "100"}, ":pu": {"S": "dr.old"}, ":pi": {"S": "a1"}},
        ),
        # a voicemail-only item: the extension and userId the write added are removed again
        (
            DirectoryEntry("a1", "200", "dr.new"),
            DirectoryEntry("a1", "", "dr.old"),
            "SET #u = :pu REMOVE #e, #i",
            {":pu": {"S": "dr.old"}},
        ),
        # a write without a username left the username alone, so its undo does too
        (
            DirectoryEntry("a1", "200"),
            DirectoryEntry("a1", "100", "dr.old"),
            "SET #e = :pe REMOVE #i",
            {":pe": {"S": "100"}},
        ),
    ],
)
def test_an_undo_gives_back_exactly_what_the_write_set(
    written: DirectoryEntry, before: DirectoryEntry, expression: str, values: dict[str, Any]
) -> None:
    # GIVEN a write of ``written`` over an item that was ``before``  WHEN its undo is built
    # THEN it restores each attribute the write set, and nothing else
    assert _reverting_update(written, before) == (expression, values)


def test_the_lookup_lambda_does_not_load_the_admin() -> None:
    # GIVEN the lookup Lambda's environment  WHEN its handler module is imported in a fresh interpreter
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment.update(DIRECTORY_TABLE=TABLE, AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(ROOT))
    probe = "import sys, lookup.handler; print('lookup.directory_admin' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # THEN the CLI's transactional admin did not come along
    assert output.strip() == "False"
