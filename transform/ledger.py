"""The billing ledger: exactly one vendor row per contact (DESIGN §3, issue 7).

Kinesis and Firehose deliver at least once, Firehose retries whole batches, and Connect republishes a
CTR when its attributes change. The ledger is a DynamoDB table keyed by ``contactId``; the first
delivered Kinesis record of a contact claims it with a conditional put. Then, for every later record of
that contact:

* the *same* Kinesis record (same shard, sequence and subsequence number) is emitted again: it is a
  retried invocation, and the earlier attempt's rows may never have reached S3;
* any other record is ``Dropped`` as ``DuplicateContact``; if its billing fingerprint differs from the
  winner's it is also counted as ``BillingCorrection`` (the data lake keeps every version, and the daily
  export uses the latest).

If the ledger cannot be reached the stage raises, the invocation fails and Firehose retries it: a row is
never emitted unledgered.

The billing fingerprint is a SHA-256 over the billing fields that are *not* PHI (call type, initiation
time, duration, provider extension, hold time). The patient's phone number is deliberately left out: even
a hash of a phone number is derived from PHI (the number space is small enough to brute-force), and
Connect does not change a contact's customer endpoint when it republishes a CTR. The ledger therefore
holds no PHI, in clear or hashed.

This module imports botocore; ``transform.handler`` imports it only when ``LEDGER_TABLE`` is set.
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from transform.batch import PendingContact
from transform.rows import EXTRACTORS, json_value
from transform.rules import Outcome
from transform.settings import TransformSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The table's key and TTL attribute (cloudformation/template.yaml ``BillingLedgerTable``).
KEY_ATTRIBUTE = "contactId"
TTL_ATTRIBUTE = "expiresAt"

# Billing fields that change what the patient is billed and are not PHI (``patient_phone`` is left out).
FINGERPRINT_COLUMNS: tuple[str, ...] = (
    "call_type",
    "initiation_timestamp",
    "duration_seconds",
    "provider_extension",
    "hold_seconds",
)

# DynamoDB error codes that mean "slow down", retried with backoff rather than failing the invocation.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
CONDITION_FAILED = "ConditionalCheckFailedException"

DEFAULT_PARALLELISM = 8
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0


class LedgerUnavailableError(RuntimeError):
    """The ledger could not be read or written. Raised so the invocation fails and Firehose retries.

    The message names the table and the error code, never a contact's data.
    """


class Claim(enum.Enum):
    """What the ledger says about one record of a contact."""

    FIRST = "first"  # this record claimed the contact: emit
    RETRY = "retry"  # this very Kinesis record claimed it earlier: emit again
    DUPLICATE = "duplicate"  # another record claimed it, same billing fields: drop
    CORRECTION = "correction"  # another record claimed it, billing fields differ: drop and count

    @property
    def emits(self) -> bool:
        return self in (Claim.FIRST, Claim.RETRY)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    contact_id: str
    shard_id: str
    sequence_number: str
    subsequence_number: int
    fingerprint: str

    def same_record(self, item: Mapping[str, Any]) -> bool:
        return (
            _string(item, "shardId") == self.shard_id
            and _string(item, "sequenceNumber") == self.sequence_number
            and _number(item, "subsequenceNumber") == self.subsequence_number
        )


def billing_fingerprint(pending: PendingContact) -> str:
    """SHA-256 (hex) of the non-PHI billing fields, as JSON values (timestamps in UTC)."""
    values = [json_value(EXTRACTORS[name](pending.contact)) for name in FINGERPRINT_COLUMNS]
    encoded = json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode()
    return hashlib.sha256(encoded).hexdigest()


def ledger_entry(pending: PendingContact) -> LedgerEntry:
    """The record's identity: its Kinesis coordinates (Firehose keeps them across retries).

    Without Kinesis metadata (a Direct PUT source) the Firehose ``recordId`` stands in for the sequence.
    """
    metadata = pending.record.get("kinesisRecordMetadata")
    if not isinstance(metadata, Mapping):
        metadata = {}
    shard = metadata.get("shardId")
    sequence = metadata.get("sequenceNumber")
    subsequence = metadata.get("subsequenceNumber")
    return LedgerEntry(
        contact_id=pending.contact.ctr["ContactId"],
        shard_id=shard if isinstance(shard, str) else "",
        sequence_number=str(sequence) if isinstance(sequence, str | int) else f"record:{pending.record_id}",
        subsequence_number=subsequence if isinstance(subsequence, int) else 0,
        fingerprint=billing_fingerprint(pending),
    )


class DynamoLedger:
    """The ledger table behind a boto3 DynamoDB client (thread-safe: one client, shared by the pool)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        retention_days: int,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self._retention_seconds = retention_days * 86400
        self._max_attempts = max_attempts
        self._clock = clock
        self._sleep = sleep
        self._random = random.Random()
        self._random_lock = threading.Lock()
        self.throttled = 0  # throttling errors retried so far (for tests and benchmarks)

    def claim(self, entry: LedgerEntry) -> Claim:
        now = int(self._clock())
        item = {
            KEY_ATTRIBUTE: {"S": entry.contact_id},
            "shardId": {"S": entry.shard_id},
            "sequenceNumber": {"S": entry.sequence_number},
            "subsequenceNumber": {"N": str(entry.subsequence_number)},
            "fingerprint": {"S": entry.fingerprint},
            "claimedAt": {"N": str(now)},
            TTL_ATTRIBUTE: {"N": str(now + self._retention_seconds)},
        }
        try:
            self._call(
                self._client.put_item,
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": KEY_ATTRIBUTE},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return Claim.FIRST
        except _ConditionFailed as failed:
            winner = failed.item or self._read(entry.contact_id)
        if winner is None:
            # Claimed, then deleted (TTL) between our put and read: rare; let Firehose retry the batch.
            raise LedgerUnavailableError(f"ledger {self._table}: claim vanished during the read, retry")
        if entry.same_record(winner):
            return Claim.RETRY
        if _string(winner, "fingerprint") != entry.fingerprint:
            return Claim.CORRECTION
        return Claim.DUPLICATE

    def _read(self, contact_id: str) -> Mapping[str, Any] | None:
        response = self._call(
            self._client.get_item,
            TableName=self._table,
            Key={KEY_ATTRIBUTE: {"S": contact_id}},
            ConsistentRead=True,
        )
        item: Mapping[str, Any] | None = response.get("Item")
        return item

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation(**kwargs)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == CONDITION_FAILED:
                    old = error.response.get("Item")  # ReturnValuesOnConditionCheckFailure=ALL_OLD
                    raise _ConditionFailed(old if isinstance(old, Mapping) else None) from None
                if code not in THROTTLING_CODES:
                    raise LedgerUnavailableError(f"ledger {self._table}: {code or 'ClientError'}") from None
                if attempt >= self._max_attempts:
                    raise LedgerUnavailableError(
                        f"ledger {self._table}: still throttled ({code}) after {attempt} attempts"
                    ) from None
                self.throttled += 1
                self._sleep(self._backoff(attempt))
            except BotoCoreError as error:
                # Endpoint unreachable, timeouts, credentials: fail the invocation so Firehose retries.
                raise LedgerUnavailableError(f"ledger {self._table}: {type(error).__name__}") from None

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
        with self._random_lock:
            return self._random.uniform(0, ceiling)


class _ConditionFailed(Exception):
    def __init__(self, item: Mapping[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


class LedgerStage:
    """The ``BatchStage``: claims every billable contact of a batch, ``parallelism`` contacts at a time.

    Records of one contact within a batch are claimed one after another in batch order, so the first
    delivered record wins even inside a batch; distinct contacts are claimed in parallel.
    """

    def __init__(self, ledger: DynamoLedger, parallelism: int = DEFAULT_PARALLELISM) -> None:
        self._ledger = ledger
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="ledger")

    def __call__(self, contacts: Sequence[PendingContact]) -> None:
        groups: dict[str, list[PendingContact]] = {}
        for pending in contacts:
            if pending.dropped_as is None:
                groups.setdefault(pending.contact.ctr["ContactId"], []).append(pending)
        # list() waits for every group and re-raises the first failure (LedgerUnavailableError).
        list(self._pool.map(self._claim_group, groups.values()))

    def _claim_group(self, group: Sequence[PendingContact]) -> None:
        for pending in group:
            claim = self._ledger.claim(ledger_entry(pending))
            if not claim.emits:
                pending.dropped_as = Outcome.DUPLICATE
                pending.billing_correction = claim is Claim.CORRECTION

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def ledger_stage(settings: TransformSettings, client: DynamoDBClient | None = None) -> LedgerStage:
    """The stage for ``settings.ledger_table``; builds a DynamoDB client (lazily importing boto3) if none given.

    botocore's own retries are kept short: the ledger retries throttling itself with backoff, and an
    unreachable endpoint must fail the invocation well inside the Lambda timeout.
    """
    if settings.ledger_table is None:
        raise ValueError("LEDGER_TABLE is not set")
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "dynamodb",
            config=Config(
                retries={"mode": "standard", "max_attempts": 2},
                connect_timeout=2,
                read_timeout=5,
                max_pool_connections=DEFAULT_PARALLELISM * 2,
            ),
        )
    return LedgerStage(DynamoLedger(client, settings.ledger_table, settings.ledger_retention_days))


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
