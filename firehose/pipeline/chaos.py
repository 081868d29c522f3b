"""Chaos mode: seeded fault injection into an embedded pipeline run (``ctr-billing demo --chaos SEED``).

Faults, all transient (each one heals within the retries the real services allow), injected where the
real ones happen so the project's own retry paths handle them:

* S3 ``PutObject`` is answered ``503 SlowDown`` on about 30 % of first attempts at an object key (the
  runtime's S3 writer retries; botocore sees a real HTTP error response).
* Kinesis ``GetRecords`` is answered ``ProvisionedThroughputExceededException`` on about 20 % of calls,
  at most ``MAX_CONSECUTIVE_THROTTLES`` in a row (botocore's standard retry mode retries them).
* The transform Lambda raises on about 10 % of invocations: half of them before the handler runs (a
  crash at start), half *after* it returned (a timeout once its side effects, e.g. ledger claims, are
  done). A batch fails at most twice in a row, within Firehose's default 3 retries, so a record that
  reaches ``processing-failed`` is a bug, not the fault model.
* The runtime is killed (buffers abandoned, as a crash would) and restarted from its checkpoints
  ``RESTARTS`` times; the demo does this at ``restart_points``.

The hook is the runtime's ``AwsEndpoint``: ``ChaoticAws(aws, plan)`` hands out clients with the faults
registered on botocore's event system, and makes every Lambda transform run under ``chaotic_handler``.
The runtime itself is untouched. Decisions are pure functions of the seed and what is being done
(object key, batch, call count), so a seed reproduces its faults as far as thread timing allows.

This module is imported by the Lambda child processes (``chaotic_handler``): its top level imports only
the standard library.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_s3 import S3Client

    from firehose.runtime.runtime import AwsEndpoint

ClientT = TypeVar("ClientT", bound="BaseClient")

S3_PUT_FAILURE = 0.30
TRANSFORM_FAILURE = 0.10
KINESIS_THROTTLE = 0.20
MAX_CONSECUTIVE_THROTTLES = 2  # botocore's standard mode makes 3 attempts
MAX_BATCH_FAILURES = 2  # Firehose makes 1 + NumberOfRetries (default 3) attempts
RESTARTS = 3

# Environment of a chaotic Lambda child process.
ENV_SEED = "CTR_BILLING_CHAOS_SEED"
ENV_TRANSFORM_FAILURE = "CTR_BILLING_CHAOS_TRANSFORM_FAILURE"
ENV_HANDLER = "CTR_BILLING_CHAOS_HANDLER"
CHAOTIC_HANDLER = "firehose.pipeline.chaos.chaotic_handler"
# Only transform handlers are wrapped (Firehose processors); other functions run as they are.
TRANSFORM_HANDLER = "transform.handler.lambda_handler"
LEDGER_VARIABLE = "LEDGER_TABLE"
# The vendor CSV's columns in a chaos run: the default ones behind contact_id, so that every vendor row
# can be traced to its contact (``reconcile``).
RECONCILABLE_CSV_COLUMNS = (
    "contact_id,call_type,initiation_timestamp,duration_seconds,patient_phone,provider_extension,hold_seconds"
)


def chance(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) determined by the seed and the parts (stable across processes)."""
    digest = hashlib.sha256(json.dumps([seed, *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class ChaosPlan:
    seed: int
    s3_put_failure: float = S3_PUT_FAILURE
    transform_failure: float = TRANSFORM_FAILURE
    kinesis_throttle: float = KINESIS_THROTTLE
    restarts: int = RESTARTS
    # A baseline for comparison only: the vendor transform runs without its billing ledger.
    without_ledger: bool = False

    def restart_points(self, total: int) -> list[int]:
        """After how many delivered records (of ``total``) the runtime is killed, in increasing order."""
        if total <= 0 or self.restarts <= 0:
            return []
        points = {
            max(1, int(total * (index + 0.5 * chance(self.seed, "restart", index)) / (self.restarts + 1)))
            for index in range(1, self.restarts + 1)
        }
        return sorted(point for point in points if point < total)


class InjectedFault(RuntimeError):
    """Raised by ``chaotic_handler``: an injected transform failure (holds no record data)."""


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


def _http_error(url: str, status: int, headers: Mapping[str, str], body: bytes) -> Any:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    fields = HTTPHeaders()
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        fields[name] = value
    return AWSResponse(url, status, fields, _RawBody(body))


class Faults:
    """The faults of one run, registered on clients; counts what it injected (thread-safe)."""

    def __init__(self, plan: ChaosPlan) -> None:
        self.plan = plan
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._attempted_keys: set[str] = set()
        self._reads = 0
        self._consecutive_throttles = 0

    def instrument(self, service: str, client: ClientT) -> ClientT:
        events = client.meta.events
        if service == "s3":
            events.register("before-send.s3.PutObject", self._s3_put)
        elif service == "kinesis":
            events.register("before-send.kinesis.GetRecords", self._kinesis_read)
        elif service == "lambda":
            events.register("after-call.lambda.GetFunctionConfiguration", self._wrap_transform)
        return client

    def _s3_put(self, request: Any, **_: Any) -> Any:
        key = urlsplit(request.url).path  # bucket and key, not the endpoint's port: stable across runs
        with self._lock:
            first_attempt = key not in self._attempted_keys
            self._attempted_keys.add(key)
            fail = first_attempt and chance(self.plan.seed, "s3", key) < self.plan.s3_put_failure
            if fail:
                self.injected["s3_put_failures"] += 1
        if not fail:
            return None
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate. (chaos)</Message></Error>"
        )
        return _http_error(request.url, 503, {"Content-Type": "application/xml"}, body)

    def _kinesis_read(self, request: Any, **_: Any) -> Any:
        with self._lock:
            self._reads += 1
            throttle = (
                self._consecutive_throttles < MAX_CONSECUTIVE_THROTTLES
                and chance(self.plan.seed, "kinesis", self._reads) < self.plan.kinesis_throttle
            )
            self._consecutive_throttles = self._consecutive_throttles + 1 if throttle else 0
            if throttle:
                self.injected["kinesis_throttles"] += 1
        if not throttle:
            return None
        body = json.dumps(
            {"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded for shard (chaos)"}
        ).encode()
        return _http_error(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, body)

    def _wrap_transform(self, parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("Handler") != TRANSFORM_HANDLER:
            return
        environment = parsed.setdefault("Environment", {}).setdefault("Variables", {})
        environment[ENV_HANDLER] = parsed["Handler"]
        environment[ENV_SEED] = str(self.plan.seed)
        environment[ENV_TRANSFORM_FAILURE] = str(self.plan.transform_failure)
        if self.plan.without_ledger:
            environment.pop(LEDGER_VARIABLE, None)
        parsed["Handler"] = CHAOTIC_HANDLER


class ChaoticAws:
    """An ``AwsEndpoint`` (what ``FirehoseRuntime`` takes) whose clients carry the run's faults."""

    def __init__(self, aws: AwsEndpoint, faults: Faults) -> None:
        self._aws = aws
        self.faults = faults
        self.region = aws.region

    @property
    def environment(self) -> dict[str, str]:
        return self._aws.environment

    def client(self, service: str, *, max_attempts: int = 3) -> Any:
        # Any, as ``AwsEndpoint.client``: the service's client type follows from the name the caller gives.
        client: BaseClient = self._aws.client(service, max_attempts=max_attempts)
        return self.faults.instrument(service, client)


# --- inside the Lambda child process ----------------------------------------------------------------

_handler: Callable[[Any, Any], Any] | None = None
_failures: Counter[str] = Counter()


def chaotic_handler(event: dict[str, Any], context: Any) -> Any:
    """The transform under chaos: fails on about ``CTR_BILLING_CHAOS_TRANSFORM_FAILURE`` of invocations,
    before or after running the real handler, at most ``MAX_BATCH_FAILURES`` times per batch."""
    global _handler
    if _handler is None:
        module_name, _, function_name = os.environ[ENV_HANDLER].rpartition(".")
        _handler = getattr(importlib.import_module(module_name), function_name)
    seed = int(os.environ[ENV_SEED])
    probability = float(os.environ[ENV_TRANSFORM_FAILURE])
    records = event.get("records") or [{}]
    batch = f"{records[0].get('recordId')}:{records[-1].get('recordId')}:{len(records)}"
    attempt = _failures[batch]
    roll = chance(seed, "transform", batch, attempt)
    fail = attempt < MAX_BATCH_FAILURES and roll < probability
    if fail and roll < probability / 2:
        _failures[batch] += 1
        raise InjectedFault("chaos: the transform crashed before running")
    result = _handler(event, context)
    if fail:
        _failures[batch] += 1
        raise InjectedFault("chaos: the transform timed out after running")
    return result


# --- traffic --------------------------------------------------------------------------------------------


def with_redeliveries(ctrs: Sequence[dict[str, Any]], seed: int, share: float = 0.05) -> list[dict[str, Any]]:
    """The CTRs, then what at-least-once delivery and Connect add: about ``share`` of them delivered twice,
    and about ``share`` republished later with a new ``LastUpdateTimestamp`` (half of those with a changed
    hold time, i.e. a billing correction). Every copy keeps its ``ContactId``."""
    import copy
    import random

    rng = random.Random(seed)
    extra: list[dict[str, Any]] = []
    for ctr in ctrs:
        roll = rng.random()
        if roll < share:
            extra.append(ctr)
        elif roll < 2 * share:
            republished = copy.deepcopy(ctr)
            republished["LastUpdateTimestamp"] = "2026-11-03T08:00:00Z"
            agent = republished.get("Agent")
            if isinstance(agent, dict) and rng.random() < 0.5:
                agent["CustomerHoldDuration"] = int(agent.get("CustomerHoldDuration") or 0) + 30
            extra.append(republished)
    return [*ctrs, *extra]


# --- kills and restarts -----------------------------------------------------------------------------


def summed_counts(snapshots: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """Per delivery stream, every count summed over runtimes (restarts start their counts from zero)."""
    total: dict[str, Counter[str]] = {}
    for snapshot in snapshots:
        for stream, counts in snapshot.items():
            total.setdefault(stream, Counter()).update(counts)
    return {stream: dict(counts) for stream, counts in total.items()}


def vendor_row_contact_ids(s3: S3Client, bucket: str, prefix: str = "billing/") -> list[str]:
    """The contact_id (first column, ``RECONCILABLE_CSV_COLUMNS``) of every vendor row under ``prefix``:
    the one reader of what the vendor received, for every chaos verdict."""
    import csv
    import io

    contact_ids: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
            contact_ids.extend(row[0] for row in csv.reader(io.StringIO(body, newline="")) if row)
    return contact_ids


# --- the verdict --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reconciliation:
    expected: int  # distinct billable contacts published
    vendor_rows: int
    lost: int  # billable contacts with no vendor row
    duplicate_vendor_rows: int  # vendor rows beyond the first of their contact
    unexpected: int  # vendor rows of contacts that are not billable

    def as_dict(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "vendor_rows": self.vendor_rows,
            "lost": self.lost,
            "duplicate_vendor_rows": self.duplicate_vendor_rows,
            "unexpected": self.unexpected,
        }


def reconcile(billable_contact_ids: Iterable[str], vendor_row_contact_ids: Iterable[str]) -> Reconciliation:
    expected = set(billable_contact_ids)
    rows = Counter(vendor_row_contact_ids)
    return Reconciliation(
        expected=len(expected),
        vendor_rows=sum(rows.values()),
        lost=len(expected - rows.keys()),
        duplicate_vendor_rows=sum(count - 1 for count in rows.values()),
        unexpected=sum(count for contact, count in rows.items() if contact not in expected),
    )
