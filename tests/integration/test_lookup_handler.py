"""The two Connect lookup Lambdas against the embedded AWS (moto server over HTTP).

The handler module is reloaded per test with the environment a deployed function gets (its settings
are read at cold start), so every test runs the real handler, client, cache and table.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.client import BaseClient

from lookup.directory import DirectoryError
from lookup.directory_admin import DirectoryAdmin
from tests.events import CONNECT_GET_AGENT_BY_EXTENSION, CONNECT_GET_EXTENSION_BY_AGENT_ID, load_event
from tests.support.voicemail_solution import CONTACT_FLOW_ATTRIBUTES

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytest_plugins = ["tests.support.lookup_fixtures"]
FLOWS = Path(__file__).resolve().parents[2] / "cloudformation" / "flows"
pytestmark = pytest.mark.integration

INSTANCE = "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"
AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"
OTHER_AGENT = "1a2b3c4d-0000-4c3d-8e5f-6a7b8c9d0e1f"
PATIENT_PHONE = "+12025550143"
INSTANCE_ID = INSTANCE.rsplit("/", 1)[-1]


@dataclass
class FakeContext:
    function_name: str = "lookup"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:111122223333:function:lookup"
    aws_request_id: str = "req-1"


def connect_event(parameters: dict[str, Any], instance: str | None = INSTANCE) -> dict[str, Any]:
    """The event a contact flow sends a Lambda (``tests/events``, the patient's number in it), with these
    parameters and this instance (None: no ``InstanceARN``)."""
    event = load_event(CONNECT_GET_AGENT_BY_EXTENSION)
    event["Details"]["Parameters"] = parameters
    contact = event["Details"]["ContactData"]
    del contact["InstanceARN"]
    if instance is not None:
        contact["InstanceARN"] = instance
    return event


def load_handler(monkeypatch: pytest.MonkeyPatch, table: str, **env: str) -> ModuleType:
    monkeypatch.setenv("DIRECTORY_TABLE", table)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import lookup.handler

    return importlib.reload(lookup.handler)


@pytest.fixture
def handler(aws_env: str, directory_table: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_handler(monkeypatch, directory_table)


@pytest.fixture
def table(dynamodb: DynamoDBClient, directory_table: str) -> DirectoryAdmin:
    table = DirectoryAdmin(dynamodb, directory_table)
    table.set_extension(AGENT, "4417", "dr.okafor")
    return table


class ConnectUsers:
    """Answers the handler's DescribeUser calls as Connect would (the embedded AWS has no Connect users):
    a ``before-call`` handler on the handler's own Connect client, so the real client code runs."""

    def __init__(self, client: BaseClient, names: dict[str, tuple[str, str]]) -> None:
        self.names = names
        self.calls: list[dict[str, Any]] = []
        client.meta.events.register("before-call.connect.DescribeUser", self._answer)

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        self.calls.append(params)
        user_id = params["url_path"].rsplit("/", 1)[-1]
        if user_id not in self.names:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "no such user"}}
            return AWSResponse("http://connect", 404, HTTPHeaders(), None), error
        first, last = self.names[user_id]
        user = {"Id": user_id, "IdentityInfo": {"FirstName": first, "LastName": last}}
        return AWSResponse("http://connect", 200, HTTPHeaders(), None), {"User": user}


@pytest.fixture
def connect_users(handler: ModuleType) -> ConnectUsers:
    return ConnectUsers(handler._CONNECT, {AGENT: ("Ada", "Okafor")})


# --- get_agent_extension_by_agent_id ---------------------------------------------------------------


def test_agent_arn_gives_the_agents_extension(handler: ModuleType, table: DirectoryAdmin) -> None:
    # GIVEN agent AGENT holds extension 4417
    # WHEN the whisper flow passes the agent's ARN
    event = load_event(CONNECT_GET_EXTENSION_BY_AGENT_ID)
    assert event["Details"]["Parameters"] == {"AgentArn": f"{INSTANCE}/agent/{AGENT}"}
    answer = handler.get_agent_extension_by_agent_id(event, FakeContext())
    # THEN the extension comes back as a flat map of strings
    assert answer == {"found": "true", "extension": "4417"}


