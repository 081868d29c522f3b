"""Pure parsing and validation of the identifiers the lookups handle: agent ids and ARNs, extensions,
Connect instance ARNs. No AWS, no I/O. Error messages name the problem, never echo the value.
"""

from __future__ import annotations

import re

# A provider's extension: what a caller keys in on the phone.
EXTENSION = re.compile(r"[0-9]{1,5}")
# Connect user ids are UUIDs; any DynamoDB-friendly token is accepted so existing tables keep working.
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
INSTANCE_ARN = re.compile(r"arn:aws[a-z\-]*:connect:[a-z0-9\-]+:[0-9]{12}:instance/[A-Za-z0-9\-]+")
AGENT_ARN = re.compile(
    r"(?P<instance>arn:aws[a-z\-]*:connect:[a-z0-9\-]+:[0-9]{12}:instance/[A-Za-z0-9\-]+)"
    r"/agent/(?P<agent>[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})"
)


class InvalidIdentifierError(ValueError):
    """A parameter is missing or malformed; the message says which and how, without its value."""


def agent_id_from(value: object, name: str = "AgentArn") -> str:
    """An agent's ARN (``…:instance/<id>/agent/<agent id>``) or a bare agent id -> the agent id."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidIdentifierError(f"missing parameter {name}")
    value = value.strip()
    if value.startswith("arn:"):
        match = AGENT_ARN.fullmatch(value)
        if match is None:
            raise InvalidIdentifierError(f"{name} is not an Amazon Connect agent ARN")
        return match["agent"]
    if AGENT_ID.fullmatch(value) is None:
        raise InvalidIdentifierError(f"{name} is neither an agent ARN nor an agent id")
    return value


def extension_from(value: object, name: str = "extensionNumber") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidIdentifierError(f"missing parameter {name}")
    value = value.strip()
    if EXTENSION.fullmatch(value) is None:
        raise InvalidIdentifierError(f"{name} must be 1-5 digits")
    return value


def instance_arn_from(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidIdentifierError("missing ContactData.InstanceARN")
    if INSTANCE_ARN.fullmatch(value) is None:
        raise InvalidIdentifierError("ContactData.InstanceARN is not an Amazon Connect instance ARN")
    return value


def instance_id(instance_arn: str) -> str:
    """The id Connect's API calls take (``InstanceId``): the ARN's last segment."""
    return instance_arn.rsplit("/", 1)[-1]


def agent_arn(instance_arn: str, agent_id: str) -> str:
    return f"{instance_arn}/agent/{agent_id}"


def agent_queue_arn(instance_arn: str, agent_id: str) -> str:
    """Every Connect agent has an agent queue of the same id; transferring there rings that agent."""
    return f"{instance_arn}/queue/agent/{agent_id}"


def is_extension(value: str) -> bool:
    return EXTENSION.fullmatch(value) is not None


def is_agent_id(value: str) -> bool:
    return AGENT_ID.fullmatch(value) is not None
