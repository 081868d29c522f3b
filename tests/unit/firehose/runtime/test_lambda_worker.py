"""A local Lambda execution environment (``LocalLambda``): its log is the function's own output only."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

from firehose.runtime.lambda_invoker import WORKER_COMMAND, LambdaFunction, LocalLambda


def test_a_function_log_starts_with_the_handler_s_json_and_holds_only_json(tmp_path: Path) -> None:
    # GIVEN the transform Lambda in a local execution environment, its log in a file
    function = LambdaFunction(
        name="transform-csv",
        arn="arn:aws:lambda:us-east-1:123456789012:function:transform-csv",
        handler="transform.handler.lambda_handler",
        environment={},
        timeout_seconds=30,
        memory_mb=256,
    )
    log_path = tmp_path / "transform-csv.log"
    local = LocalLambda(function, {}, log_path)
    record = {"recordId": "1", "data": base64.b64encode(b'{"not": "a contact"}').decode()}

    # WHEN it is invoked once and its environment ends
    try:
        response = local.invoke({"records": [record]})
    finally:
        local.close()

    # THEN the record was answered, and the log (what README's jq reads) is JSON from its first byte:
    # no interpreter warning before the handler's metrics
    assert [answer["result"] for answer in response["records"]] == ["Dropped"]
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert lines, "the handler's metrics are logged"
    assert lines[0].startswith("{")
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_an_execution_environment_imports_none_of_the_local_runtime() -> None:
    # GIVEN the command that starts an execution environment, with Python listing what it imports
    command = [WORKER_COMMAND[0], "-X", "importtime", *WORKER_COMMAND[1:]]

    # WHEN it starts and ends at once (no invocation: stdin is closed)
    completed = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"_HANDLER": "transform.handler.lambda_handler", "PATH": "/usr/bin:/bin"},
    )

    # THEN it imported neither the local Firehose runtime nor pyarrow, which only the runtime needs
    imported = {line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines() if "|" in line}
    assert "json" in imported
    assert not {name for name in imported if name.startswith(("firehose", "pyarrow"))}
