"""The billing ledger's pure parts and its DynamoDB adapter against a botocore ``Stubber`` (no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from tests.unit.ctr_factory import billable_ctr, firehose_record
from transform.batch import BatchTransformer, PendingContact
from transform.ledger import (
    Claim,
    DynamoLedger,
    LedgerStage,
    LedgerUnavailableError,
    billing_fingerprint,
    ledger_entry,
)
from transform.rules import BillableContact, Outcome, classify
from transform.settings import TransformSettings

TABLE = "billing-ledger"


def pending(ctr: dict[str, Any], sequence: int = 0, *, metadata: bool = True) -> PendingContact:
    record = firehose_record(ctr, f"r{sequence}", sequence)
    if not metadata:
        del record["kinesisRecordMetadata"]
    contact = classify(ctr, TransformSettings())
    assert isinstance(contact, BillableContact)
    return PendingContact(record["recordId"], record, contact)


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def winner_item(entry: Any, fingerprint: str | None = None) -> dict[str, Any]:
    return {
        "contactId": {"S": entry.contact_id},
        "shardId": {"S": entry.shard_id},
        "sequenceNumber": {"S": entry.sequence_number},
        "subsequenceNumber": {"N": str(entry.subsequence_number)},
        "fingerprint": {"S": fingerprint or entry.fingerprint},
    }


def test_the_fingerprint_follows_billing_fields_but_not_the_phone() -> None:
    # GIVEN one contact and variants of it
    ctr = billable_ctr(phone="+12025550100", talk_seconds=300, extension="4417")
    same_bill_other_phone = billable_ctr(contact_id=ctr["ContactId"], phone="+12025550199", talk_seconds=300)
    longer = billable_ctr(contact_id=ctr["ContactId"], phone="+12025550100", talk_seconds=301)
    other_provider = billable_ctr(contact_id=ctr["ContactId"], talk_seconds=300, extension="5000")
    # THEN the phone number (PHI) does not enter the fingerprint; duration and provider do
    base = billing_fingerprint(pending(ctr))
    assert billing_fingerprint(pending(same_bill_other_phone)) == base
    assert billing_fingerprint(pending(longer)) != base
    assert billing_fingerprint(pending(other_provider)) != base
    assert len(base) == 64
    assert "12025550100" not in base


def test_the_entry_carries_the_kinesis_coordinates() -> None:
    # GIVEN a record from Kinesis, and one without Kinesis metadata (Direct PUT)
    ctr = billable_ctr()
    from_kinesis = pending(ctr, 7)
    direct_put = pending(ctr, 8, metadata=False)
    # THEN the first is identified by shard and sequence number, the second by its recordId
    entry = ledger_entry(from_kinesis)
    metadata = from_kinesis.record["kinesisRecordMetadata"]
    assert (entry.contact_id, entry.shard_id, entry.sequence_number, entry.subsequence_number) == (
        ctr["ContactId"],
        metadata["shardId"],
        metadata["sequenceNumber"],
        0,
    )
    assert ledger_entry(direct_put).sequence_number == "record:r8"


def test_a_new_contact_is_claimed_with_a_conditional_put(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a ledger whose put succeeds
    client, stubber = stubbed
    entry = ledger_entry(pending(billable_ctr()))
    stubber.add_response(
        "put_item",
        {},
        {
            "TableName": TABLE,
            "Item": ANY,
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": "contactId"},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )
    # WHEN the contact is claimed THEN it is the first
    assert DynamoLedger(client, TABLE, 30, clock=lambda: 1000).claim(entry) is Claim.FIRST


@pytest.mark.parametrize(
    ("winner_sequence", "winner_fingerprint", "expected"),
    [
        (None, None, Claim.RETRY),
        ("1", None, Claim.DUPLICATE),
        ("1", "0" * 64, Claim.CORRECTION),
    ],
)
def test_a_claimed_contact_is_read_back_when_the_failure_carries_no_item(
    stubbed: tuple[Any, Stubber], winner_sequence: str | None, winner_fingerprint: str | None, expected: Claim
) -> None:
    # GIVEN a contact already claimed, and a DynamoDB that does not return the old item with the failure
    client, stubber = stubbed
    entry = ledger_entry(pending(billable_ctr()))
    winner = winner_item(entry, winner_fingerprint)
    if winner_sequence is not None:
        winner["sequenceNumber"] = {"S": winner_sequence}
    stubber.add_client_error("put_item", service_error_code="ConditionalCheckFailedException")
    stubber.add_response(
        "get_item",
        {"Item": winner},
        {"TableName": TABLE, "Key": {"contactId": {"S": entry.contact_id}}, "ConsistentRead": True},
    )
    # WHEN it is claimed THEN the consistent read decides: same record, duplicate, or correction
    assert DynamoLedger(client, TABLE, 30).claim(entry) is expected


def test_throttling_is_retried_with_growing_backoff(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a ledger throttled twice (both throttling codes), then accepting the put
    client, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="ProvisionedThroughputExceededException")
    stubber.add_client_error("put_item", service_error_code="ThrottlingException")
    stubber.add_response("put_item", {})
    sleeps: list[float] = []
    adapter = DynamoLedger(client, TABLE, 30, sleep=sleeps.append)
    # WHEN a contact is claimed
    claim = adapter.claim(ledger_entry(pending(billable_ctr())))
    # THEN it succeeded after two backoffs within the jitter ceilings
    assert claim is Claim.FIRST
    assert adapter.throttled == 2
    assert len(sleeps) == 2
    assert all(0 <= pause <= 0.05 * 2 ** (index + 1) for index, pause in enumerate(sleeps))


def test_other_errors_fail_the_claim_without_retrying(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a ledger table that does not exist
    client, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="ResourceNotFoundException")
    # WHEN a contact is claimed THEN the invocation must fail, naming the table and the code only
    with pytest.raises(LedgerUnavailableError, match=f"{TABLE}: ResourceNotFoundException"):
        DynamoLedger(client, TABLE, 30).claim(ledger_entry(pending(billable_ctr())))


class ScriptedLedger(DynamoLedger):
    """Answers claims from a dict of contactId -> Claim, recording the order of calls."""

    def __init__(self, answers: dict[str, Claim]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def claim(self, entry: Any) -> Claim:
        self.calls.append(entry.contact_id)
        return self.answers[entry.contact_id]


def test_the_stage_drops_duplicates_and_flags_corrections() -> None:
    # GIVEN a ledger that knows three contacts in three states
    first, retried, duplicate, corrected = (billable_ctr() for _ in range(4))
    scripted = ScriptedLedger(
        {
            first["ContactId"]: Claim.FIRST,
            retried["ContactId"]: Claim.RETRY,
            duplicate["ContactId"]: Claim.DUPLICATE,
            corrected["ContactId"]: Claim.CORRECTION,
        }
    )
    settings = TransformSettings()
    transformer = BatchTransformer(settings, [LedgerStage(scripted, parallelism=2)])
    # WHEN a batch of them is transformed
    batch = [firehose_record(ctr, f"r{i}", i) for i, ctr in enumerate((first, retried, duplicate, corrected))]
    result = transformer.transform(batch)
    # THEN first and retried are emitted, the others dropped; one correction counted
    assert [answer["result"] for answer in result.records] == ["Ok", "Ok", "Dropped", "Dropped"]
    assert result.outcomes[Outcome.BILLABLE] == 2
    assert result.outcomes[Outcome.DUPLICATE] == 2
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 1


def test_the_handler_does_not_import_boto3_without_a_ledger() -> None:
    # GIVEN the Lambda environment without LEDGER_TABLE or DIRECTORY_TABLE
    environment = {
        key: value for key, value in os.environ.items() if key not in ("LEDGER_TABLE", "DIRECTORY_TABLE")
    }
    # WHEN the handler module is imported in a fresh interpreter
    probe = "import sys, transform.handler; print('boto3' in sys.modules, 'transform.ledger' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # THEN neither boto3 nor the ledger was loaded (powertools itself loads botocore, not boto3)
    assert output.split() == ["False", "False"]
