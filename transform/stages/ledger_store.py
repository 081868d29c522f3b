"""The billing ledger's ``LedgerStore`` over DynamoDB: a batch's reads and claims cut to the API's limits,
the chunks called in parallel, and throttling retried with ``transform.core.backoff.Backoff``.

Per batch that is one ``BatchGetItem`` per 100 distinct contacts and one ``TransactWriteItems`` per 100
unclaimed ones (``transform.stages.ledger_dynamodb.LedgerTable`` makes each call). Keys DynamoDB left
unprocessed are read again; of a cancelled transaction, the items that lost a race are reported with
their winner and the others, which wrote nothing, are resubmitted. Throttling, unprocessed keys and
contention are retried after a jittered pause, up to ``max_attempts``; then, as on any other error,
``LedgerUnavailableError`` fails the invocation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from transform.core.backoff import Backoff
from transform.stages.ledger import LedgerEntry, LedgerUnavailableError, Winner
from transform.stages.ledger_dynamodb import (
    MAX_BATCH_GET_KEYS,
    MAX_TRANSACT_ITEMS,
    REASON_CONDITION_FAILED,
    REASON_NONE,
    LedgerTable,
    Throttled,
)

DEFAULT_PARALLELISM = 8
DEFAULT_MAX_ATTEMPTS = 8

_T = TypeVar("_T")
_R = TypeVar("_R")


class DynamoLedger:
    """A ``LedgerStore``: ``LedgerTable`` calls in API-sized chunks, ``parallelism`` threads sharing the
    thread-safe client, each call retried while DynamoDB asks to slow down."""

    def __init__(
        self,
        table: LedgerTable,
        *,
        parallelism: int = DEFAULT_PARALLELISM,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._max_attempts = max_attempts
        # Jittered: the transform's concurrent invocations throttle together and must not retry together.
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="ledger")
        self._lock = threading.Lock()
        self.throttled = 0  # throttled calls, unprocessed keys and transaction conflicts retried so far

    @property
    def name(self) -> str:
        return self._table.table_name

    def read(self, contact_ids: Sequence[str]) -> dict[str, Winner]:
        found: dict[str, Winner] = {}
        for chunk in self._parallel(self._read_chunk, _chunks(contact_ids, MAX_BATCH_GET_KEYS)):
            found.update(chunk)
        return found

    def claim(self, entries: Sequence[LedgerEntry]) -> dict[str, Winner | None]:
        lost: dict[str, Winner | None] = {}
        for chunk in self._parallel(self._claim_chunk, _chunks(entries, MAX_TRANSACT_ITEMS)):
            lost.update(chunk)
        return lost

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _read_chunk(self, contact_ids: Sequence[str]) -> dict[str, Winner]:
        found: dict[str, Winner] = {}
        attempt = 0
        while True:
            result = self._retrying(self._table.read, contact_ids)
            found.update(result.found)
            if not result.unprocessed:
                return found
            contact_ids = result.unprocessed
            attempt += 1
            self._pause(attempt, "UnprocessedKeys")

    def _claim_chunk(self, entries: Sequence[LedgerEntry]) -> dict[str, Winner | None]:
        lost: dict[str, Winner | None] = {}
        attempt = 0
        while entries:
            cancellations = self._retrying(self._table.put_claims, entries)
            if cancellations is None:
                return lost
            resubmit: list[LedgerEntry] = []
            contention = ""
            for entry, cancellation in zip(entries, cancellations, strict=True):
                if cancellation.code == REASON_CONDITION_FAILED:
                    lost[entry.contact_id] = cancellation.winner
                    continue
                resubmit.append(entry)  # a cancelled transaction wrote nothing
                if cancellation.code != REASON_NONE:
                    contention = cancellation.code
            if contention or len(resubmit) == len(entries):
                # Contention (or a cancellation that settled nothing): back off before resubmitting.
                attempt += 1
                self._pause(attempt, contention or "TransactionCanceled")
            entries = resubmit
        return lost

    def _retrying(self, call: Callable[[Sequence[_T]], _R], chunk: Sequence[_T]) -> _R:
        """``call(chunk)``, made again after a pause for as long as it is throttled."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(chunk)
            except Throttled as throttled:
                self._pause(attempt, throttled.code)

    def _pause(self, attempt: int, code: str) -> None:
        """Backs off before retry ``attempt + 1``, or gives up once the attempts are spent."""
        if attempt >= self._max_attempts:
            raise LedgerUnavailableError(
                f"ledger {self.name}: still throttled ({code}) after {attempt} attempts"
            )
        with self._lock:  # one Random shared by the pool's threads
            self.throttled += 1
            pause = self._backoff.pause(attempt)
        self._sleep(pause)

    def _parallel(self, function: Callable[[Sequence[_T]], _R], chunks: list[Sequence[_T]]) -> list[_R]:
        if len(chunks) <= 1:
            return [function(chunk) for chunk in chunks]
        # list() waits for every chunk and re-raises the first failure (LedgerUnavailableError).
        return list(self._pool.map(function, chunks))


def _chunks(values: Sequence[_T], size: int) -> list[Sequence[_T]]:
    return [values[start : start + size] for start in range(0, len(values), size)]
