"""The billing ledger's pure parts and its DynamoDB adapter against a botocore ``Stubber`` (no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.support.ctr_factory import billable_ctr, firehose_record
from transform.core.batch import BatchTransformer, PendingContact
from transform.core.rules import BillableContact, Outcome, classify
from transform.core.settings import TransformSettings
from transform.stages.ledger import (
    Claim,
    DynamoLedger,
    LedgerStage,
    LedgerUnavailableError,
    billing_fingerprint,
    ledger_entry,
)

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


def read_request(*entries: Any) -> dict[str, Any]:
    """The expected ``BatchGetItem`` parameters for ``entries``' contacts."""
    keys = [{"contactId": {"S": entry.contact_id}} for entry in entries]
    return {"RequestItems": {TABLE: {"Keys": keys, "ConsistentRead": True}}}


def claim_request(*entries: Any, now: int = 1000, retention_days: int = 30) -> dict[str, Any]:
    """The expected ``TransactWriteItems`` parameters claiming ``entries``' contacts."""
    return {
        "TransactItems": [
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {
                        **winner_item(entry),
                        "claimedAt": {"N": str(now)},
                        "expiresAt": {"N": str(now + retention_days * 86400)},
                    },
                    "ConditionExpression": "attribute_not_exists(#key)",
                    "ExpressionAttributeNames": {"#key": "contactId"},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for entry in entries
        ]
    }


def cancelled(stubber: Stubber, *reasons: dict[str, Any]) -> None:
    """The next ``TransactWriteItems`` is cancelled with these per-item reasons."""
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        modeled_fields={"CancellationReasons": list(reasons)},
    )


def entries(count: int) -> list[Any]:
    return [ledger_entry(pending(billable_ctr(), index)) for index in range(count)]


def adapter(client: Any, **options: Any) -> DynamoLedger:
    return DynamoLedger(client, TABLE, 30, clock=lambda: 1000, **options)


def test_new_contacts_are_read_then_claimed_in_one_conditional_transaction(
    stubbed: tuple[Any, Stubber],
) -> None:
    # GIVEN two contacts the ledger does not know
    client, stubber = stubbed
    first, second = entries(2)
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}}, read_request(first, second))
    stubber.add_response("transact_write_items", {}, claim_request(first, second))
    # WHEN they are claimed THEN one consistent read and one transaction of conditional puts claim both
    assert adapter(client).claim_all([[first], [second]]) == [[Claim.FIRST], [Claim.FIRST]]


@pytest.mark.parametrize(
    ("winner_sequence", "winner_fingerprint", "expected"),
    [
        (None, None, Claim.RETRY),
        ("1", None, Claim.DUPLICATE),
        ("1", "0" * 64, Claim.CORRECTION),
    ],
)
def test_a_claimed_contact_is_decided_by_the_read_without_writing(
    stubbed: tuple[Any, Stubber], winner_sequence: str | None, winner_fingerprint: str | None, expected: Claim
) -> None:
    # GIVEN a contact already claimed by the same record, another record, or one with other billing fields
    client, stubber = stubbed
    (entry,) = entries(1)
    winner = winner_item(entry, winner_fingerprint)
    if winner_sequence is not None:
        winner["sequenceNumber"] = {"S": winner_sequence}
    stubber.add_response("batch_get_item", {"Responses": {TABLE: [winner]}}, read_request(entry))
    # WHEN it is claimed THEN the consistent read decides (no transaction is made)
    assert adapter(client).claim_all([[entry]]) == [[expected]]


def test_later_records_of_a_contact_in_the_batch_are_decided_against_the_first(
    stubbed: tuple[Any, Stubber],
) -> None:
    # GIVEN one new contact delivered three times in a batch: first, republished with a new duration,
    # and the first record again
    client, stubber = stubbed
    ctr = billable_ctr(talk_seconds=300)
    first = ledger_entry(pending(ctr, 0))
    corrected = ledger_entry(pending(billable_ctr(contact_id=ctr["ContactId"], talk_seconds=400), 1))
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}}, read_request(first))
    stubber.add_response("transact_write_items", {}, claim_request(first))
    # WHEN they are claimed THEN only the first is written; the others follow it in batch order
    assert adapter(client).claim_all([[first, corrected, first]]) == [
        [Claim.FIRST, Claim.CORRECTION, Claim.RETRY]
    ]


