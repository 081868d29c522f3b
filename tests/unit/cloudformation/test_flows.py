"""The Amazon Connect flows in ``cloudformation/flows/``, checked two ways.

1. Every action against the Connect flow-language reference: its parameters, errors and conditions are
   the ones the reference page of its action type documents (``ACTIONS`` below, one entry per type the
   flows use, with the page it restates), and the type is allowed in the flow's type.
2. Walked: a small interpreter executes the flow's action graph for each kind of caller, answering the
   Lambda invocations with the real lookup code, and reports the contact attributes set, the working
   queue and customer queue flow chosen, and the action the flow ended on.

The reference pages are https://docs.aws.amazon.com/connect/latest/APIReference/<page>.html; their text,
as restated here, was read from the stored pages and from the guide's source in
awsdocs/amazon-connect-admin-guide, doc_source/<page>.md at commit 016580572e5c93a5aaa6441850ff1c6a916adcd9
(the last before that repository dropped them); where the live page has since added something
(InvocationType and ResponseValidation, TargetContact, the list of event hooks) the live page is followed.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lookup.directory import DirectoryEntry
from lookup.lookups import AGENT_ARN_PARAMETER, EXTENSION_PARAMETER, agent_with_extension, extension_of_agent
from tests.support.voicemail_solution import (
    CONTACT_FLOW_ATTRIBUTES,
    VM_AGENT_AVAILABLE_ATTRIBUTE,
    VM_AGENT_AVAILABLE_VALUE,
)

FLOWS = Path(__file__).resolve().parents[3] / "cloudformation" / "flows"
INBOUND = "telehealth-inbound.json"
WHISPER = "agent-whisper.json"
# flow file -> (template resource, its Condition)
FLOW_RESOURCES = {
    WHISPER: ("AgentWhisperFlow", "HasConnectInstance"),
    INBOUND: ("TelehealthInboundFlow", "DeployInboundFlow"),
}

INSTANCE = "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"
AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"
PROVIDER_NAME = "Ada Okafor"
PLACEHOLDERS = {
    "AgentByExtensionFunctionArn": "arn:aws:lambda:us-east-1:111122223333:function:by-extension",
    "AgentExtensionByAgentIdFunctionArn": "arn:aws:lambda:us-east-1:111122223333:function:by-agent",
    "GeneralQueueArn": f"{INSTANCE}/queue/general",
    "VoicemailCustomerQueueFlowArn": f"{INSTANCE}/contact-flow/vm-agent",
    "AgentWhisperFlowArn": f"{INSTANCE}/contact-flow/whisper",
    "ExtensionAttribute": "extensionNumber",
}
EXPECTED_PLACEHOLDERS = {
    INBOUND: {
        "AgentByExtensionFunctionArn",
        "GeneralQueueArn",
        "VoicemailCustomerQueueFlowArn",
        "AgentWhisperFlowArn",
    },
    WHISPER: {"AgentExtensionByAgentIdFunctionArn", "ExtensionAttribute"},
}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
FORBIDDEN_IDENTIFIER_CHARACTERS = set("%:()\\/=$,;[]{}")
# Contact-attribute keys: "Attribute keys can include only alphanumeric, dash, and underscore characters"
# (https://docs.aws.amazon.com/connect/latest/APIReference/API_UpdateContactAttributes.html).
ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def flow_text(name: str) -> str:
    return (FLOWS / name).read_text(encoding="utf-8")


def flow(name: str, values: Mapping[str, str] = PLACEHOLDERS) -> dict[str, Any]:
    """The flow as CloudFormation's Fn::Sub would deploy it."""
    document: dict[str, Any] = json.loads(PLACEHOLDER.sub(lambda match: values[match[1]], flow_text(name)))
    return document


@functools.cache
def flow_type(name: str) -> str:
    """The flow's type as the template deploys it (the flow-language restrictions depend on it)."""
    from firehose.deploy.template import load_template

    logical_id, _ = FLOW_RESOURCES[name]
    return str(load_template()["Resources"][logical_id]["Properties"]["Type"])


def next_actions(action: Mapping[str, Any]) -> list[str]:
    transitions = action["Transitions"]
    targets = [transitions["NextAction"]] if "NextAction" in transitions else []
    targets += [branch["NextAction"] for branch in transitions.get("Conditions", [])]
    targets += [branch["NextAction"] for branch in transitions.get("Errors", [])]
    return targets


# --- the reference, per action type ----------------------------------------------------------------

# AWS::Connect::ContactFlow Type values, grouped as the reference's "Restrictions" sections name them.
INBOUND_FLOWS = frozenset({"CONTACT_FLOW"})
TRANSFER_FLOWS = frozenset({"AGENT_TRANSFER", "QUEUE_TRANSFER"})
CUSTOMER_QUEUE_FLOWS = frozenset({"CUSTOMER_QUEUE"})
WHISPER_FLOWS = frozenset({"CUSTOMER_WHISPER", "AGENT_WHISPER", "OUTBOUND_WHISPER"})
HOLD_FLOWS = frozenset({"CUSTOMER_HOLD", "AGENT_HOLD"})
ALL_FLOWS = INBOUND_FLOWS | TRANSFER_FLOWS | CUSTOMER_QUEUE_FLOWS | WHISPER_FLOWS | HOLD_FLOWS
PROMPTS = ("PromptId", "Text", "SSML")

