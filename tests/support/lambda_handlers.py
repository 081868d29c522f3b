"""Firehose transformation handlers with known behaviour, run by the local runtime in-process-per-function
like any Lambda (resolved from the function's Handler, configured by its Environment)."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

# Read at import, as the transform reads its settings at cold start.
MODE = os.environ.get("MODE", "ok")
EVENT_LOG = os.environ.get("EVENT_LOG", "")
ATTEMPTS_FILE = os.environ.get("ATTEMPTS_FILE", "")
# One line per invocation: how many records the event held and its size as compact JSON.
SIZE_LOG = os.environ.get("SIZE_LOG", "")
# One line per invocation: the process id of the execution environment that ran it.
PID_LOG = os.environ.get("PID_LOG", "")


def _ok(record: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64decode(record["data"]) + b"\n"
    return {"recordId": record["recordId"], "result": "Ok", "data": base64.b64encode(data).decode()}


def handler(event: dict[str, Any], context: Any) -> Any:
    if EVENT_LOG:
        with Path(EVENT_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps({"event": event, "function_name": context.function_name}) + "\n")
    if SIZE_LOG:
        size = len(json.dumps(event, separators=(",", ":")).encode())
        with Path(SIZE_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps({"records": len(event["records"]), "bytes": size}) + "\n")
    if PID_LOG:
        with Path(PID_LOG).open("a", encoding="utf-8") as log:
            log.write(f"{os.getpid()}\n")
    records = event["records"]
    if MODE == "sleep":  # past any test function's Timeout; the runtime must end the environment
        time.sleep(60)
    if MODE == "raise":
        raise RuntimeError("the transform failed")
    if MODE == "fail-once":
        attempts = Path(ATTEMPTS_FILE)
        count = int(attempts.read_text()) if attempts.exists() else 0
        attempts.write_text(str(count + 1))
        if count == 0:
            raise RuntimeError("first attempt fails")
    if MODE == "no-records":
        return {"result": "Ok"}
    answers = [_ok(record) for record in records]
    if MODE == "duplicate-id":
        answers.append(dict(answers[0]))
    elif MODE == "missing-id":
        answers.pop()
    elif MODE == "unknown-id":
        answers[0]["recordId"] = "not-a-record-id"
    elif MODE == "bad-result":
        answers[0]["result"] = "Maybe"
    elif MODE == "oversized-response":  # over Lambda's 6 MB response limit
        answers[0]["data"] = base64.b64encode(b"x" * (5 * 1024 * 1024)).decode()
    elif MODE == "ok-without-data":
        del answers[0]["data"]
    elif MODE == "ok-with-null-data":
        answers[0]["data"] = None
    elif MODE == "bad-base64":
        answers[0]["data"] = "%%% not base64 %%%"
    elif MODE == "processing-failed":
        for answer, record in zip(answers, records, strict=True):
            answer.update(result="ProcessingFailed", data=record["data"])
    elif MODE == "dropped":
        for answer in answers:
            answer.update(result="Dropped", data="")
    return {"records": answers}


def sqs_handler(event: dict[str, Any], context: Any) -> Any:
    """An SQS event source's function: logs each event to EVENT_LOG, writes each body to the bucket
    OUTPUT_BUCKET under ``<messageId>``, and answers by the bodies: "fail" is reported in
    ``batchItemFailures``, "raise" fails the invocation, "bad-id" reports a message not in the batch."""
    import boto3  # only this handler talks to AWS; the Firehose handlers above stay dependency-free

    if EVENT_LOG:
        with Path(EVENT_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps({"event": event, "function_name": context.function_name}) + "\n")
    bucket = os.environ.get("OUTPUT_BUCKET", "")
    s3 = boto3.client("s3") if bucket else None
    failures = []
    for record in event["Records"]:
        if s3 is not None:
            s3.put_object(Bucket=bucket, Key=record["messageId"], Body=record["body"].encode())
        if record["body"] == "raise":
            raise RuntimeError("the batch failed")
        if record["body"] == "fail":
            failures.append({"itemIdentifier": record["messageId"]})
        if record["body"] == "bad-id":
            failures.append({"itemIdentifier": "not-a-message-of-the-batch"})
    return {"batchItemFailures": failures}


def _count_attempt() -> int:
    """Append this attempt (its time) to ATTEMPTS_LOG; the attempt's number, from 1."""
    log = Path(os.environ["ATTEMPTS_LOG"])
    with log.open("a", encoding="utf-8") as attempts:
        attempts.write(f"{time.time()}\n")
    return len(log.read_text(encoding="utf-8").splitlines())


def failing_handler(event: dict[str, Any], context: Any) -> Any:
    """An asynchronous invocation's function that always fails: counts the attempt in ATTEMPTS_LOG, then
    raises with a message that carries the event's ``phone`` (as a careless handler's message would)."""
    attempt = _count_attempt()
    raise RuntimeError(f"attempt {attempt} failed for {event.get('phone')}")


def flaky_handler(event: dict[str, Any], context: Any) -> Any:
    """Fails its first FAILURES attempts (counted in ATTEMPTS_LOG), then answers ``{"attempt": n}``."""
    attempt = _count_attempt()
    if attempt <= int(os.environ.get("FAILURES", "1")):
        raise RuntimeError(f"attempt {attempt} failed")
    return {"attempt": attempt}
