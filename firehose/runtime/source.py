"""The Kinesis source of a delivery stream: per-shard reads with a persisted checkpoint.

A shard without a checkpoint starts at LATEST as of the delivery stream's creation (an
``AT_TIMESTAMP`` iterator at its CreateTimestamp), as Firehose does. The checkpoint of a shard is the
highest sequence number below which every record has been delivered (to its data or error output),
so a restart after a crash re-reads only undelivered records: delivery is at least once.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


@dataclass(frozen=True, slots=True)
class SourceRecord:
    data: bytes
    shard_id: str
    sequence_number: str
    partition_key: str
    arrival_ms: int

    @property
    def position(self) -> tuple[str, int]:
        return self.shard_id, int(self.sequence_number)


class CheckpointStore:
    """``{shard id: sequence number}`` in one JSON file per delivery stream, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.positions: dict[str, str] = {}
        if path.exists():
            self.positions = {str(k): str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}

    def save(self, positions: dict[str, str]) -> None:
        if positions == self.positions:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(positions, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)
        self.positions = dict(positions)


class ShardProgress:
    """Records read from one shard, in order, until delivered; the watermark is the checkpoint."""

    def __init__(self, checkpoint: str | None) -> None:
        self._in_flight: deque[int] = deque()
        self._delivered: set[int] = set()
        self.watermark: int | None = int(checkpoint) if checkpoint is not None else None

    def read(self, sequence_number: int) -> None:
        self._in_flight.append(sequence_number)

    def delivered(self, sequence_number: int) -> None:
        self._delivered.add(sequence_number)
        in_flight, delivered = self._in_flight, self._delivered
        while in_flight and in_flight[0] in delivered:
            delivered.discard(in_flight[0])
            self.watermark = in_flight.popleft()

    @property
    def pending(self) -> int:
        return len(self._in_flight)


class KinesisSource:
    """Reads every shard of one stream for one delivery stream (its own iterators and checkpoint)."""

    def __init__(
        self,
        kinesis: Any,
        stream_arn: str,
        start_at: datetime,
        checkpoints: CheckpointStore,
        read_limit: int = 10_000,
    ) -> None:
        self._kinesis = kinesis
        self._stream_arn = stream_arn
        self._start_at = start_at
        self._checkpoints = checkpoints
        self._limit = read_limit
        self._iterators: dict[str, str | None] = {}
        self.progress: dict[str, ShardProgress] = {}
        self.caught_up = False
        self.read_errors = 0
        self._last_read: dict[str, str] = {}

    def _discover(self) -> None:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamARN": self._stream_arn}
        while True:
            page = self._kinesis.list_shards(**kwargs)
            shards.extend(page["Shards"])
            if not page.get("NextToken"):
                break
            kwargs = {"NextToken": page["NextToken"]}
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators:
                continue
            checkpoint = self._checkpoints.positions.get(shard_id)
            self.progress[shard_id] = ShardProgress(checkpoint)
            if checkpoint is not None:
                response = self._kinesis.get_shard_iterator(
                    StreamARN=self._stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                    StartingSequenceNumber=checkpoint,
                )
            else:
                response = self._kinesis.get_shard_iterator(
                    StreamARN=self._stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="AT_TIMESTAMP",
                    Timestamp=self._start_at,
                )
            self._iterators[shard_id] = response["ShardIterator"]

    def poll(self) -> list[SourceRecord]:
        """One GetRecords per open shard. ``caught_up`` tells whether every shard was at its tip."""
        if not self._iterators:
            self._discover()
        records: list[SourceRecord] = []
        caught_up = True
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            try:
                response = self._kinesis.get_records(
                    StreamARN=self._stream_arn, ShardIterator=iterator, Limit=self._limit
                )
            except (ClientError, BotoCoreError) as error:
                # Throttling or a lost connection: read this shard again on the next poll. An expired
                # iterator is reopened after the last record read, so nothing is skipped or re-read.
                self.read_errors += 1
                caught_up = False
                if (
                    isinstance(error, ClientError)
                    and error.response["Error"]["Code"] == "ExpiredIteratorException"
                ):
                    self._iterators[shard_id] = self._iterator_after(shard_id)
                continue
            self._iterators[shard_id] = response.get("NextShardIterator")
            batch = response["Records"]
            if batch or response.get("MillisBehindLatest", 0) > 0:
                caught_up = False
            progress = self.progress[shard_id]
            if batch:
                self._last_read[shard_id] = batch[-1]["SequenceNumber"]
            for item in batch:
                sequence = item["SequenceNumber"]
                progress.read(int(sequence))
                records.append(
                    SourceRecord(
                        data=item["Data"],
                        shard_id=shard_id,
                        sequence_number=sequence,
                        partition_key=item["PartitionKey"],
                        arrival_ms=int(item["ApproximateArrivalTimestamp"].timestamp() * 1000),
                    )
                )
        self.caught_up = caught_up
        return records

    def _iterator_after(self, shard_id: str) -> str:
        position = self._last_read.get(shard_id) or self._checkpoints.positions.get(shard_id)
        if position is None:
            response = self._kinesis.get_shard_iterator(
                StreamARN=self._stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AT_TIMESTAMP",
                Timestamp=self._start_at,
            )
        else:
            response = self._kinesis.get_shard_iterator(
                StreamARN=self._stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=position,
            )
        return str(response["ShardIterator"])

    def delivered(self, records: Iterable[SourceRecord]) -> None:
        progress = self.progress
        for record in records:
            progress[record.shard_id].delivered(int(record.sequence_number))

    def checkpoint(self) -> None:
        positions = {
            shard_id: str(progress.watermark)
            for shard_id, progress in self.progress.items()
            if progress.watermark is not None
        }
        self._checkpoints.save(positions)

    @property
    def pending(self) -> int:
        return sum(progress.pending for progress in self.progress.values())
