"""The transform Lambda's handler on one Firehose batch of 1,200 realistic CTRs (~2 KB, 80 % billable).

Side by side in one process, CPU time (``time.process_time``), best of interleaved rounds:
  * ours   -- ``transform.handler.lambda_handler`` as deployed (CSV output, Logger and Metrics included);
  * naive  -- the same rules written the way the AWS blueprints do it: powertools' Firehose event data
              classes, ``json``, one ``csv.writer`` into a ``StringIO`` per record;
  * floor  -- base64-decode and ``json.loads`` of the same records, nothing else.
Targets (issue 2): ours >= 1.5x the naive handler's speed and <= 1.5x the floor's time. Figures only,
never a pass/fail assertion.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import gc
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BATCH_SIZE = 1200
BILLABLE_SHARE = 0.8
ROUNDS = 9
CALLS_PER_ROUND = 5
TARGET_VS_NAIVE = 1.5  # ours must be at least this many times faster than naive
TARGET_VS_FLOOR = 1.5  # ours may take at most this many times the floor's time

# The deployed configuration of the vendor stream (DIRECTORY_TABLE / LEDGER_TABLE off: no AWS in a bench).
_ENVIRONMENT = {
    "OUTPUT_FORMAT": "csv",
    "POWERTOOLS_SERVICE_NAME": "ctr-billing-transform",
    "POWERTOOLS_METRICS_NAMESPACE": "CtrBillingBench",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}

_OUTBOUND = {"OUTBOUND", "CALLBACK", "EXTERNAL_OUTBOUND", "CAMPAIGN_PREVIEW"}


def naive_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """The blueprint way: data classes, ``json``, a ``csv.writer`` per record. Same rules and columns."""
    from aws_lambda_powertools.utilities.data_classes import (
        KinesisFirehoseDataTransformationRecord,
        KinesisFirehoseDataTransformationResponse,
        KinesisFirehoseEvent,
    )

    firehose_event = KinesisFirehoseEvent(event)
    response = KinesisFirehoseDataTransformationResponse()
    for record in firehose_event.records:
        try:
            ctr = record.data_as_json
        except ValueError:
            response.add_record(record.build_data_transformation_response("ProcessingFailed", record.data))
            continue
        agent = ctr.get("Agent") or {}
        if (
            "ContactId" not in ctr
            or ctr.get("Channel") != "VOICE"
            or not agent.get("ConnectedToAgentTimestamp")
            or ctr.get("InitiationMethod") == "MONITOR"
        ):
            response.add_record(record.build_data_transformation_response("Dropped"))
            continue
        try:
            initiated = datetime.fromisoformat(ctr["InitiationTimestamp"])
            connected = datetime.fromisoformat(agent["ConnectedToAgentTimestamp"])
            disconnected = datetime.fromisoformat(ctr["DisconnectTimestamp"])
            left_at = agent.get("AfterContactWorkStartTimestamp") or ctr.get("TransferCompletedTimestamp")
            left = min(datetime.fromisoformat(left_at), disconnected) if left_at else disconnected
        except (KeyError, TypeError, ValueError):
            response.add_record(record.build_data_transformation_response("ProcessingFailed", record.data))
            continue
        endpoint = ctr.get("CustomerEndpoint") or {}
        phone = endpoint.get("Address", "") if endpoint.get("Type") == "TELEPHONE_NUMBER" else ""
        row = [
            "OUTBOUND"
            if ctr.get("InitiationMethod") in _OUTBOUND
            or (ctr.get("InitiationMethod") == "API" and ctr.get("Channel") == "VOICE")
            else "INBOUND",
            initiated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            int((left - connected).total_seconds()),
            phone,
            (ctr.get("Attributes") or {}).get("extensionNumber", ""),
            int(agent.get("CustomerHoldDuration") or 0),
        ]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(row)
        response.add_record(
            KinesisFirehoseDataTransformationRecord(
                record_id=record.record_id,
                data=base64.b64encode(buffer.getvalue().encode()).decode(),
            )
        )
    return response.asdict()


def floor(event: dict[str, Any], context: object) -> None:
    """What any handler must do at least: decode and parse every record."""
    loads, b64decode = json.loads, base64.b64decode
    for record in event["records"]:
        loads(b64decode(record["data"]))


@dataclass(frozen=True, slots=True)
class LambdaContext:
    function_name: str = "bench-transform"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:111122223333:function:bench-transform"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/bench-transform"
    log_stream_name: str = "bench"


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """The handler's log line and EMF metrics go to fd 1; keep them out of the figures' output."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _cpu_seconds(handler: Callable[[dict[str, Any], Any], object], event: dict[str, Any]) -> float:
    context = LambdaContext()
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for _ in range(CALLS_PER_ROUND):
            handler(event, context)
        return (time.process_time() - start) / CALLS_PER_ROUND
    finally:
        gc.enable()


def _check_same_answers(ours: dict[str, Any], naive: dict[str, Any]) -> None:
    """Both handlers must do the same job, or the comparison means nothing."""
    assert [r["result"] for r in ours["records"]] == [r["result"] for r in naive["records"]]
    for mine, theirs in zip(ours["records"], naive["records"], strict=True):
        if mine["result"] == "Ok":
            assert base64.b64decode(mine["data"]) == base64.b64decode(theirs["data"])


def main() -> None:
    from tests.support.ctr_factory import firehose_event, realistic_ctrs

    with _stdout_silenced():
        os.environ.update(_ENVIRONMENT)
        from transform.handler import lambda_handler

        ctrs = realistic_ctrs(BATCH_SIZE, billable_share=BILLABLE_SHARE)
        event = firehose_event(ctrs)
        ours = lambda_handler(event, LambdaContext())
        _check_same_answers(ours, naive_handler(event, LambdaContext()))

        contenders: dict[str, Callable[[dict[str, Any], Any], object]] = {
            "ours": lambda_handler,
            "naive": naive_handler,
            "floor": floor,
        }
        best = dict.fromkeys(contenders, float("inf"))
        for _ in range(ROUNDS):
            for name, handler in contenders.items():
                best[name] = min(best[name], _cpu_seconds(handler, event))

    record_bytes = sum(len(base64.b64decode(r["data"])) for r in event["records"]) / BATCH_SIZE
    billable = sum(r["result"] == "Ok" for r in ours["records"])
    print(
        f"transform handler: batch of {BATCH_SIZE} CTRs, {record_bytes:,.0f} B each on average, "
        f"{billable / BATCH_SIZE:.0%} billable; CPU time per batch, best of {ROUNDS} interleaved rounds"
    )
    for name, seconds in best.items():
        print(f"  {name:<6} {seconds * 1000:8.2f} ms   {BATCH_SIZE / seconds:>10,.0f} records/s")
    speedup = best["naive"] / best["ours"]
    over_floor = best["ours"] / best["floor"]
    print(
        f"  speed vs naive: {speedup:.2f}x (target >= {TARGET_VS_NAIVE}x: "
        f"{'met' if speedup >= TARGET_VS_NAIVE else 'NOT met'})"
    )
    print(
        f"  time vs floor:  {over_floor:.2f}x (target <= {TARGET_VS_FLOOR}x: "
        f"{'met' if over_floor <= TARGET_VS_FLOOR else 'NOT met'})"
    )
    print(
        "  (ours can beat the floor: it decodes base64 and only the CTR's billing fields with msgspec,"
        " the floor base64.b64decode + json.loads of whole records)"
    )


if __name__ == "__main__":
    main()
