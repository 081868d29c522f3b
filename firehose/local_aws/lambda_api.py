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
``X-Amz-Function-Error: Unhandled`` with ``{"errorType", "errorMessage"}``), ``Event`` (202 at once;
the function runs in the background) and ``DryRun`` (204). ``LogType: Tail`` returns the last 4 KB of
the function's log in ``X-Amz-Log-Result``.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firehose.runtime.lambda_invoker import MAX_PAYLOAD_BYTES, InvocationError, LambdaFunction, LocalLambda

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<function>[^/]+)/invocations/?$")
LOG_TAIL_BYTES = 4096

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class LambdaInvokeRoute:
    """WSGI route for Lambda ``Invoke``; ``matches`` says which requests are its own."""

    def __init__(
        self, client: Callable[[], LambdaClient], aws_environment: Callable[[], dict[str, str]]
    ) -> None:
        self._client = client
        self._aws_environment = aws_environment
        self._functions: dict[str, LocalLambda] = {}
        self._lock = threading.Lock()
        self._background: set[threading.Thread] = set()
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
            resolved = LambdaFunction.resolve(self._client(), name)
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
            thread = threading.Thread(target=self._run_event, args=(local, event), daemon=True)
            with self._lock:
                self._background.add(thread)
            thread.start()
            start_response("202 Accepted", [("Content-Length", "0")])
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

    def _run_event(self, local: LocalLambda, event: Any) -> None:
        try:
            local.invoke(event)
        except InvocationError:
            pass  # Lambda would retry twice, then drop it or send it to the dead-letter target
        finally:
            with self._lock:
                self._background.discard(threading.current_thread())

    def close(self) -> None:
        with self._lock:
            functions, self._functions = list(self._functions.values()), {}
            background = list(self._background)
        for thread in background:
            thread.join(timeout=30)
        for local in functions:
            local.close()


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
