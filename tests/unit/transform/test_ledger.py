"""The billing ledger: its policy (pure, with an in-memory store), its DynamoDB adapter and its store
(chunks, retries) against a botocore ``Stubber`` (no server), and its batch stage."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from tests.events import FIREHOSE_TRANSFORMATION, load_event
from tests.support.ctr_factory import billable_ctr, firehose_record, sample_ctr
from transform.core.backoff import Backoff
from transform.core.batch import BatchTransformer, PendingContact
from transform.core.rules import BillableContact, Outcome, classify
from transform.core.settings import TransformSettings
from transform.stages.ledger import (
    Claim,
    LedgerEntry,
    LedgerStage,
    LedgerUnavailableError,
    Winner,
    billing_fingerprint,
    claim_all,
    decide,
    ledger_entry,
)
from transform.stages.ledger_dynamodb import Cancellation, LedgerTable, Throttled
from transform.stages.ledger_store import DynamoLedger

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


# --- the policy (pure) -----------------------------------------------------------------------------


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


def test_a_record_as_firehose_publishes_it_is_identified_by_shard_and_sequence() -> None:
    # GIVEN the first record of a published Firehose event: its subsequenceNumber is an empty string
    [record, *_] = load_event(FIREHOSE_TRANSFORMATION)["records"]
    contact = classify(sample_ctr(), TransformSettings())
    assert isinstance(contact, BillableContact)
    # WHEN the ledger identifies it
    entry = ledger_entry(PendingContact(record["recordId"], record, contact))
    # THEN by its Kinesis coordinates, the missing subsequence counting as 0
    assert (entry.shard_id, entry.sequence_number, entry.subsequence_number) == (
        "shardId-000000000000",
        "49546986683135544286507457936321625675700192471156785154",
        0,
    )


def entry_of(contact: str, sequence: str = "1", fingerprint: str = "f") -> LedgerEntry:
    return LedgerEntry(contact, "shardId-000000000000", sequence, 0, fingerprint)


@pytest.mark.parametrize(
    ("winner", "expected"),
    [
        (Winner("shardId-000000000000", "1", 0, "f"), Claim.RETRY),
        (Winner("shardId-000000000000", "2", 0, "f"), Claim.DUPLICATE),
        (Winner("shardId-000000000001", "1", 0, "f"), Claim.DUPLICATE),
        (Winner("shardId-000000000000", "1", 3, "f"), Claim.DUPLICATE),
        (Winner("shardId-000000000000", "2", 0, "g"), Claim.CORRECTION),
        (Winner(None, None, None, None), Claim.CORRECTION),
    ],
)
def test_a_record_is_judged_against_the_contacts_winner(winner: Winner, expected: Claim) -> None:
    # GIVEN a contact claimed by the same record, another record, one with other billing fields, or a
    # damaged claim  WHEN a record of it is decided  THEN only the very same record is emitted again
    assert decide([[entry_of("c1")]], {"c1": winner}) == [[expected]]


def test_the_first_record_of_an_unclaimed_contact_wins_and_the_rest_follow_it() -> None:
    # GIVEN a new contact delivered as: first, republished with other billing fields, first again
    group = [entry_of("c1"), entry_of("c1", "2", "g"), entry_of("c1")]
    # WHEN decided with no winner in the ledger  THEN they follow the first in batch order
    assert decide([group], {}) == [[Claim.FIRST, Claim.CORRECTION, Claim.RETRY]]


class MemoryStore:
    """A ``LedgerStore`` in memory. ``concurrent`` claims are made by another invocation between this
    one's read and its claim; ``hide_winners`` makes the claim report a lost race without its winner,
    and ``vanish`` deletes those claims before they can be read back (TTL)."""

    name = "memory-ledger"

    def __init__(
        self, concurrent: Sequence[LedgerEntry] = (), *, hide_winners: bool = False, vanish: bool = False
    ) -> None:
        self.claims: dict[str, Winner] = {}
        self.reads: list[list[str]] = []
        self._concurrent = list(concurrent)
        self._hide_winners = hide_winners
        self._vanish = vanish

    def read(self, contact_ids: Sequence[str]) -> dict[str, Winner]:
        self.reads.append(list(contact_ids))
        return {
            contact_id: self.claims[contact_id] for contact_id in contact_ids if contact_id in self.claims
        }

    def claim(self, entries: Sequence[LedgerEntry]) -> dict[str, Winner | None]:
        for entry in self._concurrent:
            self.claims[entry.contact_id] = Winner.of(entry)
        lost: dict[str, Winner | None] = {}
        for entry in entries:
            if entry.contact_id in self.claims:
                lost[entry.contact_id] = None if self._hide_winners else self.claims[entry.contact_id]
                if self._vanish:
                    del self.claims[entry.contact_id]
            else:
                self.claims[entry.contact_id] = Winner.of(entry)
        return lost

    def close(self) -> None:
        pass


def test_a_claimed_contact_is_decided_by_its_winner_and_a_new_one_is_claimed() -> None:
    # GIVEN a ledger where c1 was claimed by another record
    store = MemoryStore()
    store.claims["c1"] = Winner.of(entry_of("c1", "9"))
    # WHEN a batch of c1 and the new c2 is decided
    claims = claim_all(store, [[entry_of("c1")], [entry_of("c2")]])
    # THEN c1 is a duplicate and c2 now belongs to this record
    assert claims == [[Claim.DUPLICATE], [Claim.FIRST]]
    assert store.claims["c2"] == Winner.of(entry_of("c2"))


@pytest.mark.parametrize("hide_winners", [False, True])
def test_a_race_lost_to_a_concurrent_claim_is_decided_by_that_winner(hide_winners: bool) -> None:
    # GIVEN another invocation claims c1 with other billing fields between this one's read and claim
    # (reported with the loss, or to be read back)
    store = MemoryStore([entry_of("c1", "9", "other")], hide_winners=hide_winners)
    # WHEN c1 and c2 are decided
    claims = claim_all(store, [[entry_of("c1")], [entry_of("c2")]])
    # THEN c1 follows the concurrent winner; a winner not reported is read back, for c1 only
    assert claims == [[Claim.CORRECTION], [Claim.FIRST]]
    assert store.reads == [["c1", "c2"], *([["c1"]] if hide_winners else [])]


def test_a_winner_that_vanishes_before_it_is_read_fails_the_claim() -> None:
    # GIVEN a contact claimed concurrently, whose claim is gone (TTL) by the time it is read back
    store = MemoryStore([entry_of("c1", "9")], hide_winners=True, vanish=True)
    # WHEN it is decided THEN the invocation fails (Firehose retries the batch), naming the table
    with pytest.raises(LedgerUnavailableError, match="memory-ledger: claim vanished"):
        claim_all(store, [[entry_of("c1")]])


# --- the DynamoDB adapter and the store, against a Stubber ----------------------------------------


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


def store(client: Any, **options: Any) -> DynamoLedger:
    """The ledger's store over the stubbed client, as ``ledger_stage`` builds it, at a fixed clock."""
    return DynamoLedger(LedgerTable(client, TABLE, 30, clock=lambda: 1000), **options)


