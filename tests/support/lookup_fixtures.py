"""Fixtures of the lookup / directory / enrichment integration tests: a moto server on 127.0.0.1 reached
over HTTP with boto3, and a provider directory table created from ``cloudformation/template.yaml``.

Test modules import the fixtures they use (``from tests.support.lookup_fixtures import ...``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from firehose.deploy.template import load_template, resource_properties
from tests.support.moto_server import REGION

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DIRECTORY_RESOURCE = "ProviderDirectoryTable"


@pytest.fixture
def dynamodb(aws_env: str) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env)


def directory_table_definition() -> dict[str, Any]:
    """Key schema, attributes and GSIs of the directory table exactly as the template declares them."""
    properties = resource_properties(load_template(), DIRECTORY_RESOURCE)
    definition: dict[str, Any] = {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    indexes = properties.get("GlobalSecondaryIndexes")
    if indexes:
        definition["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")} for index in indexes
        ]
    return definition


@pytest.fixture
def directory_table(dynamodb: DynamoDBClient) -> Iterator[str]:
    """A fresh, empty directory table per test (unique name, so tests never share entries)."""
    name = f"provider-directory-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(TableName=name, **directory_table_definition())
    try:
        yield name
    finally:
        dynamodb.delete_table(TableName=name)


class CallCounter:
    """Counts the DynamoDB API calls a boto3 client makes, by operation name."""

    def __init__(self, client: DynamoDBClient) -> None:
        self.calls: dict[str, int] = {}
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def __getitem__(self, operation: str) -> int:
        return self.calls.get(operation, 0)

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def count_calls() -> type[CallCounter]:
    """``count_calls(client)`` starts counting that client's DynamoDB calls."""
    return CallCounter
