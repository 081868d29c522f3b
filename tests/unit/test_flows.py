"""The Amazon Connect flows in ``cloudformation/flows/``: their structure in the flow language
(Version 2019-10-30, StartAction, Actions with Identifier/Type/Parameters/Transitions) and their routing,
walked by a small interpreter that answers the Lambda invocations with the real lookup code."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lookup.directory import DirectoryEntry
from lookup.lookups import AGENT_ARN_PARAMETER, EXTENSION_PARAMETER, agent_with_extension, extension_of_agent

FLOWS = Path(__file__).resolve().parents[2] / "cloudformation" / "flows"
INBOUND = "telehealth-inbound.json"
WHISPER = "agent-whisper.json"

INSTANCE = "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"
AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"
PLACEHOLDERS = {
    "AgentByExtensionFunctionArn": "arn:aws:lambda:us-east-1:111122223333:function:by-extension",
    "AgentExtensionByAgentIdFunctionArn": "arn:aws:lambda:us-east-1:111122223333:function:by-agent",
    "GeneralQueueArn": f"{INSTANCE}/queue/general",
    "VoicemailFlowArn": f"{INSTANCE}/contact-flow/voicemail",
    "AgentWhisperFlowArn": f"{INSTANCE}/contact-flow/whisper",
    "ExtensionAttribute": "extensionNumber",
}
EXPECTED_PLACEHOLDERS = {
    INBOUND: {
        "AgentByExtensionFunctionArn",
        "GeneralQueueArn",
        "VoicemailFlowArn",
        "AgentWhisperFlowArn",
        "ExtensionAttribute",
    },
    WHISPER: {"AgentExtensionByAgentIdFunctionArn", "ExtensionAttribute"},
}

# Action types each flow may use, per the flow language's "Restrictions" sections.
INBOUND_TYPES = {
    "UpdateContactEventHooks", "GetParticipantInput", "InvokeLambdaFunction", "Compare", "MessageParticipant",
    "UpdateContactAttributes", "UpdateContactTargetQueue", "CheckMetricData", "TransferContactToQueue",
    "CheckHoursOfOperation", "TransferToFlow", "DisconnectParticipant",
}  # fmt: skip
WHISPER_TYPES = {"InvokeLambdaFunction", "Compare", "UpdateContactAttributes", "EndFlowExecution"}
TERMINAL = {"DisconnectParticipant", "EndFlowExecution"}
FORBIDDEN_IDENTIFIER_CHARACTERS = set("%:()\\/=$,;[]{}")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def flow_text(name: str) -> str:
    return (FLOWS / name).read_text(encoding="utf-8")


def flow(name: str, values: Mapping[str, str] = PLACEHOLDERS) -> dict[str, Any]:
    """The flow as CloudFormation's Fn::Sub would deploy it."""
    document: dict[str, Any] = json.loads(PLACEHOLDER.sub(lambda match: values[match[1]], flow_text(name)))
    return document


def next_actions(action: Mapping[str, Any]) -> list[str]:
    transitions = action["Transitions"]
    targets = [transitions["NextAction"]] if "NextAction" in transitions else []
    targets += [branch["NextAction"] for branch in transitions.get("Conditions", [])]
    targets += [branch["NextAction"] for branch in transitions.get("Errors", [])]
    return targets


