"""One Lambda function's execution environment: a child process whose environment is the function's own.

Why a process per function rather than importing handlers in the runtime: the transform reads its
settings from ``os.environ`` at import (cold start), and two functions share a handler module with
different ``Environment``s. A child process gives each function its own module instance and its own
``os.environ`` with no patching of the runtime's, and runs transforms beside the runtime on another
core. The process stays warm between invocations, as a Lambda execution environment does.

Run as a script (``lambda_invoker.WORKER_COMMAND``), so the process imports nothing of the project
but this module and the handler's own. Protocol: length-prefixed JSON frames; requests on stdin,
responses on the file descriptor that was stdout. The handler's own stdout (powertools logs and
metrics) goes to stderr, which the runtime points at the function's log file.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
# A handler's result travels as {"result":<result>}: the bytes that are not the function's response.
RESULT_FRAMING = b'{"result":}'


def read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    body = stream.read(length)
    if len(body) < length:
        return None
    return body


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


class LambdaContext:
    """The attributes of Lambda's context object that handlers (and powertools) read."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.function_name: str = fields["function_name"]
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = fields["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(fields["memory_limit_in_mb"])
        self.aws_request_id: str = fields["aws_request_id"]
        self.log_group_name: str = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = "local"
        self._deadline = time.monotonic() + float(fields["timeout_seconds"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load_handler(path: str) -> Callable[[Any, Any], Any]:
    module_name, _, function_name = path.rpartition(".")
    module = importlib.import_module(module_name)
    handler: Callable[[Any, Any], Any] = getattr(module, function_name)
    return handler


def _error(error: BaseException) -> dict[str, Any]:
    # The type and message only: a handler's message is its own business, but the runtime never logs it.
    return {"error": {"errorType": type(error).__name__, "errorMessage": str(error)[:500]}}


def main() -> int:
    # A terminal's Ctrl-C reaches the whole process group; the runtime decides when an execution
    # environment ends (it closes stdin), so ``serve`` can still drain through it after Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    responses = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the handler's prints and logs go to the log file
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    handler_path = os.environ["_HANDLER"]
    handler: Callable[[Any, Any], Any] | None = None
    while True:
        frame = read_frame(requests)
        if frame is None:
            return 0
        request = json.loads(frame)
        try:
            if handler is None:  # a failed cold start is retried on the next invocation, as Lambda does
                handler = _load_handler(handler_path)
            result = handler(request["event"], LambdaContext(request["context"]))
            body = json.dumps({"result": result}, separators=(",", ":")).encode()
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            body = json.dumps(_error(error)).encode()
        write_frame(responses, body)


if __name__ == "__main__":
    sys.exit(main())
