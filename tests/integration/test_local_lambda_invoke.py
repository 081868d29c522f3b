# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""Lambda Invoke on the embedded AWS runs the function in the project's warm workers, over HTTP with
boto3, as ``aws lambda invoke`` does (issue 14, item 1)."""

from __future__ import annotations

import base64
import json

import pytest

from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack
from lookup.directory_admin import DirectoryAdmin
from tests.events import load_event
from tests.support.pipeline_support import deployed, embedded_aws, wait_until  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"


def _invoke(
    aws: EmbeddedAws, function: str, event: object, **options: str
) -> tuple[dict[str, object], object]:
    answer = aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode(), **options)  # type: ignore[arg-type]
    payload = answer["Payload"].read()
    return dict(answer), json.loads(payload) if payload else None


def test_lookup_lambdas_answer_connects_contact_flow_events(
    embedded_aws: EmbeddedAws, deployed: DeployedStack
) -> None:
    # GIVEN agent AGENT holds extension 4417 in the stack's provider directory
    DirectoryAdmin(
        embedded_aws.client("dynamodb"), deployed.resources["ProviderDirectoryTable"]
    ).set_extension(AGENT, "4417", "dr.okafor")
    by_agent = deployed.resources["AgentExtensionByAgentIdFunction"]
    by_extension = deployed.resources["AgentByExtensionFunction"]

    # WHEN the lookups are invoked with Amazon Connect's ContactFlowEvent
    answer, result = _invoke(
        embedded_aws, by_agent, load_event("connect-get-agent-extension-by-agent-id.json")
    )
    # THEN the function ran in its worker with its Environment (the directory table) and answered
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert result == {"found": "true", "extension": "4417"}

    answer, result = _invoke(embedded_aws, by_extension, load_event("connect-get-agent-by-extension.json"))
    assert "FunctionError" not in answer
    assert isinstance(result, dict)
    assert result["found"] == "true"
    assert result["agentId"] == AGENT


def test_transform_answers_a_firehose_event(embedded_aws: EmbeddedAws, deployed: DeployedStack) -> None:
    event = load_event("firehose-transformation-kinesis-source.json")
    answer, result = _invoke(embedded_aws, deployed.resources["TransformCsvFunction"], event, LogType="Tail")
    assert "FunctionError" not in answer
    assert isinstance(result, dict)
    records = {record["recordId"]: record for record in result["records"]}
    assert set(records) == {record["recordId"] for record in event["records"]}
    assert [records[r["recordId"]]["result"] for r in event["records"]] == [
        "Ok",
        "Dropped",
        "ProcessingFailed",
    ]
    # the function's log comes back with LogType=Tail, as Lambda returns it
    assert "LogResult" in answer
    base64.b64decode(str(answer["LogResult"]))


def test_functions_report_the_templates_architecture_and_event_invocations_are_accepted(
    embedded_aws: EmbeddedAws, deployed: DeployedStack
) -> None:
    client = embedded_aws.client("lambda")
    function = deployed.resources["AgentExtensionByAgentIdFunction"]
    assert client.get_function_configuration(FunctionName=function)["Architectures"] == ["arm64"]
    answer = client.invoke(FunctionName=function, InvocationType="Event", Payload=b"{}")
    assert answer["StatusCode"] == 202
    assert client.invoke(FunctionName=function, InvocationType="DryRun")["StatusCode"] == 204


def test_a_handler_error_is_an_unhandled_function_error(
    embedded_aws: EmbeddedAws, deployed: DeployedStack
) -> None:
    # the transform refuses an event that is not a Firehose batch
    answer, result = _invoke(embedded_aws, deployed.resources["TransformCsvFunction"], ["not", "a", "batch"])
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert isinstance(result, dict)
    assert set(result) == {"errorType", "errorMessage"}