def test_bare_agent_id_is_accepted(handler: ModuleType, table: DirectoryAdmin) -> None:
    answer = handler.get_agent_extension_by_agent_id(connect_event({"AgentArn": AGENT}), FakeContext())
    assert answer == {"found": "true", "extension": "4417"}


def test_unknown_agent_is_not_found(handler: ModuleType, table: DirectoryAdmin) -> None:
    answer = handler.get_agent_extension_by_agent_id(
        connect_event({"AgentArn": f"{INSTANCE}/agent/{OTHER_AGENT}"}), FakeContext()
    )
    assert answer == {"found": "false", "extension": ""}


def test_agent_without_an_extension_is_not_found(
    handler: ModuleType,
    dynamodb: DynamoDBClient,
    directory_table: str,
) -> None:
    # GIVEN a voicemail-solution item with settings but no extension
    dynamodb.put_item(
        TableName=directory_table,
        Item={
            "agentId": {"S": OTHER_AGENT},
            "username": {"S": "dr.lee"},
            "transcribeVoicemail": {"BOOL": True},
        },
    )
    answer = handler.get_agent_extension_by_agent_id(connect_event({"AgentArn": OTHER_AGENT}), FakeContext())
    assert answer == {"found": "false", "extension": ""}


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({}, "missing parameter AgentArn"),
        ({"AgentArn": ""}, "missing parameter AgentArn"),
        ({"AgentArn": 42}, "missing parameter AgentArn"),
        (
            {"AgentArn": "arn:aws:connect:us-east-1:111122223333:instance/x/queue/y"},
            "not an Amazon Connect agent ARN",
        ),
        ({"AgentArn": "not an id!"}, "neither an agent ARN nor an agent id"),
    ],
)
def test_malformed_agent_parameter_answers_not_found_with_the_problem(
    handler: ModuleType, table: DirectoryAdmin, parameters: dict[str, Any], problem: str
) -> None:
    answer = handler.get_agent_extension_by_agent_id(connect_event(parameters), FakeContext())
    assert answer["found"] == "false"
    assert answer["extension"] == ""
    assert problem in answer["error"]
    assert all(isinstance(value, str) for value in answer.values())


def test_event_without_details_never_raises(handler: ModuleType, table: DirectoryAdmin) -> None:
    answer = handler.get_agent_extension_by_agent_id({"unexpected": True}, FakeContext())
    assert answer == {"found": "false", "extension": "", "error": "missing parameter AgentArn"}


# --- get_agent_by_extension ------------------------------------------------------------------------


def test_extension_gives_the_agent_its_queue_and_the_voicemail_attributes(
    handler: ModuleType, table: DirectoryAdmin, connect_users: ConnectUsers
) -> None:
    # GIVEN extension 4417 belongs to AGENT, whom Connect knows as Ada Okafor
    # WHEN the inbound flow passes the digits the caller keyed in
    event = load_event(CONNECT_GET_AGENT_BY_EXTENSION)
    assert event["Details"]["Parameters"] == {"extensionNumber": "4417"}
    answer = handler.get_agent_by_extension(event, FakeContext())
    # THEN the ARNs are built from the contact's instance, ready for a transfer to the agent's queue
    # AND every attribute the voicemail's KvsProcessRecording reads comes back, as its own lookup fills it
    assert answer == {
        "found": "true",
        "agentId": AGENT,
        "agentArn": f"{INSTANCE}/agent/{AGENT}",
        "agentQueueArn": f"{INSTANCE}/queue/agent/{AGENT}",
        "username": "dr.okafor",
        "agentName": "Ada Okafor",
        "extensionNumber": "4417",
        "transferMessage": "Please wait while we transfer you to Ada Okafor",
        "transcribeVoicemail": "false",
        "encryptVoicemail": "false",
        "saveCallRecording": "true",
    }
    assert set(answer) >= CONTACT_FLOW_ATTRIBUTES
    # AND Connect was asked about this agent of this instance
    assert [call["url_path"] for call in connect_users.calls] == [f"/users/{INSTANCE_ID}/{AGENT}"]


