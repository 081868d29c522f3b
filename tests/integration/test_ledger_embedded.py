"""The embedded AWS's ``TransactWriteItems`` (fix ``dynamodb-transaction-rollback`` in
``firehose.local_aws.moto_fixes``): the ledger's batched claims cost O(items in the transaction), not
O(table), and keep DynamoDB's all-or-nothing semantics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from firehose.deploy.template import load_template, resource_properties
from firehose.local_aws import moto_fixes
from firehose.local_aws.server import EmbeddedAws

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


@pytest.fixture(scope="module")
def dynamodb(aws: EmbeddedAws) -> Any:
    return aws.client("dynamodb")


@pytest.fixture(scope="module")
def big_table(dynamodb: Any) -> str:
    """A ledger-shaped table (the template's key schema) holding 3,000 claims."""
    properties = resource_properties(load_template(), "BillingLedgerTable")
    dynamodb.create_table(
        TableName="big-ledger",
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    for start in range(0, 3000, 100):
        dynamodb.transact_write_items(TransactItems=[put(index) for index in range(start, start + 100)])
    return "big-ledger"


def put(index: int, sequence: str = "1") -> dict[str, Any]:
    return {
        "Put": {
            "TableName": "big-ledger",
            "Item": {"contactId": {"S": f"contact-{index:06d}"}, "sequenceNumber": {"S": sequence}},
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": "contactId"},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def count(dynamodb: Any, table: str) -> int:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)


def test_the_embedded_aws_serves_the_patched_transactions(aws: EmbeddedAws) -> None:
    # GIVEN the embedded AWS (its module installs the patch in the process that serves)
    # THEN moto's TransactWriteItems is the patched one
    assert DynamoDBBackend.transact_write_items is moto_fixes._transact_with_item_rollback


def test_a_transaction_on_a_big_table_costs_its_own_items_only(dynamodb: Any, big_table: str) -> None:
    # GIVEN a table of 3,000 items WHEN 100 more are claimed in one transaction
    started = time.perf_counter()
    dynamodb.transact_write_items(TransactItems=[put(index) for index in range(5000, 5100)])
    elapsed = time.perf_counter() - started
    # THEN it takes well under a second (moto's own copies the table per item: ~20 s here)
    assert elapsed < 1.0
    assert count(dynamodb, big_table) == 3100


def test_a_cancelled_transaction_writes_nothing_and_names_the_winners(dynamodb: Any, big_table: str) -> None:
    # GIVEN a transaction of two new contacts around one already claimed
    before = count(dynamodb, big_table)
    items = [put(9001, "2"), put(7, "2"), put(9002, "2")]
    # WHEN it is submitted
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=items)
    # THEN DynamoDB's reasons say which item failed, with the winner's item
    reasons = cancelled.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "ConditionalCheckFailed", "None"]
    assert reasons[1]["Item"]["sequenceNumber"] == {"S": "1"}
    # AND nothing was written: the new contacts are absent, the claimed one unchanged
    assert count(dynamodb, big_table) == before
    for index, expected in ((9001, None), (7, {"S": "1"})):
        item = dynamodb.get_item(TableName=big_table, Key={"contactId": {"S": f"contact-{index:06d}"}})
        assert item.get("Item", {}).get("sequenceNumber") == expected
