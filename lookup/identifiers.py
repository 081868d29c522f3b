"""Pure parsing and validation of the identifiers the lookups handle: agent ids and ARNs, extensions,
Connect instance ARNs. No AWS, no I/O. Error messages name the problem, never echo the value.
"""

from __future__ import annotations

import re
import unicodedata

# A provider's extension: what a caller keys in on the phone, in its canonical form (DESIGN §3):
# ASCII digits, leading zeros kept and significant.
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


def canonical_extension(value: str) -> str:
    """An extension in its canonical form (DESIGN §3), the one function the directory, the lookups and
    the billing CSV use: surrounding white space dropped and, when every character is a Unicode decimal
    digit (``४४१७``, ``٤٤١٧``, full-width digits), each mapped to its ASCII digit (``4417``). Leading
    zeros are kept: ``0417`` and ``417`` are different extensions. Any other value is returned as given
    (stripped); whether it is a valid extension is ``is_extension``'s question."""
    value = value.strip()
    if value.isdecimal() and not value.isascii():
        return "".join(str(unicodedata.decimal(char)) for char in value)
    return value


def extension_clash_key(extension: str) -> str:
    """What two extensions must not share across agents: the extension with leading zeros ignored
    (``0417`` and ``417`` clash; ``0`` and ``00`` too)."""
    return canonical_extension(extension).lstrip("0") or "0"


def zero_padded_forms(extension: str) -> tuple[str, ...]:
    """Every valid extension that clashes with ``extension`` (itself included), e.g. ``417`` ->
    ``417, 0417, 00417``: what to look up to find a clashing holder."""
    key = extension_clash_key(extension)
    first = len(key) if key != "0" else 1
    return tuple("0" * (width - len(key)) + key for width in range(first, 6) if width >= len(key))


def extension_from(value: object, name: str = "extensionNumber") -> str:
    """A caller's keyed digits (or a flow attribute) -> the canonical extension."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidIdentifierError(f"missing parameter {name}")
    value = canonical_extension(value)
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