Rule = Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class ActionSpec:
    """One action type as its reference page documents it."""

    page: str
    parameters: frozenset[str]
    errors: Callable[[Mapping[str, Any]], frozenset[str]]  # the errors to declare, given the parameters
    flows: frozenset[str]
    conditions: bool = False  # whether Conditions are supported at all
    required: frozenset[str] = frozenset()
    terminal: bool = False
    rules: tuple[Rule, ...] = ()

    @property
    def url(self) -> str:
        return f"https://docs.aws.amazon.com/connect/latest/APIReference/{self.page}.html"


def _always(*errors: str) -> Callable[[Mapping[str, Any]], frozenset[str]]:
    return lambda _: frozenset(errors)


def _at_most_one_prompt(parameters: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    given = [name for name in PROMPTS if name in parameters]
    return [f"more than one of {PROMPTS}: {given}"] if len(given) > 1 else []


def _participant_input_errors(parameters: Mapping[str, Any]) -> frozenset[str]:
    # "NoMatchingError - Must always be defined"; NoMatchingCondition "only if StoreInput is False";
    # InvalidPhoneNumber "only if StoreInput is true, and PhoneNumberValidation is specified".
    errors = {"NoMatchingError"}
    if parameters.get("StoreInput") != "True":
        errors.add("NoMatchingCondition")
    elif "PhoneNumberValidation" in parameters.get("InputValidation", {}):
        errors.add("InvalidPhoneNumber")
    return frozenset(errors)


def _participant_input_rules(parameters: Mapping[str, Any], transitions: Mapping[str, Any]) -> list[str]:
    problems = []
    store = parameters.get("StoreInput", "False")
    if store not in ("True", "False"):
        problems.append("StoreInput must be 'True' or 'False'")
    if ("InputValidation" in parameters) != (store == "True"):
        problems.append("InputValidation is required if and only if StoreInput is True")
    validation = parameters.get("InputValidation", {})
    if validation and len(set(validation) & {"PhoneNumberValidation", "CustomValidation"}) != 1:
        problems.append("InputValidation takes one of PhoneNumberValidation, CustomValidation")
    if not set(validation) <= {"PhoneNumberValidation", "CustomValidation"}:
        problems.append(f"unknown InputValidation keys {set(validation)}")
    if not set(validation.get("CustomValidation", {})) <= {"MaximumLength"}:
        problems.append("CustomValidation takes MaximumLength only")
    if not set(parameters.get("DTMFConfiguration", {})) <= {"InputTerminationSequence", "DisableCancelKey"}:
        problems.append("DTMFConfiguration takes InputTerminationSequence, DisableCancelKey only")
    limit = parameters.get("InputTimeLimitSeconds")
    if limit is not None and not (str(limit).isdigit() and int(limit) > 0):
        problems.append("InputTimeLimitSeconds must be an integer larger than zero")
    if store == "True" and transitions.get("Conditions"):
        problems.append("with StoreInput True conditions are not supported")
    return problems


def _lambda_rules(parameters: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    problems = []
    limit = str(parameters.get("InvocationTimeLimitSeconds", ""))
    if not (limit.isdigit() and 0 < int(limit) <= 8):
        problems.append("InvocationTimeLimitSeconds must be an integer greater than 0, no larger than 8")
    if parameters.get("InvocationType", "SYNCHRONOUS") not in ("SYNCHRONOUS", "ASYNCHRONOUS"):
        problems.append("InvocationType must be SYNCHRONOUS or ASYNCHRONOUS")
    validation = parameters.get("ResponseValidation", {"ResponseType": "STRING_MAP"})
    if set(validation) != {"ResponseType"} or validation["ResponseType"] not in ("STRING_MAP", "JSON"):
        problems.append("ResponseValidation takes ResponseType STRING_MAP or JSON")
    return problems


def _compare_rules(parameters: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    value = str(parameters.get("ComparisonValue", ""))
    return [] if re.fullmatch(r"\$\.[A-Za-z0-9_.]+", value) else ["ComparisonValue must be one JSONPath"]


def _attributes_rules(parameters: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    problems = [
        f"attribute key {key!r}" for key in parameters["Attributes"] if not ATTRIBUTE_KEY.fullmatch(key)
    ]
    if parameters.get("TargetContact", "Current") not in ("Current", "Related"):
        problems.append("TargetContact must be Current or Related")
    return problems


EVENT_HOOKS = frozenset(
    {
        "AgentHold",
        "AgentWhisper",
        "CustomerHold",
        "CustomerQueue",
        "CustomerRemaining",
        "CustomerWhisper",
        "DefaultAgentUI",
        "DisconnectAgentUI",
        "PauseContact",
        "ResumeContact",
    }
)


def _event_hooks_rules(parameters: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    hooks = parameters["EventHooks"]
    # "Only one entry may be present in this map"; keys from the page's list of valid event hooks.
    if len(hooks) != 1:
        return ["EventHooks must hold exactly one entry"]
    return [] if set(hooks) <= EVENT_HOOKS else [f"unknown event hook {set(hooks)}"]


def _one_queue(parameters: Mapping[str, Any], _: Mapping[str, Any]) -> list[str]:
    return [] if len({"QueueId", "AgentId"} & set(parameters)) == 1 else ["exactly one of QueueId, AgentId"]


METRIC_TYPES = frozenset(
    {
        "NumberOfAgentsAvailable",
        "NumberOfAgentsStaffed",
        "NumberOfAgentsOnline",
        "OldestContactInQueueAgeSeconds",
        "NumberOfContactsInQueue",
    }
)


def _metric_errors(parameters: Mapping[str, Any]) -> frozenset[str]:
    # NoMatchingCondition "only supported if the MetricType is OldestContactInQueueAgeSeconds or
    # NumberOfContactsInQueue".
    if parameters.get("MetricType") in ("OldestContactInQueueAgeSeconds", "NumberOfContactsInQueue"):
        return frozenset({"NoMatchingError", "NoMatchingCondition"})
    return frozenset({"NoMatchingError"})


def _metric_rules(parameters: Mapping[str, Any], transitions: Mapping[str, Any]) -> list[str]:
    problems = []
    metric = parameters.get("MetricType")
    if metric not in METRIC_TYPES:
        problems.append(f"MetricType {metric!r}")
    if {"QueueId", "AgentId"} <= set(parameters):
        problems.append("QueueId and AgentId may not both be given")
    if str(metric).startswith("NumberOfAgents"):
        # "the only supported condition is 'NumberGreaterThan 0'"
        for branch in transitions.get("Conditions", []):
            if branch["Condition"] != {"Operator": "NumberGreaterThan", "Operands": ["0"]}:
                problems.append(f"condition {branch['Condition']} on {metric}")
    return problems


def _hours_rules(_: Mapping[str, Any], transitions: Mapping[str, Any]) -> list[str]:
    # "There must be a Condition provided for Equals True and a Condition for Equals False, and no other"
    conditions = sorted(
        (branch["Condition"]["Operator"], tuple(branch["Condition"]["Operands"]))
        for branch in transitions.get("Conditions", [])
    )
    return (
        [] if conditions == [("Equals", ("False",)), ("Equals", ("True",))] else ["needs Equals True/False"]
    )


ACTIONS: dict[str, ActionSpec] = {
    "UpdateContactEventHooks": ActionSpec(
        page="contact-actions-updatecontacteventhooks",
        parameters=frozenset({"EventHooks"}),
        required=frozenset({"EventHooks"}),
        errors=_always("NoMatchingError"),
        flows=ALL_FLOWS,
        rules=(_event_hooks_rules,),
    ),
    "GetParticipantInput": ActionSpec(
        page="participant-actions-getparticipantinput",
        parameters=frozenset(
            {
                *PROMPTS,
                "Media",
                "InputTimeLimitSeconds",
                "StoreInput",
                "InputValidation",
                "InputEncryption",
                "DTMFConfiguration",
            }
        ),
        errors=_participant_input_errors,
        flows=INBOUND_FLOWS | TRANSFER_FLOWS | CUSTOMER_QUEUE_FLOWS,
        conditions=True,
        rules=(_at_most_one_prompt, _participant_input_rules),
    ),
    "InvokeLambdaFunction": ActionSpec(
        page="interactions-invokelambdafunction",
        parameters=frozenset(
            {
                "LambdaFunctionARN",
                "InvocationTimeLimitSeconds",
                "InvocationType",
                "LambdaInvocationAttributes",
                "ResponseValidation",
            }
        ),
        required=frozenset({"LambdaFunctionARN", "InvocationTimeLimitSeconds"}),
        errors=_always("NoMatchingError"),
        flows=ALL_FLOWS,
        rules=(_lambda_rules,),
    ),
    "Compare": ActionSpec(
        page="flow-control-actions-compare",
        parameters=frozenset({"ComparisonValue"}),
        required=frozenset({"ComparisonValue"}),
        errors=_always("NoMatchingCondition"),
        flows=ALL_FLOWS,
        conditions=True,
        rules=(_compare_rules,),
    ),
    "MessageParticipant": ActionSpec(
        page="participant-actions-messageparticipant",
        parameters=frozenset({*PROMPTS, "Media"}),
        errors=_always("NoMatchingError"),
        flows=INBOUND_FLOWS | TRANSFER_FLOWS | WHISPER_FLOWS | CUSTOMER_QUEUE_FLOWS,
        rules=(_at_most_one_prompt,),
    ),
    "UpdateContactAttributes": ActionSpec(
        page="contact-actions-updatecontactattributes",
        parameters=frozenset({"Attributes", "TargetContact"}),
        required=frozenset({"Attributes"}),
        errors=_always("NoMatchingError"),
        flows=ALL_FLOWS,
        rules=(_attributes_rules,),
    ),
    "UpdateContactTargetQueue": ActionSpec(
        page="contact-actions-updatecontacttargetqueue",
        parameters=frozenset({"QueueId", "AgentId"}),
        errors=_always("NoMatchingError"),
        flows=INBOUND_FLOWS | TRANSFER_FLOWS,
        rules=(_one_queue,),
    ),
    "CheckMetricData": ActionSpec(
        page="flow-control-actions-checkmetricdata",
        parameters=frozenset({"MetricType", "QueueId", "AgentId"}),
        required=frozenset({"MetricType"}),
        errors=_metric_errors,
        flows=INBOUND_FLOWS | TRANSFER_FLOWS | CUSTOMER_QUEUE_FLOWS,
        conditions=True,
        rules=(_metric_rules,),
    ),
    "TransferContactToQueue": ActionSpec(
        page="contact-actions-transfercontacttoqueue",
        parameters=frozenset(),
        errors=_always("QueueAtCapacity", "NoMatchingError"),
        flows=INBOUND_FLOWS | TRANSFER_FLOWS,
    ),
    "CheckHoursOfOperation": ActionSpec(
        page="flow-control-actions-checkhoursofoperation",
        parameters=frozenset({"HoursOfOperationId"}),
        errors=_always("NoMatchingError"),
        flows=INBOUND_FLOWS | TRANSFER_FLOWS | CUSTOMER_QUEUE_FLOWS,
        conditions=True,
        rules=(_hours_rules,),
    ),
    "DisconnectParticipant": ActionSpec(
        page="participant-actions-disconnectparticipant",
        parameters=frozenset(),
        errors=_always(),
        flows=ALL_FLOWS,
        terminal=True,
    ),
    "EndFlowExecution": ActionSpec(
        page="flow-control-actions-endflowexecution",
        parameters=frozenset(),
        errors=_always(),
        flows=WHISPER_FLOWS | CUSTOMER_QUEUE_FLOWS,
        terminal=True,
    ),
}


def reference_problems(action: Mapping[str, Any], of_flow_type: str) -> list[str]:
    """Where ``action`` departs from its type's reference page (empty when it does not)."""
    spec = ACTIONS.get(action["Type"])
    if spec is None:
        return [f"{action['Type']} is not an action type these flows may use"]
    parameters, transitions = action["Parameters"], action["Transitions"]
    problems = []
    if of_flow_type not in spec.flows:
        problems.append(f"not allowed in a {of_flow_type} flow")
    if unknown := set(parameters) - spec.parameters:
        problems.append(f"undocumented parameters {sorted(unknown)}")
    if missing := spec.required - set(parameters):
        problems.append(f"missing parameters {sorted(missing)}")
    declared = [branch["ErrorType"] for branch in transitions.get("Errors", [])]
    if len(declared) != len(set(declared)):
        problems.append(f"an error declared twice: {declared}")
    if set(declared) != spec.errors(parameters):
        problems.append(f"errors {sorted(declared)}, the reference has {sorted(spec.errors(parameters))}")
    if transitions.get("Conditions") and not spec.conditions:
        problems.append("conditions are not supported")
    if spec.terminal:
        if transitions:
            problems.append("a terminal action has no transitions")
    elif "NextAction" not in transitions:
        problems.append("no NextAction")
    for rule in spec.rules:
        problems.extend(rule(parameters, transitions))
    return [f"{action['Identifier']} ({action['Type']}, {spec.url}): {problem}" for problem in problems]


# --- structure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_every_action_is_as_the_flow_language_reference_documents_it(name: str) -> None:
    # GIVEN the flow as deployed and its type in the template
    document, kind = flow(name), flow_type(name)
    # WHEN each action is checked against its type's reference page
    problems = [problem for action in document["Actions"] for problem in reference_problems(action, kind)]
    # THEN none departs from it
    assert problems == []


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_flow_is_a_well_formed_graph(name: str) -> None:
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
        for target in next_actions(action):
            assert target in by_id, f"{identifier} -> {target}: no such action"
    # every action is reachable from the start
    seen, frontier = set(), [document["StartAction"]]
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(next_actions(by_id[current]))
    assert seen == set(identifiers), f"unreachable: {set(identifiers) - seen}"


def test_the_checker_catches_what_the_issue_found() -> None:
    # GIVEN the departures an earlier version of the inbound flow had
    staffing = {
        "Identifier": "Check provider available",
        "Type": "CheckMetricData",
        "Parameters": {"MetricType": "NumberOfAgentsAvailable"},
        "Transitions": {
            "NextAction": "x",
            "Conditions": [
                {"NextAction": "y", "Condition": {"Operator": "NumberGreaterThan", "Operands": ["0"]}}
            ],
            "Errors": [
                {"NextAction": "x", "ErrorType": "NoMatchingCondition"},
                {"NextAction": "x", "ErrorType": "NoMatchingError"},
            ],
        },
    }
    dotted_key = {
        "Identifier": "Remember",
        "Type": "UpdateContactAttributes",
        "Parameters": {"Attributes": {"provider.ext": "1"}, "TargetContact": "Current"},
        "Transitions": {"NextAction": "x", "Errors": [{"NextAction": "x", "ErrorType": "NoMatchingError"}]},
    }
    # WHEN they are checked THEN each is reported
    assert any("errors" in problem for problem in reference_problems(staffing, "CONTACT_FLOW"))
    assert any("attribute key" in problem for problem in reference_problems(dotted_key, "CONTACT_FLOW"))
    # AND the customer queue flow may not transfer to a queue, nor a whisper flow disconnect by ending
    transfer = {
        "Identifier": "t",
        "Type": "TransferContactToQueue",
        "Parameters": {},
        "Transitions": {
            "NextAction": "x",
            "Errors": [
                {"NextAction": "x", "ErrorType": "QueueAtCapacity"},
                {"NextAction": "x", "ErrorType": "NoMatchingError"},
            ],
        },
    }
    assert reference_problems(transfer, "CONTACT_FLOW") == []
    assert reference_problems(transfer, "CUSTOMER_QUEUE") != []


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_flow_placeholders_are_the_ones_the_template_substitutes(name: str) -> None:
    assert set(PLACEHOLDER.findall(flow_text(name))) == EXPECTED_PLACEHOLDERS[name]


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_lambda_invocations_match_the_lookup_contract(name: str) -> None:
    for action in flow(name)["Actions"]:
        if action["Type"] != "InvokeLambdaFunction":
            continue
        parameters = action["Parameters"]
        # the lookups answer a flat map of strings, synchronously, within the flows' 3 s
        assert parameters["ResponseValidation"] == {"ResponseType": "STRING_MAP"}
        assert parameters["InvocationType"] == "SYNCHRONOUS"
        assert int(parameters["InvocationTimeLimitSeconds"]) == 3
        assert set(parameters["LambdaInvocationAttributes"]) <= {AGENT_ARN_PARAMETER, EXTENSION_PARAMETER}


# --- the walker ------------------------------------------------------------------------------------


@dataclass
class Caller:
    """The world one walk of a flow sees."""

    digits: str | None = None  # None: the caller keys nothing in
    agents_available: int = 1  # on the working queue, as CheckMetricData would load it
    metric_fails: bool = False
    hours_open: bool = True
    lambda_fails: bool = False
    queue_full: bool = False
    agent_arn: str = f"{INSTANCE}/agent/{AGENT}"
    full_name: str | None = PROVIDER_NAME  # what Connect's DescribeUser gives for the provider
    directory: list[DirectoryEntry] = field(
        default_factory=lambda: [DirectoryEntry(AGENT, "4417", "dr.okafor", transcribe_voicemail=True)]
    )


@dataclass
class Outcome:
    path: list[str]
    end: str  # the action the walk ended on
    end_type: str
    attributes: dict[str, str]
    working_queue: str | None
    hooks: dict[str, str]
    messages: list[str]
    lambda_parameters: list[dict[str, str]]

    @property
    def customer_queue_flow(self) -> str | None:
        return self.hooks.get("CustomerQueue")

    @property
    def queued(self) -> bool:
        return self.end_type == "TransferContactToQueue"


class MemoryDirectory:
    def __init__(self, entries: list[DirectoryEntry]) -> None:
        self.entries = entries

    def entry_for_agent(self, agent_id: str) -> DirectoryEntry | None:
        return next((entry for entry in self.entries if entry.agent_id == agent_id), None)

    def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]:
        return tuple(entry for entry in self.entries if entry.extension == extension)


class ConnectNames:
    def __init__(self, name: str | None) -> None:
        self.name = name

    def full_name(self, instance_id: str, agent_id: str) -> str | None:
        assert INSTANCE.endswith(f"/{instance_id}")
        return self.name


class WalkError(Exception):
    """An action took its error branch of this type."""

    def __init__(self, error_type: str) -> None:
        super().__init__(error_type)
        self.error_type = error_type


def walk(name: str, caller: Caller) -> Outcome:
    """Runs the flow for ``caller``: each action does what its reference page says, the Lambdas are the
    real lookup functions over ``caller.directory``."""
    document = flow(name)
    kind = flow_type(name)
    by_id = {action["Identifier"]: action for action in document["Actions"]}
    checked = {identifier: reference_problems(action, kind) for identifier, action in by_id.items()}
    state: dict[str, Any] = {"External": {}, "Agent": {"ARN": caller.agent_arn}, "Attributes": {}}
    working_queue: str | None = None
    hooks: dict[str, str] = {}
    path: list[str] = []
    messages: list[str] = []
    invocations: list[dict[str, str]] = []
    directory = MemoryDirectory(caller.directory)

    def resolve(value: Any) -> Any:
        if not (isinstance(value, str) and value.startswith("$.")):
            return value
        current: Any = state
        for part in value[2:].split("."):
            current = current.get(part, "") if isinstance(current, dict) else ""
        return current

    def branch_on(action: Mapping[str, Any], value: Any) -> str:
        """The transition a result takes: the first matching condition, else NoMatchingCondition when
        declared, else NextAction."""
        transitions = action["Transitions"]
        for branch in transitions.get("Conditions", []):
            operator, (operand,) = branch["Condition"]["Operator"], branch["Condition"]["Operands"]
            if (operator == "Equals" and str(value) == operand) or (
                operator == "NumberGreaterThan" and float(value) > float(operand)
            ):
                return str(branch["NextAction"])
        errors = {branch["ErrorType"]: branch["NextAction"] for branch in transitions.get("Errors", [])}
        return str(errors.get("NoMatchingCondition", transitions["NextAction"]))

    def invoke(parameters: Mapping[str, Any]) -> dict[str, str]:
        arguments = {key: resolve(value) for key, value in parameters["LambdaInvocationAttributes"].items()}
        invocations.append(arguments)
        if caller.lambda_fails:
            raise WalkError("NoMatchingError")
        if parameters["LambdaFunctionARN"] == PLACEHOLDERS["AgentByExtensionFunctionArn"]:
            answer = agent_with_extension(
                directory, arguments, {"InstanceARN": INSTANCE}, ConnectNames(caller.full_name)
            )
        else:
            answer = extension_of_agent(directory, arguments)
        # ResponseValidation STRING_MAP: a flat map of strings, else the error branch
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in answer.items())
        return answer

    current = document["StartAction"]
    for _ in range(100):
        action = by_id[current]
        assert checked[current] == []
        path.append(current)
        kind_of, parameters = action["Type"], action["Parameters"]
        try:
            if ACTIONS[kind_of].terminal:
                return Outcome(
                    path, current, kind_of, state["Attributes"], working_queue, hooks, messages, invocations
                )
            if kind_of == "UpdateContactEventHooks":
                hooks.update({key: resolve(value) for key, value in parameters["EventHooks"].items()})
            elif kind_of == "GetParticipantInput":
                messages.append(parameters["Text"])
                # Stored input with nothing keyed in goes down the success branch as "Timeout"
                # (https://docs.aws.amazon.com/connect/latest/adminguide/store-customer-input.html).
                state["StoredCustomerInput"] = "Timeout" if caller.digits is None else caller.digits
            elif kind_of == "Compare":
                current = branch_on(action, resolve(parameters["ComparisonValue"]))
                continue
            elif kind_of == "InvokeLambdaFunction":
                state["External"] = invoke(parameters)
            elif kind_of == "MessageParticipant":
                messages.append(parameters["Text"])
            elif kind_of == "UpdateContactAttributes":
                values = {key: resolve(value) for key, value in parameters["Attributes"].items()}
                assert all(isinstance(value, str) for value in values.values())
                state["Attributes"].update(values)
            elif kind_of == "UpdateContactTargetQueue":
                working_queue = str(resolve(parameters.get("QueueId") or parameters["AgentId"]))
            elif kind_of == "CheckMetricData":
                # Without QueueId or AgentId it reads the working queue; with none set it fails.
                if caller.metric_fails or working_queue is None:
                    raise WalkError("NoMatchingError")
                current = branch_on(action, caller.agents_available)
                continue
            elif kind_of == "CheckHoursOfOperation":
                if working_queue is None:
                    raise WalkError("NoMatchingError")
                current = branch_on(action, "True" if caller.hours_open else "False")
                continue
            elif kind_of == "TransferContactToQueue":
                if working_queue is None:
                    raise WalkError("NoMatchingError")
                if caller.queue_full:
                    raise WalkError("QueueAtCapacity")
                # In queue: this flow is done; the customer queue flow takes over.
                return Outcome(
                    path, current, kind_of, state["Attributes"], working_queue, hooks, messages, invocations
                )
            else:
                raise AssertionError(f"the walker does not run {kind_of}")
        except WalkError as error:
            errors = {branch["ErrorType"]: branch["NextAction"] for branch in action["Transitions"]["Errors"]}
            current = errors.get(error.error_type, errors["NoMatchingError"])
            continue
        current = action["Transitions"]["NextAction"]
    raise AssertionError(f"flow does not terminate: {path}")


PROVIDER_QUEUE = f"{INSTANCE}/agent/{AGENT}"
VM_AGENT = PLACEHOLDERS["VoicemailCustomerQueueFlowArn"]
GENERAL_QUEUE = PLACEHOLDERS["GeneralQueueArn"]


# --- the caller paths of the inbound flow -----------------------------------------------------------


def test_found_and_available_provider_is_queued_to_them_with_the_voicemail_flow_behind() -> None:
    # GIVEN a caller who keys in the extension of a provider who is available
    # WHEN the inbound flow runs
    outcome = walk(INBOUND, Caller(digits="4417", agents_available=1))
    # THEN the caller is put in the provider's agent queue, with VM-Agent as customer queue flow (it
    # records a message if the provider does not pick up), as the voicemail's VM-Greeting does
    assert (outcome.end, outcome.working_queue, outcome.customer_queue_flow) == (
        "Transfer to provider",
        PROVIDER_QUEUE,
        VM_AGENT,
    )
    assert outcome.lambda_parameters == [{EXTENSION_PARAMETER: "4417"}]
    # AND every attribute KvsProcessRecording reads is set, plus VM-Greeting's "available" flag
    assert outcome.attributes == {
        "agentId": AGENT,
        "agentName": PROVIDER_NAME,
        "extensionNumber": "4417",
        "transferMessage": f"Please wait while we transfer you to {PROVIDER_NAME}",
        "encryptVoicemail": "false",
        "saveCallRecording": "true",
        "transcribeVoicemail": "true",
        VM_AGENT_AVAILABLE_ATTRIBUTE: VM_AGENT_AVAILABLE_VALUE,
    }


@pytest.mark.parametrize(
    "caller", [Caller(digits="4417", agents_available=0), Caller(digits="4417", metric_fails=True)]
)
def test_found_and_unavailable_provider_goes_to_voicemail(caller: Caller) -> None:
    # GIVEN a provider who is not available (or whose availability cannot be read)
    outcome = walk(INBOUND, caller)
    # THEN the caller is still queued to the provider with VM-Agent behind, which records at once
    assert (outcome.end, outcome.working_queue, outcome.customer_queue_flow) == (
        "Transfer to provider",
        PROVIDER_QUEUE,
        VM_AGENT,
    )
    # AND the attributes set are exactly those ContactFlowAttributes.java reads (no "available")
    assert set(outcome.attributes) == CONTACT_FLOW_ATTRIBUTES
    assert all(outcome.attributes.values())


def test_without_a_name_in_connect_the_username_is_spoken() -> None:
    outcome = walk(INBOUND, Caller(digits="4417", agents_available=0, full_name=None))
    assert outcome.attributes["agentName"] == "dr.okafor"
    assert outcome.attributes["transferMessage"] == "Please wait while we transfer you to dr.okafor"


@pytest.mark.parametrize("digits", ["9999", "12a", ""])
def test_unknown_extension_goes_to_the_general_queue(digits: str) -> None:
    # GIVEN a caller whose input matches no provider
    outcome = walk(INBOUND, Caller(digits=digits))
    # THEN they hear so and are queued to the general queue, with no voicemail flow and no attributes
    assert "We could not find that extension" in outcome.messages[-1]
    assert (outcome.end, outcome.working_queue, outcome.customer_queue_flow) == (
        "Transfer to general queue",
        GENERAL_QUEUE,
        None,
    )
    assert outcome.attributes == {}


def test_no_input_skips_the_lookup_and_goes_to_the_general_queue() -> None:
    # GIVEN a caller who keys in nothing (stored input "Timeout")
    outcome = walk(INBOUND, Caller(digits=None))
    # THEN the lookup is not called with "Timeout" and the caller is queued to the general queue
    assert outcome.lambda_parameters == []
    assert (outcome.end, outcome.working_queue, outcome.customer_queue_flow) == (
        "Transfer to general queue",
        GENERAL_QUEUE,
        None,
    )
    assert outcome.attributes == {}


def test_closed_hours_end_the_call_with_a_message_and_no_voicemail() -> None:
    # GIVEN the general queue is out of hours and the caller named no provider
    outcome = walk(INBOUND, Caller(digits=None, hours_open=False))
    # THEN they hear that the office is closed and the call ends: no provider, so no mailbox to record for
    assert "closed" in outcome.messages[-1]
    assert (outcome.end, outcome.end_type) == ("Disconnect", "DisconnectParticipant")
    assert outcome.customer_queue_flow is None
    assert outcome.attributes == {}


def test_closed_hours_do_not_stop_a_caller_who_named_a_provider() -> None:
    outcome = walk(INBOUND, Caller(digits="4417", hours_open=False, agents_available=0))
    assert (outcome.end, outcome.customer_queue_flow) == ("Transfer to provider", VM_AGENT)


def test_lookup_failure_goes_to_the_general_queue() -> None:
    # GIVEN the lookup Lambda fails or times out
    outcome = walk(INBOUND, Caller(digits="4417", lambda_fails=True))
    # THEN the caller is queued to the general queue without any provider attributes
    assert (outcome.end, outcome.working_queue, outcome.customer_queue_flow) == (
        "Transfer to general queue",
        GENERAL_QUEUE,
        None,
    )
    assert outcome.attributes == {}


@pytest.mark.parametrize("digits", ["4417", None])
def test_a_full_queue_ends_the_call_with_an_apology(digits: str | None) -> None:
    outcome = walk(INBOUND, Caller(digits=digits, queue_full=True))
    assert "sorry" in outcome.messages[-1]
    assert outcome.end == "Disconnect"


ALL_CALLERS = [
    Caller(
        digits=digits,
        agents_available=available,
        metric_fails=metric_fails,
        hours_open=hours_open,
        lambda_fails=lambda_fails,
        queue_full=queue_full,
        full_name=full_name,
    )
    for digits, available, metric_fails, hours_open, lambda_fails, queue_full, full_name in itertools.product(
        ["4417", "9999", "", None],
        [0, 1],
        [False, True],
        [True, False],
        [False, True],
        [False, True],
        [PROVIDER_NAME, None],
    )
]


def test_every_path_to_the_voicemail_flow_carries_every_attribute_it_reads() -> None:
    # GIVEN every combination of caller input and service state
    for caller in ALL_CALLERS:
        # WHEN the inbound flow runs
        outcome = walk(INBOUND, caller)
        # THEN whenever the caller is queued with VM-Agent behind, KvsProcessRecording's attributes are set
        if outcome.queued and outcome.customer_queue_flow == VM_AGENT:
            assert set(outcome.attributes) >= CONTACT_FLOW_ATTRIBUTES, caller
            assert outcome.working_queue == PROVIDER_QUEUE, caller
        # AND VM-Agent never runs for a caller queued anywhere but a provider's queue (it would record a
        # message for no one)
        if outcome.queued and outcome.working_queue != PROVIDER_QUEUE:
            assert outcome.customer_queue_flow is None, caller


def test_inbound_flow_installs_the_agent_whisper_flow_first() -> None:
    document = flow(INBOUND)
    first = next(action for action in document["Actions"] if action["Identifier"] == document["StartAction"])
    assert first["Parameters"] == {"EventHooks": {"AgentWhisper": PLACEHOLDERS["AgentWhisperFlowArn"]}}
    assert walk(INBOUND, Caller()).hooks["AgentWhisper"] == PLACEHOLDERS["AgentWhisperFlowArn"]


def test_extension_prompt_stores_up_to_five_digits() -> None:
    (prompt,) = [action for action in flow(INBOUND)["Actions"] if action["Type"] == "GetParticipantInput"]
    parameters = prompt["Parameters"]
    assert parameters["StoreInput"] == "True"
    assert parameters["InputValidation"] == {"CustomValidation": {"MaximumLength": "5"}}


# --- the whisper flow --------------------------------------------------------------------------------


def test_whisper_sets_the_answering_providers_extension() -> None:
    outcome = walk(WHISPER, Caller())
    assert outcome.end == "End whisper"
    assert outcome.lambda_parameters == [{AGENT_ARN_PARAMETER: f"{INSTANCE}/agent/{AGENT}"}]
    assert outcome.attributes == {"extensionNumber": "4417"}


def test_whisper_leaves_attributes_alone_for_an_agent_without_extension() -> None:
    outcome = walk(WHISPER, Caller(directory=[DirectoryEntry(AGENT, "", "dr.okafor")]))
    assert outcome.end == "End whisper"
    assert outcome.attributes == {}
    assert walk(WHISPER, Caller(lambda_fails=True)).attributes == {}


def test_whisper_uses_the_configured_extension_attribute() -> None:
    document = flow(WHISPER, {**PLACEHOLDERS, "ExtensionAttribute": "providerExt"})
    (update,) = [action for action in document["Actions"] if action["Type"] == "UpdateContactAttributes"]
    assert update["Parameters"]["Attributes"] == {"providerExt": "$.External.extension"}


# --- the template deploys exactly these files ------------------------------------------------------


@pytest.mark.parametrize("name", [INBOUND, WHISPER])
def test_template_deploys_the_flow_file_unchanged(name: str) -> None:
    from firehose.deploy.template import TEMPLATE_PATH, load_template, loads_template

    # GIVEN the flow's resource, as written and as CloudFormation receives it
    logical_id, condition = FLOW_RESOURCES[name]
    source = loads_template(TEMPLATE_PATH.read_text(encoding="utf-8"))["Resources"][logical_id]
    template = load_template()
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::Connect::ContactFlow"
    assert resource["Condition"] == condition
    properties = resource["Properties"]
    assert properties["InstanceArn"] == {"Ref": "ConnectInstanceArn"}
    # THEN the template names the file rather than holding a copy of it
    assert source["Properties"]["Content"]["Fn::Sub"][0] == {"Fn::Embed": f"{FLOWS.name}/{name}"}
    # AND CloudFormation receives the file's text to substitute
    text, variables = properties["Content"]["Fn::Sub"]
    assert text == flow_text(name)
    # AND every placeholder is substituted, by the Sub's own variables or a template parameter.
    assert set(PLACEHOLDER.findall(text)) <= set(variables) | set(template["Parameters"])


def test_inbound_flow_deploys_only_with_queue_and_voicemail_flow() -> None:
    from firehose.deploy.template import load_template

    template = load_template()
    condition = template["Conditions"]["DeployInboundFlow"]["Fn::And"]
    assert {"Condition": "HasConnectInstance"} in condition
    referenced = json.dumps(condition)
    assert "GeneralQueueArn" in referenced and "VoicemailCustomerQueueFlowArn" in referenced
