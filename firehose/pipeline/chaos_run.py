"""Chaos mode's side of ``ctr-billing demo --chaos SEED``: a runtime that is killed and restarted from
its checkpoints, the billable contacts of what was put, and the verdict for ``summary.json``.

The faults themselves are ``firehose.pipeline.chaos`` (kept free of runtime imports: the Lambda child
processes import it). The local pipeline calls ``chaos_runtime`` instead of building a
``FirehoseRuntime``; the demo passes its records through ``BillableTap`` and adds ``chaos_summary`` to
its summary.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from firehose.pipeline.chaos import (
    RECONCILABLE_CSV_COLUMNS,
    ChaosPlan,
    ChaoticAws,
    Faults,
    reconcile,
    summed_counts,
    vendor_row_contact_ids,
)
from firehose.runtime import FirehoseRuntime, RuntimeFailure, WorkerOptions
from firehose.runtime.delivery import processed
from firehose.runtime.runtime import AwsEndpoint
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def stack_parameters(plan: ChaosPlan | None) -> dict[str, str]:
    """Template parameters of a chaos run: vendor rows carry their contact_id, so they can be reconciled."""
    return {} if plan is None else {"CsvColumns": RECONCILABLE_CSV_COLUMNS}


class RestartingRuntime(FirehoseRuntime):
    """A ``FirehoseRuntime`` under chaos: faults on every client, and killed (buffers abandoned) and
    restarted from its checkpoints whenever the records processed reach the plan's next kill point.
    Counts are summed over the runtimes it went through."""

    def __init__(
        self,
        aws: AwsEndpoint,
        options: WorkerOptions,
        plan: ChaosPlan,
        expected_records: int,
        vendor_bucket: str,
    ) -> None:
        self.faults = Faults(plan)
        self._vendor_bucket = vendor_bucket
        super().__init__(ChaoticAws(aws, self.faults), options)
        self.plan = plan
        self._kill_points = deque(plan.restart_points(expected_records))
        self._killed: list[dict[str, dict[str, int]]] = []
        self._processed_before = 0
        self._current: FirehoseRuntime | None = None
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._monitor = threading.Thread(target=self._kill_at_points, name="chaos-killer", daemon=True)

    @property
    def restarts(self) -> int:
        return len(self._killed)

    def fault_figures(self) -> dict[str, Any]:
        """What chaos did to this run: its seed, the kills, each fault injected, the failed invocations."""
        counts = self.counts()
        return {
            "seed": self.plan.seed,
            "restarts": self.restarts,
            **dict(sorted(self.faults.injected.items())),
            "failed_invocations": sum(stream.get("failed_invocations", 0) for stream in counts.values()),
        }

    def _fresh(self) -> FirehoseRuntime:
        return FirehoseRuntime(self._aws, self._options).start()

    def start(self) -> RestartingRuntime:
        self._current = self._fresh()
        self.workers = self._current.workers
        self._monitor.start()
        return self

    def _processed(self, runtime: FirehoseRuntime) -> int:
        # The vendor stream's records only: the kill points are spread over the records put, which each
        # stream reads once; summing all three streams would bunch the kills into the first third.
        counts = runtime.counts()
        vendor = [
            worker.config.name for worker in runtime.workers if worker.config.bucket == self._vendor_bucket
        ]
        return sum(processed(counts.get(name, {})) for name in vendor)

    def _kill_at_points(self) -> None:
        try:
            self._kill_and_restart()
        except BaseException as error:  # surfaced by drain(); the killer must not die silently
            self._error = error

    def _kill_due(self) -> bool:
        """A kill point has been reached and not acted on yet (call with the lock held)."""
        current = self._current
        assert current is not None
        points = self._kill_points
        return bool(points) and self._processed_before + self._processed(current) >= points[0]

    def _kill_and_restart(self) -> None:
        while self._kill_points:
            if self._finished.wait(0.05):
                return
            with self._lock:
                if not self._kill_due():
                    continue
                current = self._current
                assert current is not None
                current.stop(drain=False)  # a crash: buffers lost, checkpoints as last saved
                self._processed_before += self._processed(current)
                self._killed.append(current.counts())
                self._kill_points.popleft()
                self._current = self._fresh()
                self.workers = self._current.workers

    def drain(self, timeout: float = 300.0) -> None:
        """Drain whichever runtime is current; a kill during the drain is followed by a drain of its
        successor. Once drained, no further kills happen."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                current = self._current
            assert current is not None
            try:
                current.drain(max(1.0, deadline - time.monotonic()))
            except RuntimeFailure:
                with self._lock:  # a kill in progress holds the lock until its successor runs
                    replaced = current is not self._current
                if self._error is not None:
                    raise RuntimeFailure(
                        f"chaos could not restart the runtime: {self._error!r}"
                    ) from self._error
                if not replaced or time.monotonic() > deadline:
                    raise
                continue  # killed by chaos while draining: drain the restarted runtime
            with self._lock:
                # Drained, unless a kill point was reached in the last records: then the killer acts
                # first (a whole buffer can carry the count past a point between two of its polls), and
                # the restarted runtime is drained in turn. Every planned kill happens, every run.
                if current is self._current and not self._kill_due():
                    self._finished.set()
                    return
            time.sleep(0.01)

    def stop(self, *, drain: bool = True, timeout: float = 300.0) -> None:
        if drain:
            self.drain(timeout)
        self._finished.set()
        if self._monitor.is_alive():
            self._monitor.join(timeout=60)
        with self._lock:
            if self._current is not None:
                self._current.stop(drain=False)

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            current = [self._current.counts()] if self._current is not None else []
            return summed_counts([*self._killed, *current])

    def pending(self) -> Mapping[str, int]:
        with self._lock:
            return self._current.pending() if self._current is not None else {}


