"""Providers' full names, from Amazon Connect, cached per warm container.

The voicemail solution's VM-Agent flow speaks the contact attribute ``agentName`` to the caller ("<name>
is not available"), and its own lookup fills it with the Connect user's first and last name
(``getAgentByExtension`` in amazon-connect/voicemail-for-amazon-connect
source/aws-connect-vm-serverless/src/handler/agents.js, ``ConnectUser.getFullName`` in
.../src/domain/connect-user.domain.js: ``DescribeUser`` → ``IdentityInfo.FirstName`` / ``LastName``).
Its agents table, which its nightly sync fills, holds only ``username``; so the name comes from Connect,
and the caller of this module falls back to the username when Connect does not answer in time.

A failed call is not cached (the next contact tries again); a name, or the absence of one, is cached
for the TTL. Errors never carry request data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from lookup.cache import TTLCache


class DescribesUsers(Protocol):
    """The one call of a boto3 Connect client this module makes."""

    def describe_user(self, *, InstanceId: str, UserId: str) -> Mapping[str, Any]: ...


class AgentNames(Protocol):
    def full_name(self, instance_id: str, agent_id: str) -> str | None:
        """The agent's full name, or None when it is unknown or cannot be had now."""
        ...


def full_name_of(user: object) -> str:
    """``FirstName LastName`` of a DescribeUser ``User``, skipping a missing part ("" when none)."""
    identity = user.get("IdentityInfo") if isinstance(user, dict) else None
    if not isinstance(identity, dict):
        return ""
    parts = (identity.get("FirstName"), identity.get("LastName"))
    return " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())


class ConnectAgentNames:
    """``AgentNames`` through a boto3 Connect client (``connect:DescribeUser``)."""

    def __init__(
        self,
        client: DescribesUsers,
        cache_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._cache: TTLCache[tuple[str, str], str | None] = TTLCache(cache_seconds, max_entries, clock)

    def full_name(self, instance_id: str, agent_id: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = (instance_id, agent_id)
        hit, name = self._cache.lookup(key)
        if hit:
            return name
        try:
            response = self.client.describe_user(InstanceId=instance_id, UserId=agent_id)
        except (ClientError, BotoCoreError):
            # Throttled, slow, not allowed, or the user is gone: the flow still needs its answer now.
            return None
        name = full_name_of(response.get("User")) or None
        self._cache.put(key, name)
        return name
