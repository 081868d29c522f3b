"""Connect-invoked lookup Lambdas: ``lookup.handler.get_agent_extension_by_agent_id`` and
``lookup.handler.get_agent_by_extension``.

Settings are read once, at cold start; a bad value fails the cold start naming the variable. The
DynamoDB client and the TTL cache live as long as the warm container.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from lookup.directory import CachedDirectory, DirectoryTable
from lookup.lookups import agent_with_extension, connect_parameters, extension_of_agent
from lookup.names import ConnectAgentNames
from lookup.settings import LookupSettings

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "ctr-billing-lookup"))

SETTINGS = LookupSettings.from_environ(os.environ)
# The contact flows give the lookup 3 s (InvocationTimeLimitSeconds in cloudformation/flows). The
# extension lookup makes one DynamoDB attempt and then one Connect attempt (the provider's name); both,
# at their worst, must end inside that limit, so a slow service sends the caller down the flow's error
# branch (DynamoDB) or falls back to the username (Connect) in time instead of into silence. No retry: a
# retry's backoff alone could pass the limit.
_CLIENT = boto3.client(
    "dynamodb",
    config=Config(
        connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "total_max_attempts": 1}
    ),
)
_CONNECT = boto3.client(
    "connect",
    config=Config(
        connect_timeout=0.3, read_timeout=0.7, retries={"mode": "standard", "total_max_attempts": 1}
    ),
)
DIRECTORY = CachedDirectory(
    DirectoryTable(_CLIENT, SETTINGS.directory_table), SETTINGS.cache_seconds, SETTINGS.cache_entries
)
NAMES = ConnectAgentNames(_CONNECT, SETTINGS.cache_seconds, SETTINGS.cache_entries)


@logger.inject_lambda_context(log_event=False)
def get_agent_extension_by_agent_id(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    parameters, _ = connect_parameters(event)
    answer = extension_of_agent(DIRECTORY, parameters)
    _log(answer)
    return answer


@logger.inject_lambda_context(log_event=False)
def get_agent_by_extension(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    parameters, contact = connect_parameters(event)
    answer = agent_with_extension(DIRECTORY, parameters, contact, NAMES)
    _log(answer)
    return answer


def _log(answer: dict[str, str]) -> None:
    # The outcome only: never the caller's input or contact data.
    logger.info("lookup answered", extra={"found": answer["found"], "problem": answer.get("error", "")})
