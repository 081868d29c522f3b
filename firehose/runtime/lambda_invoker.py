"""Invoke a Lambda function in a local execution environment resolved from the Lambda API.

The function's ``Handler``, ``Environment``, ``Timeout`` and ``MemorySize`` come from
GetFunctionConfiguration on the embedded AWS, i.e. from the template; the handler's code is the
project's own modules (the same ones the Lambda zip packages). See ``lambda_worker`` for why each
function runs in its own warm child process.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from firehose.runtime import lambda_worker
from firehose.runtime.lambda_worker import HEADER, RESULT_FRAMING
from firehose.runtime.processes import peak_rss_mb

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# The execution environment runs the worker as a script, not as ``-m firehose.runtime.lambda_worker``:
# runpy would first import the ``firehose.runtime`` package (the local Firehose, pyarrow included: ~60 MB
# in every execution environment, which Lambda's does not hold), which imports the worker, and then warn
# on the first line of every function log that it runs a module already imported. ``-P`` keeps the
# script's folder off ``sys.path``, where the runtime's modules would shadow top-level names.
WORKER_COMMAND = (sys.executable, "-P", str(Path(lambda_worker.__file__).resolve()))


class InvocationError(RuntimeError):
    """The invocation failed; ``code`` is the Firehose error code, the message holds no record data."""

    def __init__(
        self, code: str, message: str, *, error_type: str | None = None, handler_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # The handler's own error, when it raised one: for Lambda's Invoke API, which returns it to the
        # caller as Lambda does (``firehose.local_aws.lambda_api``); the runtime never logs it.
        self.error_type = error_type
        self.handler_message = handler_message


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    name: str
    arn: str
    handler: str
    environment: Mapping[str, str]
    timeout_seconds: float
    memory_mb: int

    @classmethod
    def resolve(cls, lambda_client: LambdaClient, function: str) -> LambdaFunction:
        configuration = lambda_client.get_function_configuration(FunctionName=function)
        return cls(
            name=configuration["FunctionName"],
            arn=configuration["FunctionArn"],
            handler=configuration["Handler"],
            # Lambda's API gives strings; moto echoes template values such as a Number parameter as is.
            environment={
                str(key): str(value)
                for key, value in ((configuration.get("Environment") or {}).get("Variables") or {}).items()
            },
            timeout_seconds=float(configuration.get("Timeout") or 3),
            memory_mb=int(configuration.get("MemorySize") or 128),
        )


class LocalLambda:
    """One warm execution environment (child process) per function; invocations are serialised."""

    def __init__(self, function: LambdaFunction, aws_environment: Mapping[str, str], log_path: Path) -> None:
        self.function = function
        self._aws_environment = dict(aws_environment)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._peak_rss_mb = 0.0  # of execution environments already ended

    def _environment(self) -> dict[str, str]:
        python_path = os.pathsep.join(entry for entry in sys.path if entry)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONPATH": python_path,
            "PYTHONUNBUFFERED": "1",
            "_HANDLER": self.function.handler,
            "AWS_LAMBDA_FUNCTION_NAME": self.function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python_local",
            **self._aws_environment,
        }
        environment.update(self.function.environment)
        return environment

    def _start(self) -> subprocess.Popen[bytes]:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("ab")
        return subprocess.Popen(
            WORKER_COMMAND,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self._environment(),
            cwd=str(Path(__file__).resolve().parents[2]),
        )

    def invoke(self, event: Mapping[str, Any]) -> Any:
        # msgspec: the event is megabytes of base64 strings, encoded ~3x faster than json.dumps does.
        request = msgspec.json.encode(event)
        if len(request) > MAX_PAYLOAD_BYTES:
            raise InvocationError("Lambda.FunctionError", "request payload is over the 6 MB limit")
        payload = b'{"event":%b,"context":%b}' % (request, msgspec.json.encode(self._context()))
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = self._start()
            process = self._process
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(HEADER.pack(len(payload)) + payload)
                process.stdin.flush()
                body = _read_frame(process.stdout, self.function.timeout_seconds)
            except TimeoutError:
                self._kill()
                raise InvocationError(
                    "Lambda.FunctionError",
                    f"Task timed out after {self.function.timeout_seconds:.2f} seconds",
                ) from None
            except (BrokenPipeError, EOFError, OSError):
                self._kill()
                raise InvocationError("Lambda.FunctionError", "the function's runtime exited") from None
        if len(body) - len(RESULT_FRAMING) > MAX_PAYLOAD_BYTES:
            raise InvocationError("Lambda.FunctionError", "response payload is over the 6 MB limit")
        answer = json.loads(body)
        if "error" in answer:
            error = answer["error"]
            raise InvocationError(
                "Lambda.FunctionError",
                f"the function returned an error ({error['errorType']})",
                error_type=error["errorType"],
                handler_message=error.get("errorMessage"),
            )
        return answer["result"]

    @property
    def log_path(self) -> Path:
        """The file the function's log (its stderr and stdout) is appended to."""
        return self._log_path

    def _context(self) -> dict[str, Any]:
        return {
            "function_name": self.function.name,
            "invoked_function_arn": self.function.arn,
            "memory_limit_in_mb": self.function.memory_mb,
            "aws_request_id": str(uuid.uuid4()),
            "timeout_seconds": self.function.timeout_seconds,
        }

    def peak_rss_mb(self) -> float:
        """The largest peak RSS (MiB, Linux ``VmHWM``) of this function's execution environments so far."""
        process = self._process
        current = _peak_rss_mb(process.pid) if process is not None else 0.0
        return max(self._peak_rss_mb, current)

    def _note_peak(self) -> None:
        if self._process is not None:
            self._peak_rss_mb = max(self._peak_rss_mb, _peak_rss_mb(self._process.pid))

    def _kill(self) -> None:
        self._note_peak()
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def close(self) -> None:
        with self._lock:
            process = self._process
            self._note_peak()
            if process is not None:
                assert process.stdin is not None
                try:
                    process.stdin.close()
                    process.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    process.kill()
                    process.wait(timeout=5)
                self._process = None
            if self._log is not None:
                self._log.close()
                self._log = None


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    descriptor = stream.fileno()
    while remaining:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise TimeoutError
        ready, _, _ = select.select([descriptor], [], [], timeout)
        if not ready:
            raise TimeoutError
        chunk = os.read(descriptor, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes], timeout_seconds: float) -> bytes:
    deadline = time.monotonic() + timeout_seconds
    (length,) = HEADER.unpack(_read_exactly(stream, HEADER.size, deadline))
    return _read_exactly(stream, length, deadline)


def _peak_rss_mb(pid: int) -> float:
    return peak_rss_mb(pid) or 0.0