def test_voicemail_settings_come_from_the_voicemail_item(
    handler: ModuleType, dynamodb: DynamoDBClient, directory_table: str, connect_users: ConnectUsers
) -> None:
    # GIVEN an agent as the voicemail solution keeps it: settings set in its portal
    dynamodb.put_item(
        TableName=directory_table,
        Item={
            "agentId": {"S": AGENT},
            "userId": {"S": AGENT},
            "username": {"S": "dr.okafor"},
            "extension": {"S": "4417"},
            "transcribeVoicemail": {"BOOL": True},
            "encryptVoicemail": {"BOOL": True},
            "deliveryOptions": {"M": {"email": {"BOOL": True}}},
        },
    )
    answer = handler.get_agent_by_extension(connect_event({"extensionNumber": "4417"}), FakeContext())
    assert (answer["transcribeVoicemail"], answer["encryptVoicemail"]) == ("true", "true")


def test_without_a_name_from_connect_the_username_is_spoken(
    handler: ModuleType, table: DirectoryAdmin
) -> None:
    # GIVEN Connect does not answer DescribeUser (the embedded AWS has no such API)
    # WHEN the extension is looked up THEN the flow still gets its answer, with the username as the name
    answer = handler.get_agent_by_extension(connect_event({"extensionNumber": "4417"}), FakeContext())
    assert (answer["found"], answer["agentName"]) == ("true", "dr.okafor")


def test_names_are_cached_with_the_directory(
    handler: ModuleType, table: DirectoryAdmin, connect_users: ConnectUsers
) -> None:
    for _ in range(3):
        handler.get_agent_by_extension(connect_event({"extensionNumber": "4417"}), FakeContext())
    assert len(connect_users.calls) == 1


def test_unknown_extension_is_not_found(handler: ModuleType, table: DirectoryAdmin) -> None:
    answer = handler.get_agent_by_extension(connect_event({"extensionNumber": "9999"}), FakeContext())
    assert answer == {"found": "false"}


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (connect_event({}), "missing parameter extensionNumber"),
        (connect_event({"extensionNumber": "  "}), "missing parameter extensionNumber"),
        (connect_event({"extensionNumber": "44a7"}), "extensionNumber must be 1-5 digits"),
        (connect_event({"extensionNumber": "123456"}), "extensionNumber must be 1-5 digits"),
        (connect_event({"extensionNumber": "#"}), "extensionNumber must be 1-5 digits"),
        (connect_event({"extensionNumber": "4417"}, instance=None), "missing ContactData.InstanceARN"),
        (
            connect_event({"extensionNumber": "4417"}, instance="arn:aws:s3:::bucket"),
            "not an Amazon Connect instance ARN",
        ),
        ({}, "missing parameter extensionNumber"),
    ],
)
def test_malformed_extension_lookup_answers_not_found_with_the_problem(
    handler: ModuleType, table: DirectoryAdmin, event: dict[str, Any], problem: str
) -> None:
    answer = handler.get_agent_by_extension(event, FakeContext())
    assert answer == {"found": "false", "error": answer["error"]}
    assert problem in answer["error"]


def test_extension_held_by_two_agents_is_refused_not_guessed(
    handler: ModuleType,
    table: DirectoryAdmin,
    dynamodb: DynamoDBClient,
    directory_table: str,
) -> None:
    # GIVEN an older voicemail table where two agents share 4417 (that solution does not prevent it)
    dynamodb.put_item(
        TableName=directory_table, Item={"agentId": {"S": OTHER_AGENT}, "extension": {"S": "4417"}}
    )
    answer = handler.get_agent_by_extension(connect_event({"extensionNumber": "4417"}), FakeContext())
    assert answer == {"found": "false", "error": "extension is assigned to more than one agent"}


# --- DynamoDB failures -----------------------------------------------------------------------------