# --- structure -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "allowed_types"), [(INBOUND, INBOUND_TYPES), (WHISPER, WHISPER_TYPES)])
def test_flow_is_well_formed_flow_language(name: str, allowed_types: set[str]) -> None:
    document = flow(name)
    actions = document["Actions"]
    identifiers = [action["Identifier"] for action in actions]
    by_id = {action["Identifier"]: action for action in actions}

    assert document["Version"] == "2019-10-30"
    assert document["StartAction"] in by_id
    assert len(identifiers) == len(set(identifiers)), "identifiers must be unique"
    assert len(actions) <= 250
    for action in actions:
        identifier = action["Identifier"]
        assert set(action) == {"Identifier", "Type", "Parameters", "Transitions"}, identifier
        assert 0 < len(identifier) <= 50 and not FORBIDDEN_IDENTIFIER_CHARACTERS & set(identifier), identifier
        assert action["Type"] in allowed_types, f"{identifier}: {action['Type']} not allowed in {name}"
        assert isinstance(action["Parameters"], dict)
        for target in next_actions(action):
            assert target in by_id, f"{identifier} -> {target}: no such action"
        if action["Type"] in TERMINAL:
            assert action["Transitions"] == {}, identifier
        else:
            error_types = {branch["ErrorType"] for branch in action["Transitions"].get("Errors", [])}
            assert "NextAction" in action["Transitions"], identifier
            assert error_types & {"NoMatchingError", "NoMatchingCondition"}, (
                f"{identifier} has no error branch"
            )

    # every action is reachable from the start
    seen, frontier = set(), [document["StartAction"]]
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(next_actions(by_id[current]))
    assert seen == set(identifiers), f"unreachable: {set(identifiers) - seen}"


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_flow_placeholders_are_the_ones_the_template_substitutes(name: str) -> None:
    assert set(PLACEHOLDER.findall(flow_text(name))) == EXPECTED_PLACEHOLDERS[name]


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_lambda_invocations_match_the_lookup_contract(name: str) -> None:
    for action in flow(name)["Actions"]:
        if action["Type"] != "InvokeLambdaFunction":
            continue
        parameters = action["Parameters"]
        # Connect waits at most 8 s; the lookups answer a flat map of strings.
        assert 1 <= int(parameters["InvocationTimeLimitSeconds"]) <= 8
        assert parameters["ResponseValidation"] == {"ResponseType": "STRING_MAP"}
        assert parameters["InvocationType"] == "SYNCHRONOUS"
        assert set(parameters["LambdaInvocationAttributes"]) <= {AGENT_ARN_PARAMETER, EXTENSION_PARAMETER}


def test_extension_prompt_stores_up_to_five_digits() -> None:
    (prompt,) = [action for action in flow(INBOUND)["Actions"] if action["Type"] == "GetParticipantInput"]
    parameters = prompt["Parameters"]
    # stored input: validation is required, conditions are not supported
    assert parameters["StoreInput"] == "True"
    assert parameters["InputValidation"] == {"CustomValidation": {"MaximumLength": "5"}}
    assert "Conditions" not in prompt["Transitions"]


# --- routing, walked with the real lookup answers --------------------------------------------------


@dataclass
class Call:
    """The world one walk of a flow sees."""

    digits: str = ""
    agents_available: int = 1
    queue_open: bool = True
    lambda_fails: bool = False
    agent_arn: str = f"{INSTANCE}/agent/{AGENT}"
    directory: list[DirectoryEntry] = field(
        default_factory=lambda: [DirectoryEntry(AGENT, "4417", "dr.okafor")]
    )


@dataclass
class Outcome:
    path: list[str]
    attributes: dict[str, str]
    target_queue: str | None
    end: str
    lambda_parameters: list[dict[str, str]]


class MemoryDirectory:
    def __init__(self, entries: list[DirectoryEntry]) -> None:
        self.entries = entries

    def entry_for_agent(self, agent_id: str) -> DirectoryEntry | None:
        return next((entry for entry in self.entries if entry.agent_id == agent_id), None)

    def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]:
        return tuple(entry for entry in self.entries if entry.extension == extension)