def run_pipeline_under_chaos(
    aws: AwsEndpoint,
    vendor_bucket: str,
    billable_contact_ids: Iterable[str],
    records_published: int,
    plan: ChaosPlan,
    options: WorkerOptions,
    *,
    drain_timeout: float = 1800.0,
) -> dict[str, Any]:
    """Run the local Firehose runtime over what was published, under ``plan``'s faults and kills, until
    drained; then reconcile the vendor rows. The stack must have been deployed with
    ``CsvColumns=RECONCILABLE_CSV_COLUMNS``. The same ``RestartingRuntime`` as ``demo --chaos``."""
    runtime = RestartingRuntime(aws, options, plan, records_published, vendor_bucket).start()
    runtime.stop(drain=True, timeout=drain_timeout)
    counts = runtime.counts()
    s3: S3Client = aws.client("s3")
    verdict = reconcile(billable_contact_ids, vendor_row_contact_ids(s3, vendor_bucket))
    return {
        **verdict.as_dict(),
        "chaos": {
            **runtime.fault_figures(),
            "ledger": not plan.without_ledger,
            "s3_retries": sum(stream.get("s3_retries", 0) for stream in counts.values()),
        },
        "counts": counts,
    }


def chaos_runtime(
    aws: AwsEndpoint, options: WorkerOptions, plan: ChaosPlan, expected_records: int, vendor_bucket: str
) -> FirehoseRuntime:
    return RestartingRuntime(aws, options, plan, expected_records, vendor_bucket).start()


class BillableTap:
    """Passes records through unchanged, noting the ContactId of every CTR billable under the vendor
    transform's own settings (the function's environment) and rules."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        self._settings = TransformSettings.from_environ(environment)
        self.contact_ids: set[str] = set()

    def records(self, records: Iterable[tuple[bytes, str]]) -> Iterator[tuple[bytes, str]]:
        for data, partition_key in records:
            try:
                ctr = json.loads(data)
            except ValueError:
                ctr = None
            if isinstance(ctr, dict) and isinstance(classify(ctr, self._settings), BillableContact):
                self.contact_ids.add(ctr["ContactId"])
            yield data, partition_key


def chaos_summary(
    runtime: FirehoseRuntime, tap: BillableTap, s3: S3Client, vendor_bucket: str, vendor_prefix: str
) -> dict[str, Any]:
    """``lost`` and ``duplicate_vendor_rows`` for summary.json, with what chaos injected."""
    verdict = reconcile(tap.contact_ids, vendor_row_contact_ids(s3, vendor_bucket, vendor_prefix))
    figures: dict[str, Any] = {"lost": verdict.lost, "duplicate_vendor_rows": verdict.duplicate_vendor_rows}
    if isinstance(runtime, RestartingRuntime):
        figures["chaos"] = {
            **runtime.fault_figures(),
            "billable_contacts": verdict.expected,
            "vendor_rows": verdict.vendor_rows,
            "unexpected_vendor_rows": verdict.unexpected,
        }
    return figures
