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
from lookup.settings import LookupSettings

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "ctr-billing-lookup"))

SETTINGS = LookupSettings.from_environ(os.environ)
# The contact flows give the lookup 3 s (InvocationTimeLimitSeconds in cloudformation/flows); one
# DynamoDB attempt must fit inside it, so a slow table sends the caller down the flow's error branch
# in time instead of into silence. No retry: a retry's backoff alone could pass the limit.
_CLIENT = boto3.client(
    "dynamodb",
    config=Config(
        connect_timeout=1.0, read_timeout=1.5, retries={"mode": "standard", "total_max_attempts": 1}
    ),
)
DIRECTORY = CachedDirectory(
    DirectoryTable(_CLIENT, SETTINGS.directory_table), SETTINGS.cache_seconds, SETTINGS.cache_entries
)


@logger.inject_lambda_context(log_event=False)
def get_agent_extension_by_agent_id(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    parameters, _ = connect_parameters(event)
    answer = extension_of_agent(DIRECTORY, parameters)
    _log(answer)
    return answer


@logger.inject_lambda_context(log_event=False)
def get_agent_by_extension(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    parameters, contact = connect_parameters(event)
    answer = agent_with_extension(DIRECTORY, parameters, contact)
    _log(answer)
    return answer


def _log(answer: dict[str, str]) -> None:
    # The outcome only: never the caller's input or contact data.
    logger.info("lookup answered", extra={"found": answer["found"], "problem": answer.get("error", "")})