def walk(name: str, call: Call) -> Outcome:
    document = flow(name)
    by_id = {action["Identifier"]: action for action in document["Actions"]}
    state: dict[str, Any] = {
        "StoredCustomerInput": call.digits,
        "External": {},
        "Agent": {"ARN": call.agent_arn},
        "Attributes": {},
    }
    target_queue: str | None = None
    path: list[str] = []
    invocations: list[dict[str, str]] = []
    directory = MemoryDirectory(call.directory)

    def resolve(value: str) -> Any:
        if not value.startswith("$."):
            return value
        current: Any = state
        for part in value[2:].split("."):
            current = current.get(part, "") if isinstance(current, dict) else ""
        return current

    def error(action: Mapping[str, Any], kind: str) -> str:
        branches = {branch["ErrorType"]: branch["NextAction"] for branch in action["Transitions"]["Errors"]}
        return str(branches.get(kind, branches.get("NoMatchingError")))

    def condition(action: Mapping[str, Any], value: Any) -> str:
        for branch in action["Transitions"].get("Conditions", []):
            operator, operand = branch["Condition"]["Operator"], branch["Condition"]["Operands"][0]
            if (operator == "Equals" and str(value) == operand) or (
                operator == "NumberGreaterThan" and float(value) > float(operand)
            ):
                return str(branch["NextAction"])
        return error(action, "NoMatchingCondition")

    current = document["StartAction"]
    for _ in range(100):
        action = by_id[current]
        path.append(current)
        kind, parameters = action["Type"], action["Parameters"]
        if kind in TERMINAL or kind in {"TransferContactToQueue", "TransferToFlow"}:
            if kind == "TransferToFlow":
                target_queue = f"flow:{parameters['ContactFlowId']}"
            return Outcome(path, state["Attributes"], target_queue, current, invocations)
        if kind == "InvokeLambdaFunction":
            arguments = {
                key: resolve(value) for key, value in parameters["LambdaInvocationAttributes"].items()
            }
            invocations.append(arguments)
            if call.lambda_fails:
                current = error(action, "NoMatchingError")
                continue
            if parameters["LambdaFunctionARN"] == PLACEHOLDERS["AgentByExtensionFunctionArn"]:
                state["External"] = agent_with_extension(directory, arguments, {"InstanceARN": INSTANCE})
            else:
                state["External"] = extension_of_agent(directory, arguments)
        elif kind == "Compare":
            current = condition(action, resolve(parameters["ComparisonValue"]))
            continue
        elif kind == "UpdateContactAttributes":
            state["Attributes"].update(
                {key: resolve(value) for key, value in parameters["Attributes"].items()}
            )
        elif kind == "UpdateContactTargetQueue":
            target_queue = resolve(parameters.get("QueueId") or parameters["AgentId"])
        elif kind == "CheckMetricData":
            current = condition(action, call.agents_available)
            continue
        elif kind == "CheckHoursOfOperation":
            current = condition(action, "True" if call.queue_open else "False")
            continue
        current = action["Transitions"]["NextAction"]
    raise AssertionError(f"flow does not terminate: {path}")


def test_dialled_extension_goes_straight_to_the_provider() -> None:
    outcome = walk(INBOUND, Call(digits="4417"))
    assert outcome.end == "Transfer to provider"
    assert outcome.target_queue == f"{INSTANCE}/agent/{AGENT}"
    assert outcome.lambda_parameters == [{EXTENSION_PARAMETER: "4417"}]
    # the CTR carries the dialled extension (the transform's EXTENSION_ATTRIBUTE) and the voicemail
    # solution's agent attributes
    assert outcome.attributes == {"extensionNumber": "4417", "agentId": AGENT, "agentName": "dr.okafor"}


@pytest.mark.parametrize("digits", ["", "9999", "12a"])
def test_no_or_unknown_extension_goes_to_the_general_queue(digits: str) -> None:
    outcome = walk(INBOUND, Call(digits=digits))
    assert outcome.end == "Transfer to general queue"
    assert outcome.target_queue == PLACEHOLDERS["GeneralQueueArn"]
    assert "extensionNumber" not in outcome.attributes


def test_lookup_failure_still_reaches_the_general_queue() -> None:
    outcome = walk(INBOUND, Call(digits="4417", lambda_fails=True))
    assert outcome.end == "Transfer to general queue"


