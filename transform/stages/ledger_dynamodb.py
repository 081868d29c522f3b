"""The billing ledger's DynamoDB adapter: one request per call, the table's items to and from the ledger's
types, botocore's errors to the ledger's (``transform.stages.ledger`` holds the policy,
``transform.stages.ledger_store`` the chunking, threads and retries).

The table (cloudformation/template.yaml ``BillingLedgerTable``) is keyed by ``contactId``; a claim is a
``Put`` conditional on ``attribute_not_exists(contactId)`` inside a ``TransactWriteItems``, read back with
consistent ``BatchGetItem`` reads. A transaction is all or nothing: when one of its items is claimed
concurrently, DynamoDB cancels it and says why per item (``CancellationReasons``, with the item that won
thanks to ``ReturnValuesOnConditionCheckFailure=ALL_OLD``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from transform.stages.ledger import LedgerEntry, LedgerUnavailableError, Winner

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, PutTypeDef, TransactWriteItemTypeDef

# The table's key and TTL attribute (cloudformation/template.yaml ``BillingLedgerTable``).
KEY_ATTRIBUTE = "contactId"
TTL_ATTRIBUTE = "expiresAt"

# DynamoDB error codes that mean "slow down": worth another attempt after a pause.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)
TRANSACTION_CANCELED = "TransactionCanceledException"
# Per-item ``CancellationReasons`` codes of a cancelled ``TransactWriteItems``.
REASON_NONE = "None"  # this item was fine; the transaction was cancelled for another one
REASON_CONDITION_FAILED = "ConditionalCheckFailed"  # the contact was claimed concurrently
RETRIED_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
MAX_BATCH_GET_KEYS = 100  # BatchGetItem's limit per call
MAX_TRANSACT_ITEMS = 100  # TransactWriteItems' limit per call


class Throttled(Exception):
    """DynamoDB asked to slow down (``code`` says how); the same call may be made again after a pause."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class ReadResult:
    found: dict[str, Winner]  # by contact id
    unprocessed: list[str]  # contact ids DynamoDB did not get to; read them again


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Why a cancelled transaction did not write one of its items: ``REASON_NONE`` (another item's
    fault), ``REASON_CONDITION_FAILED`` (claimed concurrently; ``winner`` when DynamoDB returned the
    claim), or one of ``RETRIED_REASONS`` (contention)."""

    code: str
    winner: Winner | None = None


class LedgerTable:
    """The ledger table through a boto3 DynamoDB client; thread-safe, as the client is."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        retention_days: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.table_name = table_name
        self._retention_seconds = retention_days * 86400
        self._clock = clock

    def read(self, contact_ids: Sequence[str]) -> ReadResult:
        """One consistent ``BatchGetItem`` of at most ``MAX_BATCH_GET_KEYS`` contacts."""
        keys: list[Mapping[str, AttributeValueTypeDef]] = [
            {KEY_ATTRIBUTE: {"S": contact_id}} for contact_id in contact_ids
        ]
        try:
            response = self._client.batch_get_item(
                RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": True}}
            )
        except (ClientError, BotoCoreError) as error:
            raise self._failure(error) from None
        found: dict[str, Winner] = {}
        for item in response.get("Responses", {}).get(self.table_name, []):
            contact_id = _string(item, KEY_ATTRIBUTE)
            if contact_id is not None:
                found[contact_id] = _winner(item)
        unprocessed = (response.get("UnprocessedKeys") or {}).get(self.table_name)
        keys_left = unprocessed.get("Keys", []) if unprocessed else []
        unread = [contact_id for key in keys_left if (contact_id := _string(key, KEY_ATTRIBUTE)) is not None]
        return ReadResult(found, unread)

    def put_claims(self, entries: Sequence[LedgerEntry]) -> list[Cancellation] | None:
        """One ``TransactWriteItems`` claiming every entry's contact (at most ``MAX_TRANSACT_ITEMS``).

        None when every claim was written; otherwise nothing was written and the list says why, per entry.
        """
        now = int(self._clock())
        items: list[TransactWriteItemTypeDef] = [
            {"Put": self._conditional_put(entry, now)} for entry in entries
        ]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != TRANSACTION_CANCELED:
                raise self._failure(error) from None
            reasons: Any = error.response.get("CancellationReasons")
            return self._cancellations(reasons if isinstance(reasons, list) else [], len(entries))
        except BotoCoreError as error:
            raise self._failure(error) from None
        return None

    def _item(self, entry: LedgerEntry, now: int) -> dict[str, AttributeValueTypeDef]:
        """The claim of ``entry``'s contact made at ``now`` (epoch seconds), expiring after the retention."""
        return {
            KEY_ATTRIBUTE: {"S": entry.contact_id},
            "shardId": {"S": entry.shard_id},
            "sequenceNumber": {"S": entry.sequence_number},
            "subsequenceNumber": {"N": str(entry.subsequence_number)},
            "fingerprint": {"S": entry.fingerprint},
            "claimedAt": {"N": str(now)},
            TTL_ATTRIBUTE: {"N": str(now + self._retention_seconds)},
        }

    def _conditional_put(self, entry: LedgerEntry, now: int) -> PutTypeDef:
        return {
            "TableName": self.table_name,
            "Item": self._item(entry, now),
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": KEY_ATTRIBUTE},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _cancellations(self, reasons: list[Mapping[str, Any]], expected: int) -> list[Cancellation]:
        if len(reasons) != expected:
            raise LedgerUnavailableError(f"ledger {self.table_name}: transaction cancelled without reasons")
        cancellations: list[Cancellation] = []
        for reason in reasons:
            code = reason.get("Code") or REASON_NONE
            if code == REASON_CONDITION_FAILED:
                item = reason.get("Item")
                cancellations.append(
                    Cancellation(code, _winner(item) if isinstance(item, Mapping) and item else None)
                )
            elif code == REASON_NONE or code in RETRIED_REASONS:
                cancellations.append(Cancellation(code))
            else:
                raise LedgerUnavailableError(f"ledger {self.table_name}: transaction cancelled ({code})")
        return cancellations

    def _failure(self, error: ClientError | BotoCoreError) -> Exception:
        """``Throttled`` for a call worth repeating, else ``LedgerUnavailableError`` naming the code only."""
        if isinstance(error, BotoCoreError):
            # Endpoint unreachable, timeouts, credentials: fail the invocation so Firehose retries.
            return LedgerUnavailableError(f"ledger {self.table_name}: {type(error).__name__}")
        code = error.response.get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            return Throttled(code)
        return LedgerUnavailableError(f"ledger {self.table_name}: {code or 'ClientError'}")


def ledger_client(parallelism: int) -> DynamoDBClient:
    """A DynamoDB client for the ledger (imports boto3), with connections for ``parallelism`` calls at once.

    botocore's own retries are kept short: the ledger retries throttling itself with backoff, and an
    unreachable endpoint must fail the invocation well inside the Lambda timeout.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=2,
            read_timeout=5,
            max_pool_connections=parallelism * 2,
            # The ledger builds every request itself (tested against the service model with a Stubber);
            # skipping botocore's validation of 100-item transactions saves ~15% CPU.
            parameter_validation=False,
        ),
    )


def _winner(item: Mapping[str, Any]) -> Winner:
    return Winner(
        shard_id=_string(item, "shardId"),
        sequence_number=_string(item, "sequenceNumber"),
        subsequence_number=_number(item, "subsequenceNumber"),
        fingerprint=_string(item, "fingerprint"),
    )


def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if isinstance(value, Mapping):
        text = value.get("S")
        return text if isinstance(text, str) else None
    return None


def _number(item: Mapping[str, Any], name: str) -> int | None:
    value = item.get(name)
    if isinstance(value, Mapping):
        try:
            return int(value.get("N", ""))
        except ValueError:
            return None
    return None
