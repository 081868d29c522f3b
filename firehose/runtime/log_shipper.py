"""The Lambdas' logs into the embedded CloudWatch Logs, and their EMF metrics into CloudWatch.

Each local execution environment writes its function's log to a file (``lambda_invoker``); this
follows those files, as Lambda's log agent does, and sends every new line to the function's log group
``/aws/lambda/<function>`` (created if the template did not), in a log stream named as Lambda names
them, ``YYYY/MM/DD/[$LATEST]<32 hex digits>``. A line that is an Embedded Metric Format document
(powertools ``Metrics``: ``{"_aws": {"CloudWatchMetrics": [...]}, ...}``) also becomes
``PutMetricData``, as CloudWatch extracts it from the log, so ``list-metrics`` and
``get-metric-statistics`` answer. Over HTTP with boto3 like everything else; the files stay.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# CloudWatch Logs' limits for one PutLogEvents call (events, and bytes with 26 per event).
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_000_000
MAX_EVENT_BYTES = 256 * 1024 - 26
SHIP_SECONDS = 1.0


class _Endpoint(Protocol):
    def client(self, service: str, *, max_attempts: int = 3) -> Any: ...


@dataclass
class _Followed:
    function: str
    path: Path
    offset: int
    stream: str = ""
    stream_day: str = ""
    partial: bytes = field(default=b"")


def log_stream_name(now: datetime) -> str:
    """A log stream name as Lambda gives one execution environment: ``2026/11/29/[$LATEST]<hex>``."""
    return f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"


def emf_metric_data(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """An EMF document's metrics as ``PutMetricData`` batches, by namespace ([] if it is not EMF)."""
    meta = document.get("_aws")
    if not isinstance(meta, dict):
        return []
    timestamp = meta.get("Timestamp")
    when = datetime.fromtimestamp(timestamp / 1000, UTC) if isinstance(timestamp, int | float) else None
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in meta.get("CloudWatchMetrics") or []:
        namespace = directive.get("Namespace")
        if not namespace:
            continue
        data: list[dict[str, Any]] = []
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [
                {"Name": name, "Value": str(document[name])} for name in dimension_set if name in document
            ]
            for metric in directive.get("Metrics") or []:
                name = metric.get("Name")
                value = document.get(name)
                values = value if isinstance(value, list) else [value]
                for item in values:
                    if not isinstance(item, int | float) or isinstance(item, bool):
                        continue
                    datum: dict[str, Any] = {
                        "MetricName": name,
                        "Value": float(item),
                        "Dimensions": dimensions,
                    }
                    if metric.get("Unit"):
                        datum["Unit"] = metric["Unit"]
                    if when is not None:
                        datum["Timestamp"] = when
                    data.append(datum)
        if data:
            batches.append((namespace, data))
    return batches


class LogShipper:
    """Follows functions' log files from their current end and ships new lines every second."""

    def __init__(self, aws: _Endpoint, every: float = SHIP_SECONDS) -> None:
        self._aws = aws
        self._every = every
        self._followed: dict[str, _Followed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._groups: set[str] = set()
        self._clients: dict[str, Any] = {}
        self.events_shipped = 0
        self.metrics_put = 0
        self.errors = 0

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._aws.client(service)
        return self._clients[service]

    def follow(self, function: str, path: Path) -> None:
        with self._lock:
            if function not in self._followed:
                offset = path.stat().st_size if path.exists() else 0
                self._followed[function] = _Followed(function, path, offset)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lambda-log-shipper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        """Ship what the followed files gained since the last look."""
        with self._lock:
            followed = list(self._followed.values())
            for item in followed:
                try:
                    self._ship(item)
                except Exception:  # CloudWatch is a copy of the files: a failed batch is counted, not fatal
                    self.errors += 1

    def _ship(self, item: _Followed) -> None:
        if not item.path.exists():
            return
        with item.path.open("rb") as file:
            file.seek(item.offset)
            chunk = file.read()
        if not chunk:
            return
        item.offset += len(chunk)
        text = item.partial + chunk
        lines = text.split(b"\n")
        item.partial = lines.pop()  # an unfinished last line waits for its end
        messages = [line.decode("utf-8", "replace") for line in lines if line.strip()]
        if not messages:
            return
        logs = self._client("logs")
        group = f"/aws/lambda/{item.function}"
        if group not in self._groups:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
            self._groups.add(group)
        now = datetime.now(UTC)
        day = f"{now:%Y/%m/%d}"
        if item.stream_day != day:
            item.stream, item.stream_day = log_stream_name(now), day
            logs.create_log_stream(logGroupName=group, logStreamName=item.stream)
        timestamp = int(time.time() * 1000)
        batch: list[dict[str, Any]] = []
        size = 0
        for message in messages:
            message = message.encode()[:MAX_EVENT_BYTES].decode("utf-8", "ignore")
            cost = len(message.encode()) + 26
            if batch and (len(batch) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
                self._put(logs, group, item.stream, batch)
                batch, size = [], 0
            batch.append({"timestamp": timestamp, "message": message})
            size += cost
        self._put(logs, group, item.stream, batch)
        self._put_metrics(messages)

    def _put(self, logs: Any, group: str, stream: str, batch: list[dict[str, Any]]) -> None:
        if batch:
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            self.events_shipped += len(batch)

    def _put_metrics(self, messages: list[str]) -> None:
        cloudwatch = None
        for message in messages:
            if '"_aws"' not in message:
                continue
            try:
                document = json.loads(message)
            except ValueError:
                continue
            if not isinstance(document, dict):
                continue
            for namespace, data in emf_metric_data(document):
                cloudwatch = cloudwatch or self._client("cloudwatch")
                for start in range(0, len(data), 1000):
                    cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])
                    self.metrics_put += len(data[start : start + 1000])