def test_unavailable_provider_goes_to_voicemail() -> None:
    outcome = walk(INBOUND, Call(digits="4417", agents_available=0))
    assert outcome.end == "Transfer to voicemail"
    assert outcome.target_queue == f"flow:{PLACEHOLDERS['VoicemailFlowArn']}"
    assert outcome.attributes["voicemailReason"] == "ProviderUnavailable"
    assert outcome.attributes["agentId"] == AGENT


def test_closed_queue_goes_to_voicemail() -> None:
    outcome = walk(INBOUND, Call(digits="", queue_open=False))
    assert outcome.end == "Transfer to voicemail"
    assert outcome.attributes["voicemailReason"] == "QueueClosed"


def test_inbound_flow_installs_the_agent_whisper_flow_first() -> None:
    first = flow(INBOUND)["Actions"][0]
    assert first["Identifier"] == flow(INBOUND)["StartAction"]
    assert first["Parameters"] == {"EventHooks": {"AgentWhisper": PLACEHOLDERS["AgentWhisperFlowArn"]}}


def test_whisper_sets_the_answering_providers_extension() -> None:
    outcome = walk(WHISPER, Call())
    assert outcome.end == "End whisper"
    assert outcome.lambda_parameters == [{AGENT_ARN_PARAMETER: f"{INSTANCE}/agent/{AGENT}"}]
    assert outcome.attributes == {"extensionNumber": "4417"}


def test_whisper_leaves_attributes_alone_for_an_agent_without_extension() -> None:
    outcome = walk(WHISPER, Call(directory=[DirectoryEntry(AGENT, "", "dr.okafor")]))
    assert outcome.end == "End whisper"
    assert outcome.attributes == {}
    assert walk(WHISPER, Call(lambda_fails=True)).attributes == {}


def test_whisper_uses_the_configured_extension_attribute() -> None:
    document = flow(WHISPER, {**PLACEHOLDERS, "ExtensionAttribute": "providerExt"})
    (update,) = [action for action in document["Actions"] if action["Type"] == "UpdateContactAttributes"]
    assert update["Parameters"]["Attributes"] == {"providerExt": "$.External.extension"}


# --- the template deploys exactly these files ------------------------------------------------------

FLOW_RESOURCES = {
    WHISPER: ("AgentWhisperFlow", "AGENT_WHISPER", "HasConnectInstance"),
    INBOUND: ("TelehealthInboundFlow", "CONTACT_FLOW", "DeployInboundFlow"),
}


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_template_deploys_the_flow_file_unchanged(name: str) -> None:
    from firehose.template import load_template

    template = load_template()
    logical_id, flow_type, condition = FLOW_RESOURCES[name]
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::Connect::ContactFlow"
    assert resource["Condition"] == condition
    properties = resource["Properties"]
    assert properties["Type"] == flow_type
    assert properties["InstanceArn"] == {"Ref": "ConnectInstanceArn"}
    text, variables = properties["Content"]["Fn::Sub"]
    # The files are the source: the template's copy must parse to the same document.
    assert json.loads(text) == json.loads(flow_text(name)), (
        f"{logical_id}'s Content differs from cloudformation/flows/{name}; copy the file into the template"
    )
    # Every placeholder is substituted, by the Sub's own variables or a template parameter.
    assert set(PLACEHOLDER.findall(text)) <= set(variables) | set(template["Parameters"])


def test_inbound_flow_deploys_only_with_queue_and_voicemail_flow() -> None:
    from firehose.template import load_template

    template = load_template()
    condition = template["Conditions"]["DeployInboundFlow"]["Fn::And"]
    assert {"Condition": "HasConnectInstance"} in condition
    referenced = json.dumps(condition)
    assert "GeneralQueueArn" in referenced and "VoicemailFlowArn" in referenced
