"""The billing ledger: exactly one vendor row per contact (DESIGN §3, issue 7). This module is its policy
and its batch stage; it imports nothing of AWS.

Kinesis and Firehose deliver at least once, Firehose retries whole batches, and Connect republishes a
CTR when its attributes change. The ledger holds one claim per ``ContactId``; the first delivered
Kinesis record of a contact claims it. Then, for every later record of that contact:

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

Where the claims are kept is a ``LedgerStore``: ``transform.stages.ledger_store.DynamoLedger`` (API-sized
chunks in parallel, throttling retried) over ``transform.stages.ledger_dynamodb.LedgerTable`` (the
DynamoDB calls). ``ledger_stage`` imports them, and with them botocore, only when it builds the stage;
``transform.handler`` imports this module only when ``LEDGER_TABLE`` is set.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from transform.core.batch import ClaimStage, PendingContact
from transform.core.rows import EXTRACTORS, json_value
from transform.core.rules import Outcome

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from transform.core.settings import TransformSettings

# Billing fields that change what the patient is billed and are not PHI (``patient_phone`` is left out).
FINGERPRINT_COLUMNS: tuple[str, ...] = (
    "call_type",
    "initiation_timestamp",
    "duration_seconds",
    "provider_extension",
    "hold_seconds",
)


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
    """One record of a contact as the ledger sees it: which Kinesis record, and what it bills."""

    contact_id: str
    shard_id: str
    sequence_number: str
    subsequence_number: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Winner:
    """The claim the ledger holds for a contact. A field the stored claim lacks is None: a damaged claim
    then matches no record and no fingerprint, so its contact is never emitted twice."""

    shard_id: str | None
    sequence_number: str | None
    subsequence_number: int | None
    fingerprint: str | None

    @classmethod
    def of(cls, entry: LedgerEntry) -> Winner:
        return cls(entry.shard_id, entry.sequence_number, entry.subsequence_number, entry.fingerprint)


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


def judge(entry: LedgerEntry, winner: Winner) -> Claim:
    """A record of a contact that ``winner`` claimed."""
    if (winner.shard_id, winner.sequence_number, winner.subsequence_number) == (
        entry.shard_id,
        entry.sequence_number,
        entry.subsequence_number,
    ):
        return Claim.RETRY
    if winner.fingerprint != entry.fingerprint:
        return Claim.CORRECTION
    return Claim.DUPLICATE


def decide(groups: Sequence[Sequence[LedgerEntry]], winners: Mapping[str, Winner]) -> list[list[Claim]]:
    """Every record's claim, once the ledger's winners are known: a contact without a winner was claimed
    by its group's first record, and every other record is judged against the contact's winner."""
    claims: list[list[Claim]] = []
    for group in groups:
        winner = winners.get(group[0].contact_id)
        if winner is None:
            first = Winner.of(group[0])
            claims.append([Claim.FIRST, *(judge(entry, first) for entry in group[1:])])
        else:
            claims.append([judge(entry, winner) for entry in group])
    return claims


class LedgerStore(Protocol):
    """Where the claims are kept. Every method raises ``LedgerUnavailableError`` when it cannot answer."""

    @property
    def name(self) -> str:
        """The table's name, for error messages."""
        ...

    def read(self, contact_ids: Sequence[str]) -> dict[str, Winner]:
        """The winners of the contacts already claimed (consistent reads)."""
        ...

    def claim(self, entries: Sequence[LedgerEntry]) -> dict[str, Winner | None]:
        """Claims each entry's contact unless it is claimed already; returns the contacts that were, with
        their winner when the store knows it at once (None: read it)."""
        ...

    def close(self) -> None: ...


def claim_all(store: LedgerStore, groups: Sequence[Sequence[LedgerEntry]]) -> list[list[Claim]]:
    """Decides every record of a batch: one group per distinct contact, its records in batch order.

    Returns the claims in the same shape. The first record of an unclaimed contact claims it; every later
    record of that contact (in this batch or a later one) is judged against the winner. A contact claimed
    concurrently, between the read and the claim, is decided by that concurrent winner.
    """
    winners = store.read([group[0].contact_id for group in groups])
    lost = store.claim([group[0] for group in groups if group[0].contact_id not in winners])
    unknown = [contact_id for contact_id, winner in lost.items() if winner is None]
    if unknown:
        read = store.read(unknown)
        if len(read) != len(unknown):
            # Claimed, then deleted (TTL) between our write and read: rare; let Firehose retry the batch.
            raise LedgerUnavailableError(f"ledger {store.name}: claim vanished during the read, retry")
        lost.update(read)
    winners.update({contact_id: winner for contact_id, winner in lost.items() if winner is not None})
    return decide(groups, winners)


class LedgerStage(ClaimStage):
    """The ``BatchStage``: claims every billable contact of a batch in a few batched ledger calls.

    Records of one contact within a batch are decided in batch order, so the first delivered record
    wins even inside a batch.
    """

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    def __call__(self, contacts: Sequence[PendingContact]) -> None:
        groups: dict[str, list[PendingContact]] = {}
        for pending in contacts:
            if pending.dropped_as is None:
                groups.setdefault(pending.contact.ctr["ContactId"], []).append(pending)
        if not groups:
            return
        members = list(groups.values())
        claims = claim_all(self._store, [[ledger_entry(pending) for pending in group] for group in members])
        for group, group_claims in zip(members, claims, strict=True):
            for pending, claim in zip(group, group_claims, strict=True):
                if not claim.emits:
                    pending.dropped_as = Outcome.DUPLICATE
                    pending.billing_correction = claim is Claim.CORRECTION

    def close(self) -> None:
        self._store.close()


def ledger_stage(settings: TransformSettings, client: DynamoDBClient | None = None) -> LedgerStage:
    """The stage for ``settings.ledger_table``; builds a DynamoDB client (lazily importing boto3) if none given."""
    if settings.ledger_table is None:
        raise ValueError("LEDGER_TABLE is not set")
    from transform.stages.ledger_dynamodb import LedgerTable, ledger_client
    from transform.stages.ledger_store import DEFAULT_PARALLELISM, DynamoLedger

    if client is None:
        client = ledger_client(DEFAULT_PARALLELISM)
    return LedgerStage(
        DynamoLedger(LedgerTable(client, settings.ledger_table, settings.ledger_retention_days))
    )
