"""Lambda events as AWS publishes their shapes (sources in README.md beside this file), for tests."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent

FIREHOSE_TRANSFORMATION = "firehose-transformation-kinesis-source.json"
CONNECT_GET_AGENT_BY_EXTENSION = "connect-get-agent-by-extension.json"
CONNECT_GET_EXTENSION_BY_AGENT_ID = "connect-get-agent-extension-by-agent-id.json"
SQS_S3_NOTIFICATIONS = "sqs-s3-notifications.json"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of the event in ``name``: a test may change it freely."""
    return copy.deepcopy(_parsed(name))


@cache
def _parsed(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event
