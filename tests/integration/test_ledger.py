"""The billing ledger against DynamoDB on a moto server over HTTP, through the handler's own stages.

Every test builds the vendor transform the way the Lambda does (``transform.handler._stages`` with
``LEDGER_TABLE`` set and ``AWS_ENDPOINT_URL`` pointing at the embedded AWS) and feeds it Firehose batches.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from firehose.deploy.template import lambda_environment, load_template, resource_properties
from tests.support.ctr_factory import billable_ctr, firehose_record, voicemail_ctr
from tests.support.moto_server import REGION, free_port
from transform import handler
from transform.core.batch import BatchResult, BatchTransformer
from transform.core.rules import Outcome
from transform.core.settings import TransformSettings
from transform.stages import ledger
from transform.stages.ledger import LedgerUnavailableError
from transform.stages.ledger_dynamodb import KEY_ATTRIBUTE, TTL_ATTRIBUTE, LedgerTable
from transform.stages.ledger_store import DynamoLedger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.integration

LEDGER_RESOURCE = "BillingLedgerTable"
LEDGER_CALLS = ("batch_get_item", "transact_write_items")


def ledger_table_properties() -> dict[str, Any]:
    """``BillingLedgerTable``'s key schema and TTL as the template declares them."""
    return resource_properties(load_template(), LEDGER_RESOURCE)


@pytest.fixture
def dynamodb(aws_env: str) -> DynamoDBClient:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env)


@pytest.fixture
def ledger_table(dynamodb: DynamoDBClient) -> Iterator[str]:
    """A fresh ledger table per test, keyed exactly as the template's ``BillingLedgerTable``."""
    properties = ledger_table_properties()
    name = f"ledger-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    ttl = properties["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
    )
    try:
        yield name
    finally:
        dynamodb.delete_table(TableName=name)


def vendor_transformer(table: str) -> BatchTransformer:
    """The vendor CSV transform exactly as the handler builds it at cold start."""
    settings = TransformSettings.from_environ({"OUTPUT_FORMAT": "csv", "LEDGER_TABLE": table})
    return BatchTransformer(settings, handler._stages(settings))


def records(payloads: Sequence[dict[str, Any]], first_sequence: int = 0) -> list[dict[str, Any]]:
    """Firehose records, each a distinct Kinesis record (its own sequence number)."""
    return [
        firehose_record(payload, f"r{first_sequence + index}", first_sequence + index)
        for index, payload in enumerate(payloads)
    ]


def ok_lines(result: BatchResult) -> list[bytes]:
    return [base64.b64decode(answer["data"]) for answer in result.records if answer["result"] == "Ok"]


def results(result: BatchResult) -> list[str]:
    return [answer["result"] for answer in result.records]


def test_key_schema_and_ttl_match_the_template() -> None:
    # GIVEN the template's ledger table (the adapter writes these attribute names)
    properties = ledger_table_properties()
    # THEN its hash key and TTL attribute are the ones the ledger writes
    assert properties["KeySchema"] == [{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}]
    assert {"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"} in properties["AttributeDefinitions"]
    assert properties["TimeToLiveSpecification"]["AttributeName"] == TTL_ATTRIBUTE


