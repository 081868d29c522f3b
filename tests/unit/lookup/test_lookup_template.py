"""The template and the lookup code agree: handlers, environment, directory table shape, permissions."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from firehose.deploy.template import lambda_environment, load_template, resource_properties
from lookup.directory import AGENT_ID_ATTRIBUTE, EXTENSION_ATTRIBUTE, EXTENSION_INDEX

LOOKUP_FUNCTIONS = ("AgentExtensionByAgentIdFunction", "AgentByExtensionFunction")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize("logical_id", LOOKUP_FUNCTIONS)
def test_lookup_handlers_exist_and_read_directory_table(
    template: dict[str, Any], logical_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the environment the template gives the function (the table name is an intrinsic there)
    environment = lambda_environment(template, logical_id)
    assert set(environment) >= {"DIRECTORY_TABLE"}
    monkeypatch.setenv("DIRECTORY_TABLE", "provider-directory")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # WHEN the Handler's module is loaded (a cold start; no AWS call is made)
    module_name, function_name = resource_properties(template, logical_id)["Handler"].rsplit(".", 1)
    module = importlib.reload(importlib.import_module(module_name))
    # THEN the handler is a function of it
    assert callable(getattr(module, function_name))


def test_directory_table_has_the_shape_the_code_reads(template: dict[str, Any]) -> None:
    properties = resource_properties(template, "ProviderDirectoryTable")
    assert properties["KeySchema"] == [{"AttributeName": AGENT_ID_ATTRIBUTE, "KeyType": "HASH"}]
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == EXTENSION_INDEX
    assert index["KeySchema"] == [{"AttributeName": EXTENSION_ATTRIBUTE, "KeyType": "HASH"}]
    # the lookups read username from the index, so it must project every attribute
    assert index["Projection"] == {"ProjectionType": "ALL"}
    types = {d["AttributeName"]: d["AttributeType"] for d in properties["AttributeDefinitions"]}
    assert types == {AGENT_ID_ATTRIBUTE: "S", EXTENSION_ATTRIBUTE: "S"}


@pytest.mark.parametrize(
    ("role", "actions"),
    [
        ("LookupRole", {"dynamodb:GetItem", "dynamodb:Query"}),
        ("TransformCsvRole", {"dynamodb:BatchGetItem"}),
        ("TransformJsonRole", {"dynamodb:BatchGetItem"}),
    ],
)
def test_roles_allow_the_directory_reads_the_code_makes(
    template: dict[str, Any], role: str, actions: set[str]
) -> None:
    if role not in template["Resources"]:
        pytest.fail(f"template has no {role}; update this test with the role of the functions")
    statements = [
        statement
        for policy in resource_properties(template, role).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "ReadProviderDirectory"
    ]
    assert statements, f"{role} has no ReadProviderDirectory statement"
    granted = {action for statement in statements for action in statement["Action"]}
    assert actions <= granted