def test_dynamodb_failure_raises_without_phi_or_input(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the configured table does not exist
    handler = load_handler(monkeypatch, "no-such-directory-table")
    event = connect_event({"extensionNumber": "4417", "AgentArn": AGENT})
    caplog.set_level(logging.DEBUG)
    # WHEN either lookup runs
    for lookup in (handler.get_agent_by_extension, handler.get_agent_extension_by_agent_id):
        with pytest.raises(DirectoryError) as raised:
            lookup(event, FakeContext())
        # THEN it raises (Connect takes the error branch) naming the operation and code only
        message = str(raised.value)
        assert "ResourceNotFoundException" in message
        assert PATIENT_PHONE not in message
        assert "4417" not in message
        assert AGENT not in message
    logged = capsys.readouterr()
    assert PATIENT_PHONE not in logged.out + logged.err + caplog.text


def test_answers_are_logged_without_contact_data(
    handler: ModuleType, table: DirectoryAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    handler.get_agent_by_extension(connect_event({"extensionNumber": "4417"}), FakeContext())
    # The JSON lines the Lambda writes, as its own formatter renders them.
    lines = [
        handler.logger.registered_formatter.format(record)
        for record in caplog.records
        if record.name == handler.logger.name
    ]
    records = [json.loads(line) for line in lines]
    assert [(record["message"], record["found"]) for record in records] == [("lookup answered", "true")]
    assert PATIENT_PHONE not in "".join(lines)


# --- the warm-container cache ----------------------------------------------------------------------


def test_repeated_lookups_are_served_from_the_cache(
    count_calls: Any,
    handler: ModuleType,
    table: DirectoryAdmin,
    dynamodb: DynamoDBClient,
    directory_table: str,
) -> None:
    # GIVEN a warm container that has answered once for agent and extension
    calls = count_calls(handler.DIRECTORY.table.client)
    event_agent = connect_event({"AgentArn": AGENT})
    event_extension = connect_event({"extensionNumber": "4417"})
    first = (
        handler.get_agent_extension_by_agent_id(event_agent, FakeContext()),
        handler.get_agent_by_extension(event_extension, FakeContext()),
    )
    # WHEN the entry changes in the table and the same lookups repeat within the TTL
    DirectoryAdmin(dynamodb, directory_table).set_extension(AGENT, "5000")
    for _ in range(3):
        again = (
            handler.get_agent_extension_by_agent_id(event_agent, FakeContext()),
            handler.get_agent_by_extension(event_extension, FakeContext()),
        )
        # THEN the cached answers come back and DynamoDB was read once per key
        assert again == first
    assert calls["GetItem"] == 1
    assert calls["Query"] == 1


def test_cache_can_be_turned_off(
    count_calls: Any,
    aws_env: str,
    table: DirectoryAdmin,
    directory_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = load_handler(monkeypatch, directory_table, DIRECTORY_CACHE_SECONDS="0")
    calls = count_calls(handler.DIRECTORY.table.client)
    for _ in range(3):
        handler.get_agent_extension_by_agent_id(connect_event({"AgentArn": AGENT}), FakeContext())
    assert calls["GetItem"] == 3


def test_bad_cache_setting_fails_the_cold_start_naming_the_variable(
    aws_env: str,
    directory_table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lookup.settings import SettingsError

    with pytest.raises(SettingsError, match=r"^DIRECTORY_CACHE_SECONDS"):
        load_handler(monkeypatch, directory_table, DIRECTORY_CACHE_SECONDS="five")


def test_a_lookups_calls_fit_in_the_flows_invocation_time_limit(handler: ModuleType) -> None:
    # GIVEN the time the contact flows give a lookup Lambda
    limits = {
        int(action["Parameters"]["InvocationTimeLimitSeconds"])
        for name in ("telehealth-inbound", "agent-whisper")
        for action in json.loads((FLOWS / f"{name}.json").read_text(encoding="utf-8"))["Actions"]
        if action["Type"] == "InvokeLambdaFunction"
    }
    # WHEN the lookup's clients (one DynamoDB read, then one Connect read for the name) are asked how long
    # they may wait, at worst
    configs = [handler._CLIENT.meta.config, handler._CONNECT.meta.config]
    attempts = [config.retries["total_max_attempts"] for config in configs]
    worst_case = sum(config.connect_timeout + config.read_timeout for config in configs)
    # THEN each makes one attempt, and both together end inside every flow's limit
    assert attempts == [1, 1]
    assert worst_case < min(limits)