def test_only_the_vendor_transform_is_ledgered_and_may_claim() -> None:
    # GIVEN the template's two transform functions
    template = load_template()
    # THEN the CSV (vendor) transform names the ledger table, the lake transform does not
    assert lambda_environment(template, "TransformCsvFunction")["LEDGER_TABLE"] == {"Ref": LEDGER_RESOURCE}
    assert "LEDGER_TABLE" not in lambda_environment(template, "TransformJsonFunction")
    # AND the vendor transform's role may call exactly what the adapter calls, on the ledger table only
    statements = [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement.get("Resource") == {"Fn::GetAtt": [LEDGER_RESOURCE, "Arn"]}
    ]
    assert len(statements) == 1
    # (a TransactWriteItems ``Put`` is authorised as dynamodb:PutItem; there is no action of its own)
    assert sorted(statements[0]["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:PutItem"]


def test_duplicates_across_batches_are_dropped(ledger_table: str, dynamodb: DynamoDBClient) -> None:
    # GIVEN two contacts billed in a first batch
    transformer = vendor_transformer(ledger_table)
    first, second = billable_ctr(), billable_ctr()
    batch_one = transformer.transform(records([first, second, voicemail_ctr()]))
    # WHEN Kinesis delivers the same contacts again as new records in a later batch
    batch_two = transformer.transform(records([second, first], first_sequence=100))
    # THEN the first batch billed both, the second drops both as duplicates (no billing change)
    assert results(batch_one) == ["Ok", "Ok", "Dropped"]
    assert results(batch_two) == ["Dropped", "Dropped"]
    assert batch_two.outcomes[Outcome.DUPLICATE] == 2
    assert batch_two.outcomes[Outcome.BILLING_CORRECTION] == 0
    assert batch_two.outcomes[Outcome.BILLABLE] == 0
    # AND the ledger holds one item per contact with the winning record's coordinates and a TTL
    item = dynamodb.get_item(TableName=ledger_table, Key={"contactId": {"S": first["ContactId"]}})["Item"]
    assert item["shardId"]["S"] == "shardId-000000000000"
    assert item["sequenceNumber"]["S"] == records([first])[0]["kinesisRecordMetadata"]["sequenceNumber"]
    retention_seconds = int(item["expiresAt"]["N"]) - int(item["claimedAt"]["N"])
    assert retention_seconds == TransformSettings().ledger_retention_days * 86400
    assert dynamodb.scan(TableName=ledger_table)["Count"] == 2


def test_a_contact_twice_in_one_batch_is_billed_once_first_record_wins(ledger_table: str) -> None:
    # GIVEN a batch holding two versions of one contact (the second one with a changed extension)
    ctr = billable_ctr(extension="4417")
    republished = billable_ctr(contact_id=ctr["ContactId"], extension="5523")
    # WHEN it is transformed
    result = vendor_transformer(ledger_table).transform(records([ctr, republished]))
    # THEN the first delivered version is billed and the later one dropped as a correction
    assert results(result) == ["Ok", "Dropped"]
    assert b"4417" in ok_lines(result)[0]
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 1


def test_the_same_record_retried_after_a_failed_invocation_is_emitted_again(ledger_table: str) -> None:
    # GIVEN an invocation that claimed its contacts, then failed (e.g. a timeout) before answering
    transformer = vendor_transformer(ledger_table)
    batch = records([billable_ctr() for _ in range(5)])
    first_attempt = transformer.transform(batch)
    # WHEN Firehose retries the very same records
    retried = transformer.transform(batch)
    # THEN the retry emits every row again, identically: nothing is lost
    assert results(retried) == ["Ok"] * 5
    assert ok_lines(retried) == ok_lines(first_attempt)
    assert retried.outcomes[Outcome.DUPLICATE] == 0


def test_a_contact_id_dynamodb_refuses_as_a_key_fails_only_its_record(ledger_table: str) -> None:
    # GIVEN a batch of billable contacts, one with a ContactId over DynamoDB's 2,048-byte key limit
    oversized = billable_ctr(contact_id="c" * 3000)
    batch = records([billable_ctr(), oversized, billable_ctr()])
    # WHEN the vendor transform (ledger on) handles it
    result = vendor_transformer(ledger_table).transform(batch)
    # THEN that record alone is ProcessingFailed as an invalid contact; the others are ledgered and billed
    assert results(result) == ["Ok", "ProcessingFailed", "Ok"]
    assert result.outcomes[Outcome.INVALID] == 1
    assert result.outcomes[Outcome.BILLABLE] == 2


def test_a_republished_version_without_billing_changes_is_a_plain_duplicate(ledger_table: str) -> None:
    # GIVEN a billed contact
    transformer = vendor_transformer(ledger_table)
    ctr = billable_ctr()
    transformer.transform(records([ctr]))
    # WHEN Connect republishes it with a changed non-billing attribute and a later LastUpdateTimestamp
    republished = billable_ctr(contact_id=ctr["ContactId"])
    republished["Attributes"]["surveyScore"] = "5"
    republished["LastUpdateTimestamp"] = "2026-11-03T08:00:00Z"
    result = transformer.transform(records([republished], first_sequence=50))
    # THEN it is dropped as a duplicate, not a billing correction
    assert results(result) == ["Dropped"]
    assert result.outcomes[Outcome.DUPLICATE] == 1
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 0


def test_a_republished_version_with_billing_changes_is_counted_as_a_correction(ledger_table: str) -> None:
    # GIVEN a billed contact of 1,011 s
    transformer = vendor_transformer(ledger_table)
    ctr = billable_ctr(talk_seconds=1011)
    billed = transformer.transform(records([ctr]))
    # WHEN Connect republishes it with a different duration
    republished = billable_ctr(contact_id=ctr["ContactId"], talk_seconds=1200)
    result = transformer.transform(records([republished], first_sequence=50))
    # THEN the vendor keeps the first row only, and the correction is counted
    assert b",1011," in ok_lines(billed)[0]
    assert results(result) == ["Dropped"]
    assert result.outcomes[Outcome.DUPLICATE] == 1
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 1


def test_a_large_batch_is_claimed_in_a_few_batched_calls(ledger_table: str, dynamodb: DynamoDBClient) -> None:
    # GIVEN a vendor transform whose ledger client counts its calls, and 250 new contacts of which the
    # last 20 arrive a second time (republished) in the same batch
    counting = CountingClient(dynamodb)
    settings = TransformSettings.from_environ({"LEDGER_TABLE": ledger_table})
    transformer = BatchTransformer(settings, [ledger.ledger_stage(settings, client=counting)])
    ctrs = [billable_ctr() for _ in range(250)]
    republished = [billable_ctr(contact_id=ctr["ContactId"]) for ctr in ctrs[-20:]]
    # WHEN the batch is transformed
    result = transformer.transform(records([*ctrs, *republished]))
    # THEN 250 rows are billed and the 20 later versions dropped as duplicates
    assert results(result) == ["Ok"] * 250 + ["Dropped"] * 20
    assert result.outcomes[Outcome.DUPLICATE] == 20
    # AND the ledger made one read per 100 distinct contacts and one transaction per 100 new ones
    assert counting.calls == Counter({"batch_get_item": 3, "transact_write_items": 3})
    assert sorted(counting.transaction_sizes) == [50, 100, 100]
    pages = dynamodb.get_paginator("scan").paginate(TableName=ledger_table, Select="COUNT")
    assert sum(page["Count"] for page in pages) == 250
    # AND the same batch retried is emitted again, with reads only
    retried = transformer.transform(records([*ctrs, *republished]))
    assert results(retried) == results(result)
    assert counting.calls == Counter({"batch_get_item": 6, "transact_write_items": 3})


def test_a_race_lost_inside_a_transaction_is_decided_by_the_winner(
    ledger_table: str, dynamodb: DynamoDBClient
) -> None:
    # GIVEN three new contacts, two of which a concurrent invocation claims with other Kinesis records
    # (one with a different duration) between this invocation's read and its transaction
    mine = [billable_ctr(talk_seconds=300) for _ in range(3)]
    theirs = [
        billable_ctr(contact_id=mine[0]["ContactId"], talk_seconds=300),
        billable_ctr(contact_id=mine[2]["ContactId"], talk_seconds=400),
    ]
    concurrent = vendor_transformer(ledger_table)
    raced: list[BatchResult] = []

    def concurrent_claim() -> None:
        if not raced:
            raced.append(concurrent.transform(records(theirs, first_sequence=500)))

    counting = CountingClient(dynamodb, before_transaction=concurrent_claim)
    settings = TransformSettings.from_environ({"LEDGER_TABLE": ledger_table})
    transformer = BatchTransformer(settings, [ledger.ledger_stage(settings, client=counting)])
    # WHEN this invocation transforms its batch
    result = transformer.transform(records(mine))
    # THEN the concurrent invocation billed its two, and this one bills only the contact it won
    assert results(raced[0]) == ["Ok", "Ok"]
    assert results(result) == ["Dropped", "Ok", "Dropped"]
    assert result.outcomes[Outcome.DUPLICATE] == 2
    assert result.outcomes[Outcome.BILLING_CORRECTION] == 1
    # AND its cancelled transaction was resubmitted for the remaining contact, which the ledger holds
    assert counting.transaction_sizes == [3, 1]
    item = dynamodb.get_item(TableName=ledger_table, Key={"contactId": {"S": mine[1]["ContactId"]}})["Item"]
    assert item["sequenceNumber"]["S"] == records(mine)[1]["kinesisRecordMetadata"]["sequenceNumber"]
    assert dynamodb.scan(TableName=ledger_table)["Count"] == 3


def test_the_ledger_holds_no_phi(ledger_table: str, dynamodb: DynamoDBClient) -> None:
    # GIVEN a billed contact with a phone number
    phone = "+12025550177"
    vendor_transformer(ledger_table).transform(records([billable_ctr(phone=phone)]))
    # THEN no ledger attribute holds the number
    scanned = str(dynamodb.scan(TableName=ledger_table)["Items"])
    assert phone not in scanned
    assert phone.lstrip("+") not in scanned


@pytest.mark.parametrize("call", LEDGER_CALLS)
def test_throttling_is_retried_with_backoff(ledger_table: str, dynamodb: DynamoDBClient, call: str) -> None:
    # GIVEN a ledger whose client is throttled on its first three reads, or its first three transactions
    throttled = ThrottlingClient(dynamodb, failures=3, calls=(call,))
    settings = TransformSettings.from_environ({"LEDGER_TABLE": ledger_table})
    stage = ledger.ledger_stage(settings, client=throttled)
    transformer = BatchTransformer(settings, [stage])
    # WHEN a batch is transformed
    result = transformer.transform(records([billable_ctr(), billable_ctr()]))
    # THEN the throttled calls were retried and every contact billed
    assert throttled.raised == 3
    assert results(result) == ["Ok", "Ok"]
    assert dynamodb.scan(TableName=ledger_table)["Count"] == 2


def test_a_ledger_that_stays_throttled_fails_the_invocation(
    ledger_table: str, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a ledger throttled for longer than the retry budget (no sleeping in the test)
    settings = TransformSettings.from_environ({"LEDGER_TABLE": ledger_table})
    table = LedgerTable(ThrottlingClient(dynamodb, failures=100), ledger_table, 1)
    store = DynamoLedger(table, max_attempts=4, sleep=lambda _: None)
    transformer = BatchTransformer(settings, [ledger.LedgerStage(store)])
    # WHEN a batch is transformed THEN the invocation fails (Firehose retries it)
    with pytest.raises(LedgerUnavailableError, match="throttled"):
        transformer.transform(records([billable_ctr()]))


def test_an_unreachable_ledger_fails_the_invocation_with_no_rows(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the handler configured with a ledger whose endpoint is a closed port
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    transformer = vendor_transformer("billing-ledger")
    monkeypatch.setattr(handler, "TRANSFORMER", transformer)
    phone = "+12025550166"
    event = {"records": records([billable_ctr(phone=phone), billable_ctr()])}
    # WHEN Firehose invokes the handler
    with pytest.raises(LedgerUnavailableError) as raised:
        handler.lambda_handler(event, FakeContext())
    # THEN the invocation fails (so no Ok rows leave it, and Firehose retries), naming no PHI
    assert "billing-ledger" in str(raised.value)
    assert phone not in str(raised.value)


class ThrottlingClient:
    """A DynamoDB client that raises ``ThrottlingException`` on the first ``failures`` calls of ``calls``."""

    def __init__(self, client: DynamoDBClient, failures: int, calls: Sequence[str] = LEDGER_CALLS) -> None:
        self._client = client
        self._failures = failures
        self._calls = calls
        self._lock = threading.Lock()  # the ledger calls from a thread pool
        self.raised = 0

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self._client, name)
        if name not in self._calls:
            return operation

        def throttled(**kwargs: Any) -> Any:
            with self._lock:
                throttle = self.raised < self._failures
                self.raised += throttle
            if throttle:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, name)
            return operation(**kwargs)

        return throttled


class CountingClient:
    """A DynamoDB client that counts its calls by operation; ``before_transaction`` runs before each
    ``TransactWriteItems`` (to play a concurrent invocation)."""

    def __init__(self, client: DynamoDBClient, before_transaction: Callable[[], None] | None = None) -> None:
        self._client = client
        self._before_transaction = before_transaction
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.transaction_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self._client, name)

        def counted(**kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
                if name == "transact_write_items":
                    self.transaction_sizes.append(len(kwargs["TransactItems"]))
            if name == "transact_write_items" and self._before_transaction is not None:
                self._before_transaction()
            return operation(**kwargs)

        return counted


class FakeContext:
    """The attributes powertools' Logger reads from a Lambda context."""

    function_name = "TransformCsvFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:TransformCsvFunction"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
