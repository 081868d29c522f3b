"""Lambda ``Invoke`` on the embedded AWS: the function runs in the project's own warm execution
environments (``firehose.runtime.lambda_invoker.LocalLambda``), as the local Firehose runs it.

moto runs a function's code in a Docker container, and without one answers every invocation with
``FunctionError: Handled`` ("error running docker"). This route, in front of moto's application
(``firehose.local_aws.server.ControlRoute``), answers ``POST /2015-03-31/functions/<name>/invocations``
itself: the function's ``Handler``, ``Environment``, ``Timeout`` and ``MemorySize`` are read from the
Lambda API (GetFunctionConfiguration, i.e. the template), and one warm worker process per function
serves its invocations, its AWS clients pointed back at this embedded AWS. A route rather than a moto
fix because what replaces moto's Docker call is a process manager that must know the server's own
endpoint and outlive single requests; moto's own code (function lookup, errors for unknown functions)
is still what answers everything else, including an invocation of a function that does not exist.

Invocation types as Lambda has them: ``RequestResponse`` (200, the function's response, or
``X-Amz-Function-Error: Unhandled`` with ``{"errorType", "errorMessage"}``), ``Event`` (202 at once,
with the invocation's request ID in ``x-amzn-RequestId``; the function runs in the background, see
below) and ``DryRun`` (204). ``LogType: Tail`` returns the last 4 KB of the function's log in
``X-Amz-Log-Result``.

Asynchronous (``Event``) invocations are retried and dead-lettered as Lambda does
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html,
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html):

* a function error (``InvocationError``: the handler raised, timed out, or its runtime exited) is
  retried ``MaximumRetryAttempts`` times, from the function's event invoke configuration
  (GetFunctionEventInvokeConfig; Lambda's default 2 when there is none), so an event is run at most
  three times. Lambda waits about one minute before the first retry and two before the second;
  **locally the waits are ``RETRY_DELAYS_SECONDS`` (1 s and 2 s)**, a deliberate difference: the order
  and the count are Lambda's, the time is compressed so that a demo or a test sees the outcome at once
  (``LambdaInvokeRoute.retry_delays`` overrides the module constant);
* an event older than the configuration's ``MaximumEventAgeInSeconds`` (measured from the Invoke) is not
  run again. With the compressed waits an event never gets that old locally (Lambda's minimum is 60 s);
* once the last attempt failed or the event expired, the event goes to the function's dead-letter queue
  (GetFunctionConfiguration's ``DeadLetterConfig.TargetArn``): to an SQS queue with SendMessage, to an
  SNS topic with Publish, the body being the event as it was invoked and the message attributes
  ``RequestID`` (String), ``ErrorCode`` (Number, the HTTP status of the invocation: 200 for a function
  error) and ``ErrorMessage`` (String, the first 1 KB of the error message), as listed under
  "Dead-letter queue message attributes" in
  https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-dlq;
* and, when the event invoke configuration has an on-failure destination
  (``DestinationConfig.OnFailure.Destination``) that is an SQS queue or an SNS topic, an invocation
  record goes there too (``version``, ``timestamp``, ``requestContext`` with ``requestId``,
  ``functionArn``, ``condition`` ``RetriesExhausted`` / ``EventAgeExceeded`` and
  ``approximateInvokeCount``, ``requestPayload``, ``responseContext``, ``responsePayload``: "Example
  invocation record" on the same page). Without either target the event is dropped, as Lambda drops it.

What is logged of an asynchronous invocation is the function's name, the attempt, the request ID and
the error's *type*: never the event or the handler's error message, which may hold CTR data (PHI).
The dead-letter message and the destination record do hold them, as Lambda's do (the template's
queues are KMS-encrypted).

On ``close()``, an attempt that is running is waited for (up to 30 s, as before) and, if it was the
last, its event is dead-lettered; a retry that is still waiting is abandoned at once: the event is
neither run again nor dead-lettered (logged with its request ID), so the server stops in seconds.

Not emulated: on-success destinations; on-failure destinations that are a Lambda function, an
EventBridge bus or an S3 bucket (logged and skipped); Lambda's internal queue (each Event invocation
runs in a thread of its own at once, serialised per function by its warm worker), throttling and
its 6-hour retries of system errors; the request ID seen by the function (``context.aws_request_id``
is the worker's own, one per attempt, not the Invoke's); versions and aliases (the ``$LATEST``
configuration is used).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from firehose.local_aws.event_sources import queue_url
from firehose.runtime.lambda_invoker import MAX_PAYLOAD_BYTES, InvocationError, LambdaFunction, LocalLambda

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

logger = logging.getLogger(__name__)

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations/?$")
LOG_TAIL_BYTES = 4096
# Lambda waits about 1 minute before the first retry of a failed asynchronous invocation and 2 minutes
# before the second. Locally 1 s and 2 s: a deliberate difference (same order and count, compressed).
RETRY_DELAYS_SECONDS: tuple[float, ...] = (1.0, 2.0)
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2  # Lambda's, when the function has no event invoke configuration
ERROR_MESSAGE_BYTES = 1024  # a dead-letter message's ErrorMessage: the first 1 KB of the error message
FUNCTION_ERROR_STATUS = 200  # the Invoke's HTTP status when the function failed: a DLQ's ErrorCode
CLOSE_JOIN_SECONDS = 30.0

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class LambdaInvokeRoute:
    """WSGI route for Lambda ``Invoke``; ``matches`` says which requests are its own."""

    def __init__(
        self,
        client: Callable[..., Any],
        aws_environment: Callable[[], dict[str, str]],
        *,
        retry_delays: Sequence[float] | None = None,
    ) -> None:
        self._client = client
        self._aws_environment = aws_environment
        self._functions: dict[str, LocalLambda] = {}
        self._lock = threading.Lock()
        self._background: set[threading.Thread] = set()
        self._closing = threading.Event()
        # The waits before the retries of a failed Event invocation; None: RETRY_DELAYS_SECONDS, read
        # when a retry waits (tests shorten either).
        self.retry_delays: tuple[float, ...] | None = (
            tuple(retry_delays) if retry_delays is not None else None
        )
        self.log_dir = Path(tempfile.mkdtemp(prefix="ctr-billing-lambda-logs-"))

    @staticmethod
    def matches(environ: dict[str, Any]) -> bool:
        return environ.get("REQUEST_METHOD") == "POST" and bool(
            INVOKE_PATH.match(environ.get("PATH_INFO") or "")
        )

    def function(self, name: str) -> LocalLambda | None:
        """The warm execution environment of ``name`` (a name or ARN), started on first use; restarted
        when the function's configuration changed. None if the Lambda API does not know the function."""
        try:
            resolved = LambdaFunction.resolve(self._lambda(), name)
        except Exception as error:
            if type(error).__name__ == "ResourceNotFoundException":
                return None
            raise
        with self._lock:
            local = self._functions.get(resolved.arn)
            if local is not None and local.function != resolved:
                local.close()
                local = None
            if local is None:
                log_path = self.log_dir / f"{resolved.name}.log"
                local = LocalLambda(resolved, self._aws_environment(), log_path)
                self._functions[resolved.arn] = local
            return local

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, moto_app: Callable[..., Iterable[bytes]]
    ) -> Iterable[bytes]:
        match = INVOKE_PATH.match(environ.get("PATH_INFO") or "")
        assert match is not None
        name = urllib.parse.unquote(match["function"])
        local = self.function(name)
        if local is None:  # moto's own answer: ResourceNotFoundException
            return moto_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else b""
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse"
        if len(payload) > MAX_PAYLOAD_BYTES:
            return _error(
                start_response, 413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes"
            )
        try:
            event = json.loads(payload) if payload.strip() else {}
        except ValueError:
            return _error(
                start_response,
                400,
                "InvalidRequestContentException",
                "Could not parse request body into json",
            )
        if invocation_type == "DryRun":
            start_response("204 No Content", [("Content-Length", "0")])
            return [b""]
        if invocation_type == "Event":
            invocation = _AsyncInvocation(
                request_id=str(uuid.uuid4()),
                event=event,
                body=payload.decode("utf-8", "replace") if payload.strip() else "{}",
                received=time.monotonic(),
            )
            thread = threading.Thread(
                target=self._run_event,
                args=(local, invocation),
                name=f"lambda-event-{local.function.name}",
                daemon=True,
            )
            with self._lock:
                self._background.add(thread)
            thread.start()
            start_response(
                "202 Accepted", [("Content-Length", "0"), ("x-amzn-RequestId", invocation.request_id)]
            )
            return [b""]
        if invocation_type != "RequestResponse":
            return _error(start_response, 400, "InvalidParameterValueException", "Unsupported InvocationType")
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        log_start = _log_size(local)
        try:
            body = json.dumps(local.invoke(event), separators=(",", ":")).encode()
        except InvocationError as error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
            body = json.dumps(
                {
                    "errorType": error.error_type or "Runtime.ExitError",
                    "errorMessage": error.handler_message if error.error_type else error.message,
                }
            ).encode()
        if (environ.get("HTTP_X_AMZ_LOG_TYPE") or "") == "Tail":
            headers.append(("X-Amz-Log-Result", _log_tail(local, log_start)))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    def _run_event(self, local: LocalLambda, invocation: _AsyncInvocation) -> None:
        name = local.function.name
        try:
            self._run_attempts(local, invocation)
        except Exception as error:  # the server outlives anything a background invocation meets
            logger.warning(
                "Lambda %s: asynchronous invocation %s ended with an error of the embedded AWS (%s)",
                name,
                invocation.request_id,
                type(error).__name__,
            )
        finally:
            with self._lock:
                self._background.discard(threading.current_thread())

    def _retry_delay(self, retry: int) -> float:
        delays = self.retry_delays if self.retry_delays is not None else RETRY_DELAYS_SECONDS
        return delays[min(retry, len(delays)) - 1] if delays else 0.0

    def _run_attempts(self, local: LocalLambda, invocation: _AsyncInvocation) -> None:
        """Run the event until it succeeds, its retries are spent or it expires; then dead-letter it."""
        name, arn = local.function.name, local.function.arn
        settings = self._event_invoke_config(arn)
        retries = int(settings.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS))
        maximum_age = settings.get("MaximumEventAgeInSeconds")
        attempts = 1 + max(0, retries)
        attempt = 0
        while True:
            attempt += 1
            try:
                local.invoke(invocation.event)
                if attempt > 1:
                    logger.info(
                        "Lambda %s: asynchronous invocation %s succeeded on attempt %d",
                        name,
                        invocation.request_id,
                        attempt,
                    )
                return
            except InvocationError as error:
                failure = error
            if attempt >= attempts:
                condition = "RetriesExhausted"
                break
            delay = self._retry_delay(attempt)
            logger.warning(
                "Lambda %s: asynchronous invocation %s, attempt %d of %d failed (%s); retrying in %g s",
                name,
                invocation.request_id,
                attempt,
                attempts,
                _error_type(failure),
                delay,
            )
            if self._closing.wait(delay):
                logger.warning(
                    "Lambda %s: asynchronous invocation %s abandoned on shutdown after %d attempt(s); "
                    "not dead-lettered",
                    name,
                    invocation.request_id,
                    attempt,
                )
                return
            if maximum_age is not None and time.monotonic() - invocation.received > float(maximum_age):
                condition = "EventAgeExceeded"
                break
            refreshed = self.function(arn)  # its configuration may have changed meanwhile
            if refreshed is None:
                logger.warning(
                    "Lambda %s: asynchronous invocation %s dropped: the function no longer exists",
                    name,
                    invocation.request_id,
                )
                return
            local = refreshed
        logger.warning(
            "Lambda %s: asynchronous invocation %s failed (%s) after %d attempt(s) (%s)",
            name,
            invocation.request_id,
            _error_type(failure),
            attempt,
            condition,
        )
        self._dispose(local.function, invocation, failure, attempt, condition)

    def _event_invoke_config(self, function_arn: str) -> Mapping[str, Any]:
        try:
            return self._lambda().get_function_event_invoke_config(FunctionName=function_arn)
        except Exception as error:
            if type(error).__name__ == "ResourceNotFoundException":  # none: Lambda's defaults
                return {}
            raise

    def _dispose(
        self,
        function: LambdaFunction,
        invocation: _AsyncInvocation,
        error: InvocationError,
        attempts: int,
        condition: str,
    ) -> None:
        """Send the failed event to the function's dead-letter queue and its on-failure destination."""
        configuration = self._lambda().get_function_configuration(FunctionName=function.arn)
        dead_letter = (configuration.get("DeadLetterConfig") or {}).get("TargetArn") or ""
        settings = self._event_invoke_config(function.arn)
        on_failure = ((settings.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        ) or ""
        if not dead_letter and not on_failure:
            logger.warning(
                "Lambda %s: asynchronous invocation %s dropped (no dead-letter queue, no on-failure "
                "destination)",
                function.name,
                invocation.request_id,
            )
            return
        message = _error_message(error)
        if dead_letter:
            attributes = {
                "RequestID": {"DataType": "String", "StringValue": invocation.request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": str(FUNCTION_ERROR_STATUS)},
                "ErrorMessage": {
                    "DataType": "String",
                    "StringValue": message.encode()[:ERROR_MESSAGE_BYTES].decode("utf-8", "ignore") or "-",
                },
            }
            self._send(function, invocation, "dead-letter queue", dead_letter, invocation.body, attributes)
        if on_failure:
            record = {
                "version": "1.0",
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "requestContext": {
                    "requestId": invocation.request_id,
                    "functionArn": f"{function.arn}:$LATEST",
                    "condition": condition,
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": invocation.event,
                "responseContext": {
                    "statusCode": FUNCTION_ERROR_STATUS,
                    "executedVersion": "$LATEST",
                    "functionError": "Unhandled",
                },
                "responsePayload": {"errorMessage": message, "errorType": _error_type(error)},
            }
            self._send(function, invocation, "on-failure destination", on_failure, json.dumps(record), {})

    def _send(
        self,
        function: LambdaFunction,
        invocation: _AsyncInvocation,
        role: str,
        target: str,
        body: str,
        attributes: dict[str, Any],
    ) -> None:
        """SendMessage to an SQS queue or Publish to an SNS topic; any other target is logged, skipped."""
        parts = target.split(":", 5)
        service = parts[2] if len(parts) == 6 else ""
        if service not in ("sqs", "sns"):
            logger.warning(
                "Lambda %s: %s %s is not emulated (SQS queues and SNS topics are); invocation %s not sent",
                function.name,
                role,
                target,
                invocation.request_id,
            )
            return
        try:
            client = self._target_client(service, parts[3])
            if service == "sqs":
                options: dict[str, Any] = {"QueueUrl": queue_url(client, target), "MessageBody": body}
                if attributes:
                    options["MessageAttributes"] = attributes
                client.send_message(**options)
            else:
                options = {"TopicArn": target, "Message": body}
                if attributes:
                    options["MessageAttributes"] = attributes
                client.publish(**options)
        except Exception as error:  # Lambda deletes the event then (its DeadLetterErrors metric)
            logger.warning(
                "Lambda %s: asynchronous invocation %s could not be sent to its %s %s (%s); dropped",
                function.name,
                invocation.request_id,
                role,
                target,
                type(error).__name__,
            )
            return
        logger.warning(
            "Lambda %s: asynchronous invocation %s sent to its %s %s",
            function.name,
            invocation.request_id,
            role,
            target,
        )

    def _lambda(self) -> LambdaClient:
        client: LambdaClient = self._client("lambda")
        return client

    def _target_client(self, service: str, region: str) -> Any:
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        if region:
            return self._client(service, region=region, config=config)
        return self._client(service, config=config)

    def close(self) -> None:
        """Stop: retries still waiting are abandoned at once; running attempts are waited for (up to
        ``CLOSE_JOIN_SECONDS`` each); then every warm execution environment ends."""
        self._closing.set()
        with self._lock:
            background = list(self._background)
        for thread in background:
            thread.join(timeout=CLOSE_JOIN_SECONDS)
        with self._lock:
            functions, self._functions = list(self._functions.values()), {}
        for local in functions:
            local.close()


@dataclass(frozen=True, slots=True)
class _AsyncInvocation:
    """An accepted ``Event`` invocation: its request ID, the event, and the payload as it was sent."""

    request_id: str
    event: Any
    body: str
    received: float  # time.monotonic() at the Invoke


def _error_type(error: InvocationError) -> str:
    return error.error_type or "Runtime.ExitError"


def _error_message(error: InvocationError) -> str:
    """What Lambda reports as the error message (for the dead-letter queue; never logged)."""
    return (error.handler_message if error.error_type else error.message) or _error_type(error)


def _log_size(local: LocalLambda) -> int:
    try:
        return local.log_path.stat().st_size
    except OSError:
        return 0


def _log_tail(local: LocalLambda, start: int) -> str:
    try:
        with local.log_path.open("rb") as log:
            log.seek(start)
            text = log.read()
    except OSError:
        text = b""
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode()


def _error(start_response: StartResponse, status: int, code: str, message: str) -> list[bytes]:
    body = json.dumps({"Type": "User", "message": message}).encode()
    reasons = {400: "Bad Request", 413: "Request Entity Too Large"}
    start_response(
        f"{status} {reasons.get(status, 'Error')}",
        [
            ("Content-Type", "application/json"),
            ("X-Amzn-ErrorType", code),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