def test_new_contacts_are_read_then_claimed_in_one_conditional_transaction(
    stubbed: tuple[Any, Stubber],
) -> None:
    # GIVEN two contacts the ledger does not know
    client, stubber = stubbed
    first, second = entries(2)
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}}, read_request(first, second))
    stubber.add_response("transact_write_items", {}, claim_request(first, second))
    # WHEN they are claimed THEN one consistent read and one transaction of conditional puts claim both
    assert claim_all(store(client), [[first], [second]]) == [[Claim.FIRST], [Claim.FIRST]]


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
    assert claim_all(store(client), [[entry]]) == [[expected]]


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
    assert claim_all(store(client), [[first, corrected, first]]) == [
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
    claims = claim_all(store(client, sleep=sleeps.append), [[first], [second], [third]])
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
    ledger = store(client, sleep=sleeps.append)
    # WHEN two contacts are claimed
    claims = claim_all(ledger, [[first], [second]])
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
        claim_all(store(client, max_attempts=3, sleep=lambda _: None), [[entry]])


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
        claim_all(store(client), [entries(1)])


def test_a_transaction_cancelled_for_another_reason_fails_the_claim(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a transaction cancelled because an item failed validation
    client, stubber = stubbed
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    cancelled(stubber, {"Code": "ValidationError", "Message": "bad item"})
    # WHEN a contact is claimed THEN the invocation fails, naming the reason's code only
    with pytest.raises(LedgerUnavailableError, match=r"transaction cancelled \(ValidationError\)"):
        claim_all(store(client), [entries(1)])


def test_a_winner_that_vanishes_before_the_read_fails_the_claim(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a contact claimed concurrently, whose item is gone (TTL) by the time it is read
    client, stubber = stubbed
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    cancelled(stubber, {"Code": "ConditionalCheckFailed"})
    stubber.add_response("batch_get_item", {"Responses": {TABLE: []}})
    # WHEN it is claimed THEN the invocation fails (Firehose retries the batch)
    with pytest.raises(LedgerUnavailableError, match="vanished"):
        claim_all(store(client), [entries(1)])


def test_the_adapter_reports_each_items_cancellation_with_the_winner(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a transaction DynamoDB cancels: one item fine, one claimed concurrently (its claim returned),
    # one in conflict with another transaction
    client, stubber = stubbed
    first, second, third = entries(3)
    cancelled(
        stubber,
        {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Item": winner_item(second, "0" * 64)},
        {"Code": "TransactionConflict"},
    )
    # WHEN the adapter puts the claims THEN it says why, per entry, and who won
    cancellations = LedgerTable(client, TABLE, 30, clock=lambda: 1000).put_claims([first, second, third])
    assert cancellations == [
        Cancellation("None"),
        Cancellation(
            "ConditionalCheckFailed",
            Winner(second.shard_id, second.sequence_number, second.subsequence_number, "0" * 64),
        ),
        Cancellation("TransactionConflict"),
    ]


def test_the_adapter_tells_throttling_from_failure(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a read that is throttled, then one refused
    client, stubber = stubbed
    stubber.add_client_error("batch_get_item", service_error_code="ProvisionedThroughputExceededException")
    stubber.add_client_error("batch_get_item", service_error_code="AccessDeniedException")
    table = LedgerTable(client, TABLE, 30)
    # WHEN read THEN the first may be repeated, the second fails naming the table and code only
    with pytest.raises(Throttled) as throttled:
        table.read(["c1"])
    assert throttled.value.code == "ProvisionedThroughputExceededException"
    with pytest.raises(LedgerUnavailableError, match=f"^ledger {TABLE}: AccessDeniedException$"):
        table.read(["c1"])


def test_an_unreachable_ledger_fails_without_retrying() -> None:
    # GIVEN a client whose endpoint does not answer
    class Unreachable:
        calls = 0

        def batch_get_item(self, **_: Any) -> Any:
            self.calls += 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    client = Unreachable()
    # WHEN a contact is claimed THEN the invocation fails at once, naming the error's type
    with pytest.raises(LedgerUnavailableError, match=f"^ledger {TABLE}: EndpointConnectionError$"):
        claim_all(store(client), [entries(1)])
    assert client.calls == 1


def test_the_store_pauses_as_its_backoff_says(stubbed: tuple[Any, Stubber]) -> None:
    # GIVEN a store whose backoff does not jitter, and a read throttled twice before it finds the claim
    client, stubber = stubbed
    (entry,) = entries(1)
    for _ in range(2):
        stubber.add_client_error("batch_get_item", service_error_code="ThrottlingException")
    stubber.add_response("batch_get_item", {"Responses": {TABLE: [winner_item(entry)]}})
    sleeps: list[float] = []
    backoff = Backoff(base_seconds=0.1, cap_seconds=0.3, jitter=False)
    # WHEN a contact is claimed
    claims = claim_all(store(client, backoff=backoff, sleep=sleeps.append), [[entry]])
    # THEN each pause is that backoff's: doubling, then capped
    assert claims == [[Claim.RETRY]]
    assert sleeps == [0.2, 0.3]


# --- the batch stage -------------------------------------------------------------------------------


def test_the_stage_drops_duplicates_and_flags_corrections() -> None:
    # GIVEN a ledger that knows three contacts in three states, and a new one delivered twice
    first, retried, duplicate, corrected = (billable_ctr() for _ in range(4))
    ledger = MemoryStore()
    ledger.claims[retried["ContactId"]] = Winner.of(ledger_entry(pending(retried, 1)))
    ledger.claims[duplicate["ContactId"]] = Winner.of(ledger_entry(pending(duplicate, 99)))
    other_bill = Winner.of(ledger_entry(pending(corrected, 98)))
    ledger.claims[corrected["ContactId"]] = Winner(
        other_bill.shard_id, other_bill.sequence_number, other_bill.subsequence_number, "0" * 64
    )
    transformer = BatchTransformer(TransformSettings(), [LedgerStage(ledger)])
    # WHEN a batch of them is transformed
    ctrs = (first, retried, duplicate, corrected, first)
    result = transformer.transform([firehose_record(ctr, f"r{i}", i) for i, ctr in enumerate(ctrs)])
    # THEN the ledger was read once, one key per contact in batch order
    assert ledger.reads == [[ctr["ContactId"] for ctr in ctrs[:4]]]
    # AND first and retried are emitted, the others dropped; one correction counted
    assert [answer["result"] for answer in result.records] == ["Ok", "Ok", "Dropped", "Dropped", "Dropped"]
    assert result.outcomes[Outcome.BILLABLE] == 2
    assert result.outcomes[Outcome.DUPLICATE] == 3
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 1


def test_the_policy_imports_nothing_of_aws() -> None:
    # GIVEN a fresh interpreter  WHEN it imports the ledger's policy and stage
    probe = (
        "import sys, transform.stages.ledger\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # THEN neither boto3 nor botocore came along (only ledger_stage loads the DynamoDB adapter)
    assert output.strip() == "[]"


def test_the_handler_does_not_import_boto3_without_a_ledger() -> None:
    # GIVEN the Lambda environment without LEDGER_TABLE or DIRECTORY_TABLE
    environment = {
        key: value for key, value in os.environ.items() if key not in ("LEDGER_TABLE", "DIRECTORY_TABLE")
    }
    # WHEN the handler module is imported in a fresh interpreter
    probe = (
        "import sys, transform.handler\n"
        "print('boto3' in sys.modules, 'transform.stages.ledger' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # THEN neither boto3 nor the ledger was loaded (powertools itself loads botocore, not boto3)
    assert output.split() == ["False", "False"]
