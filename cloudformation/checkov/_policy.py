"""Helpers shared by the custom policies: statements of a policy document, as lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(document: Any) -> Iterator[dict[str, Any]]:
    """Statements of a policy document; both branches of a ``Fn::If`` statement."""
    if not isinstance(document, dict):
        return
    for statement in as_list(document.get("Statement") or []):
        if isinstance(statement, dict) and "Fn::If" in statement:
            branches = statement["Fn::If"]
            if isinstance(branches, list):
                yield from (branch for branch in branches[1:] if isinstance(branch, dict))
        elif isinstance(statement, dict):
            yield statement


def actions(statement: dict[str, Any]) -> list[str]:
    """The statement's actions, lowercased; both branches of a ``Fn::If`` action."""
    found: list[str] = []
    for action in as_list(statement.get("Action")):
        if isinstance(action, dict) and isinstance(action.get("Fn::If"), list):
            for branch in action["Fn::If"][1:]:
                found.extend(str(a).lower() for a in as_list(branch))
        else:
            found.append(str(action).lower())
    return found


def matches(action: str, wanted: str) -> bool:
    """Whether an IAM action pattern (``kms:Create*``, ``*``) covers ``wanted``."""
    import fnmatch

    return fnmatch.fnmatchcase(wanted.lower(), action.lower())
