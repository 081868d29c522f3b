"""The billing ledger: exactly one vendor row per contact (DESIGN §3, issue 7).

Kinesis and Firehose deliver at least once, Firehose retries whole batches, and Connect republishes a
CTR when its attributes change. The ledger is a DynamoDB table keyed by ``contactId``; the first
delivered Kinesis record of a contact claims it with a conditional put (batched: a batch's contacts are
read with ``BatchGetItem`` and the unclaimed ones claimed with ``TransactWriteItems``, see
``DynamoLedger``). Then, for every later record of that contact:

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
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from transform.core.batch import ClaimStage, PendingContact
from transform.core.rows import EXTRACTORS, json_value
from transform.core.rules import Outcome
from transform.core.settings import TransformSettings

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

DEFAULT_PARALLELISM = 8
DEFAULT_MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0

_T = TypeVar("_T")
_R = TypeVar("_R")


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
    """The ledger table behind a boto3 DynamoDB client, claiming a whole batch's contacts at once.

    ``claim_all`` makes, per batch: one ``BatchGetItem`` per 100 distinct contacts (consistent reads)
    to find the contacts already claimed, then one ``TransactWriteItems`` per 100 unclaimed contacts,
    each ``Put`` conditional on ``attribute_not_exists(contactId)``. Calls for different chunks run in
    parallel (``parallelism`` threads sharing the thread-safe client).

    A transaction is all or nothing: when a concurrent invocation claimed one of its contacts between
    the read and the write, DynamoDB cancels it and says why per item (``CancellationReasons``). The
    items whose condition failed lost the race: their winners (returned with the reasons, or read back
    consistently) decide them like already-claimed contacts. The others wrote nothing and are
    resubmitted. Throttling and transaction conflicts are retried with jittered backoff; any other
    error raises ``LedgerUnavailableError``.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        retention_days: int,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
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
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="ledger")
        self._random = random.Random()
        self._lock = threading.Lock()
        self.throttled = 0  # throttled calls, unprocessed keys and transaction conflicts retried so far

    def claim_all(self, groups: Sequence[Sequence[LedgerEntry]]) -> list[list[Claim]]:
        """Decides every record of a batch: one group per distinct contact, its records in batch order.

        Returns the claims in the same shape. The first record of an unclaimed contact claims it; every
        later record of that contact (in this batch or a later one) is compared with the winner.
        """
        winners = self._read_all([group[0].contact_id for group in groups])
        lost = self._claim_new([group[0] for group in groups if group[0].contact_id not in winners])
        unknown = [contact_id for contact_id, item in lost.items() if item is None]
        if unknown:
            read = self._read_all(unknown)
            if len(read) != len(unknown):
                # Claimed, then deleted (TTL) between our write and read: rare; let Firehose retry the batch.
                raise LedgerUnavailableError(f"ledger {self._table}: claim vanished during the read, retry")
            lost.update(read)
        winners.update({contact_id: item for contact_id, item in lost.items() if item is not None})
        now = int(self._clock())
        claims: list[list[Claim]] = []
        for group in groups:
            winner = winners.get(group[0].contact_id)
            if winner is None:  # the group's first record claimed the contact
                winner = self._item(group[0], now)
                claims.append([Claim.FIRST, *(_against(entry, winner) for entry in group[1:])])
            else:
                claims.append([_against(entry, winner) for entry in group])
        return claims

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # --- reads ---------------------------------------------------------------------------------------

    def _read_all(self, contact_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for chunk in self._parallel(self._read_chunk, _chunks(contact_ids, MAX_BATCH_GET_KEYS)):
            found.update(chunk)
        return found

    def _read_chunk(self, contact_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        request: Mapping[str, Any] = {
            self._table: {
                "Keys": [{KEY_ATTRIBUTE: {"S": contact_id}} for contact_id in contact_ids],
                "ConsistentRead": True,
            }
        }
        attempt = 0
        while True:
            response = self._call(self._client.batch_get_item, RequestItems=request)
            for item in response.get("Responses", {}).get(self._table, []):
                contact_id = _string(item, KEY_ATTRIBUTE)
                if contact_id is not None:
                    found[contact_id] = item
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(self._table, {}).get("Keys"):
                return found
            request = unprocessed  # DynamoDB keeps ConsistentRead in the unprocessed request
            attempt += 1
            self._pause(attempt, "UnprocessedKeys")

    # --- conditional writes --------------------------------------------------------------------------

    def _claim_new(self, entries: Sequence[LedgerEntry]) -> dict[str, Mapping[str, Any] | None]:
        """Claims ``entries`` (distinct contacts); returns the ones that lost a race, with the winner if known."""
        lost: dict[str, Mapping[str, Any] | None] = {}
        for chunk in self._parallel(self._transact_chunk, _chunks(entries, MAX_TRANSACT_ITEMS)):
            lost.update(chunk)
        return lost

    def _transact_chunk(self, entries: Sequence[LedgerEntry]) -> dict[str, Mapping[str, Any] | None]:
        now = int(self._clock())
        lost: dict[str, Mapping[str, Any] | None] = {}
        remaining = list(entries)
        attempt = 0
        while remaining:
            try:
                self._call(
                    self._client.transact_write_items,
                    TransactItems=[{"Put": self._conditional_put(entry, now)} for entry in remaining],
                )
                return lost
            except _Cancelled as cancelled:
                reasons = cancelled.reasons
            if len(reasons) != len(remaining):
                raise LedgerUnavailableError(f"ledger {self._table}: transaction cancelled without reasons")
            resubmit: list[LedgerEntry] = []
            retried_code = ""
            for entry, reason in zip(remaining, reasons, strict=True):
                code = reason.get("Code") or REASON_NONE
                if code == REASON_CONDITION_FAILED:
                    item = reason.get("Item")  # ReturnValuesOnConditionCheckFailure=ALL_OLD
                    lost[entry.contact_id] = item if isinstance(item, Mapping) and item else None
                elif code == REASON_NONE:
                    resubmit.append(entry)  # cancelled because of another item: nothing was written
                elif code in RETRIED_REASONS:
                    resubmit.append(entry)
                    retried_code = code
                else:
                    raise LedgerUnavailableError(f"ledger {self._table}: transaction cancelled ({code})")
            if retried_code or len(resubmit) == len(remaining):
                # Contention (or a cancellation that settled nothing): back off before resubmitting.
                attempt += 1
                self._pause(attempt, retried_code or "TransactionCanceled")
            remaining = resubmit
        return lost

    def _conditional_put(self, entry: LedgerEntry, now: int) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Item": self._item(entry, now),
            "ConditionExpression": "attribute_not_exists(#key)",
            "ExpressionAttributeNames": {"#key": KEY_ATTRIBUTE},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _item(self, entry: LedgerEntry, now: int) -> dict[str, Any]:
        return {
            KEY_ATTRIBUTE: {"S": entry.contact_id},
            "shardId": {"S": entry.shard_id},
            "sequenceNumber": {"S": entry.sequence_number},
            "subsequenceNumber": {"N": str(entry.subsequence_number)},
            "fingerprint": {"S": entry.fingerprint},
            "claimedAt": {"N": str(now)},
            TTL_ATTRIBUTE: {"N": str(now + self._retention_seconds)},
        }

    # --- calls, retries, parallelism -----------------------------------------------------------------

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return operation(**kwargs)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == TRANSACTION_CANCELED:
                    reasons: Any = error.response.get("CancellationReasons")
                    raise _Cancelled(list(reasons) if isinstance(reasons, list) else []) from None
                if code not in THROTTLING_CODES:
                    raise LedgerUnavailableError(f"ledger {self._table}: {code or 'ClientError'}") from None
                self._pause(attempt, code)
            except BotoCoreError as error:
                # Endpoint unreachable, timeouts, credentials: fail the invocation so Firehose retries.
                raise LedgerUnavailableError(f"ledger {self._table}: {type(error).__name__}") from None

    def _pause(self, attempt: int, code: str) -> None:
        """Backs off before retry ``attempt + 1``, or gives up once the attempts are spent."""
        if attempt >= self._max_attempts:
            raise LedgerUnavailableError(
                f"ledger {self._table}: still throttled ({code}) after {attempt} attempts"
            )
        with self._lock:
            self.throttled += 1
            pause = self._backoff(attempt)
        self._sleep(pause)

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
        return self._random.uniform(0, ceiling)

    def _parallel(self, function: Callable[[Sequence[_T]], _R], chunks: list[Sequence[_T]]) -> list[_R]:
        if len(chunks) <= 1:
            return [function(chunk) for chunk in chunks]
        # list() waits for every chunk and re-raises the first failure (LedgerUnavailableError).
        return list(self._pool.map(function, chunks))


class _Cancelled(Exception):
    def __init__(self, reasons: list[Mapping[str, Any]]) -> None:
        super().__init__("transaction cancelled")
        self.reasons = reasons


def _against(entry: LedgerEntry, winner: Mapping[str, Any]) -> Claim:
    """A record of a contact already claimed by ``winner``."""
    if entry.same_record(winner):
        return Claim.RETRY
    if _string(winner, "fingerprint") != entry.fingerprint:
        return Claim.CORRECTION
    return Claim.DUPLICATE


def _chunks(values: Sequence[_T], size: int) -> list[Sequence[_T]]:
    return [values[start : start + size] for start in range(0, len(values), size)]


class LedgerStage(ClaimStage):
    """The ``BatchStage``: claims every billable contact of a batch in a few batched ledger calls.

    Records of one contact within a batch are decided in batch order, so the first delivered record
    wins even inside a batch.
    """

    def __init__(self, ledger: DynamoLedger) -> None:
        self._ledger = ledger

    def __call__(self, contacts: Sequence[PendingContact]) -> None:
        groups: dict[str, list[PendingContact]] = {}
        for pending in contacts:
            if pending.dropped_as is None:
                groups.setdefault(pending.contact.ctr["ContactId"], []).append(pending)
        if not groups:
            return
        members = list(groups.values())
        claims = self._ledger.claim_all([[ledger_entry(pending) for pending in group] for group in members])
        for group, group_claims in zip(members, claims, strict=True):
            for pending, claim in zip(group, group_claims, strict=True):
                if not claim.emits:
                    pending.dropped_as = Outcome.DUPLICATE
                    pending.billing_correction = claim is Claim.CORRECTION

    def close(self) -> None:
        self._ledger.close()


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
                # The ledger builds every request itself (tested against the service model with a
                # Stubber); skipping botocore's validation of 100-item transactions saves ~15% CPU.
                parameter_validation=False,
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