def test_a_race_lost_inside_a_transaction_resubmits_the_rest_and_reads_the_winner(
    stubbed: tuple[Any, Stubber],
) -> None:
    # GIVEN three new contacts; between the read and the write a concurrent invocation claims the second
    # (DynamoDB does not return its item) and the third (returned with the reasons)
    client, stubber = stubbed
    first, second, third = entries(3)
    other_record = {**winner_item(second), "sequenceNumber": {"S": "999"}}
    corrected = {**winner_item(third, "0" * 64), "sequenceNumber": {"S": "998"}}
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}}, read_request(first, second, third))
    cancelled(
        stubber,
        {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
        {"Code": "ConditionalCheckFailed", "Item": corrected},
    )
    stubber.add_response("transact_write_items", {}, claim_request(first))
    stubber.add_response("batch_get_item", {"Responses": {TABLE: [other_record]}}, read_request(second))
    sleeps: list[float] = []
    # WHEN they are claimed
    claims = adapter(client, sleep=sleeps.append).claim_all([[first], [second], [third]])
    # THEN the first is resubmitted alone (a cancelled transaction wrote nothing) and claimed without
    # waiting; the others lost to their winners
    assert claims == [[Claim.FIRST], [Claim.DUPLICATE], [Claim.CORRECTION]]
    assert sleeps == []


@pytest.mark.parametrize(
    "throttle",
    ["read", "unprocessed keys", "transaction", "transaction conflict"],
)
def test_throttling_of_each_call_is_retried_with_growing_backoff(
    stubbed: tuple[Any, Stubber], throttle: str
) -> None:
    # GIVEN a ledger that throttles one kind of call twice, then answers
    client, stubber = stubbed
    first, second = entries(2)
    for _ in range(2):
        if throttle == "read":
            stubber.add_client_error(
                "batch_get_item", service_error_code="ProvisionedThroughputExceededException"
            )
        elif throttle == "unprocessed keys":
            stubber.add_response(
                "batch_get_item",
                {"Responses": {TABLE: []}, "UnprocessedKeys": read_request(second)["RequestItems"]},
            )
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    for _ in range(2):
        if throttle == "transaction":
            stubber.add_client_error("transact_write_items", service_error_code="ThrottlingException")
        elif throttle == "transaction conflict":
            cancelled(stubber, {"Code": "None"}, {"Code": "TransactionConflict"})
    stubber.add_response("transact_write_items", {}, claim_request(first, second))
    sleeps: list[float] = []
    ledger = adapter(client, sleep=sleeps.append)
    # WHEN two contacts are claimed
    claims = ledger.claim_all([[first], [second]])
    # THEN they were claimed after two backoffs within the jitter ceilings
    assert claims == [[Claim.FIRST], [Claim.FIRST]]
    assert ledger.throttled == 2
    assert len(sleeps) == 2
    assert all(0 <= pause <= 0.05 * 2 ** (index + 1) for index, pause in enumerate(sleeps))


def test_a_ledger_that_stays_throttled_fails_the_claim(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a ledger whose reads come back unprocessed on every attempt
    client, stubber = stubbed
    (entry,) = entries(1)
    for _ in range(3):
        stubber.add_response(
            "batch_get_item",
            {"Responses": {TABLE: []}, "UnprocessedKeys": read_request(entry)["RequestItems"]},
        )
    # WHEN a contact is claimed THEN the invocation fails once the attempts are spent
    with pytest.raises(
        LedgerUnavailableError, match=f"{TABLE}: still throttled \\(UnprocessedKeys\\) after 3"
    ):
        adapter(client, max_attempts=3, sleep=lambda _: None).claim_all([[entry]])


@pytest.mark.parametrize(
    ("call", "code"),
    [("batch_get_item", "ResourceNotFoundException"), ("transact_write_items", "AccessDeniedException")],
)
def test_other_errors_fail_the_claim_without_retrying(
    stubbed: tuple[Any, Stubber], call: str, code: str
) -> None:
    # GIVEN a ledger table that does not exist, or a role that may not write it
    client, stubber = stubbed
    if call == "transact_write_items":
        stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    stubber.add_client_error(call, service_error_code=code)
    # WHEN a contact is claimed THEN the invocation must fail, naming the table and the code only
    with pytest.raises(LedgerUnavailableError, match=f"{TABLE}: {code}"):
        adapter(client).claim_all([entries(1)])


def test_a_transaction_cancelled_for_another_reason_fails_the_claim(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a transaction cancelled because an item failed validation
    client, stubber = stubbed
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    cancelled(stubber, {"Code": "ValidationError", "Message": "bad item"})
    # WHEN a contact is claimed THEN the invocation fails, naming the reason's code only
    with pytest.raises(LedgerUnavailableError, match=r"transaction cancelled \(ValidationError\)"):
        adapter(client).claim_all([entries(1)])


def test_a_winner_that_vanishes_before_the_read_fails_the_claim(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a contact claimed concurrently, whose item is gone (TTL) by the time it is read
    client, stubber = stubbed
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    cancelled(stubber, {"Code": "ConditionalCheckFailed"})
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    # WHEN it is claimed THEN the invocation fails (Firehose retries the batch)
    with pytest.raises(LedgerUnavailableError, match="vanished"):
        adapter(client).claim_all([entries(1)])


class ScriptedLedger(DynamoLedger):
    """Answers each contact's records from a list of claims, recording the groups it was given."""

    def __init__(self, answers: dict[str, list[Claim]]) -> None:
        self.answers = answers
        self.groups: list[list[str]] = []

    def claim_all(self, groups: Any) -> list[list[Claim]]:
        self.groups = [[entry.contact_id for entry in group] for group in groups]
        return [self.answers[group[0].contact_id][: len(group)] for group in groups]


def test_the_stage_drops_duplicates_and_flags_corrections() -> None:
    # GIVEN a ledger that knows four contacts in four states, the first one delivered twice
    first, retried, duplicate, corrected = (billable_ctr() for _ in range(4))
    scripted = ScriptedLedger(
        {
            first["ContactId"]: [Claim.FIRST, Claim.DUPLICATE],
            retried["ContactId"]: [Claim.RETRY],
            duplicate["ContactId"]: [Claim.DUPLICATE],
            corrected["ContactId"]: [Claim.CORRECTION],
        }
    )
    transformer = BatchTransformer(TransformSettings(), [LedgerStage(scripted)])
    # WHEN a batch of them is transformed
    ctrs = (first, retried, duplicate, corrected, first)
    result = transformer.transform([firehose_record(ctr, f"r{i}", i) for i, ctr in enumerate(ctrs)])
    # THEN the ledger got one group per contact, its records in batch order, in a single call
    assert scripted.groups == [
        [first["ContactId"]] * 2,
        [retried["ContactId"]],
        [duplicate["ContactId"]],
        [corrected["ContactId"]],
    ]
    # AND first and retried are emitted, the others dropped; one correction counted
    assert [answer["result"] for answer in result.records] == ["Ok", "Ok", "Dropped", "Dropped", "Dropped"]
    assert result.outcomes[Outcome.BILLABLE] == 2
    assert result.outcomes[Outcome.DUPLICATE] == 3
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 1


def test_the_handler_does_not_import_boto3_without_a_ledger() -> None:
    # GIVEN the Lambda environment without LEDGER_TABLE or DIRECTORY_TABLE
    environment = {
        key: value for key, value in os.environ.items() if key not in ("LEDGER_TABLE", "DIRECTORY_TABLE")
    }
    # WHEN the handler module is imported in a fresh interpreter
    probe = "import sys, transform.handler; print('boto3' in sys.modules, 'transform.stages.ledger' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # THEN neither boto3 nor the ledger was loaded (powertools itself loads botocore, not boto3)
    assert output.split() == ["False", "False"]
