"""The Kinesis source of a delivery stream: per-shard reads with a persisted checkpoint.

A shard without a checkpoint starts at LATEST as of the delivery stream's creation (an
``AT_TIMESTAMP`` iterator at its CreateTimestamp), as Firehose does. The checkpoint of a shard is the
highest sequence number below which every record has been delivered (to its data or error output),
so a restart after a crash re-reads only undelivered records: delivery is at least once.

Resharding: shards are listed again when one closes and every ``discover_seconds``. A child shard is
read once its parents have been read to their end, as Firehose does, from the same ``AT_TIMESTAMP``,
which for a child created after the delivery stream is its first record (TRIM_HORIZON), and for one
created before it is still LATEST as of the delivery stream's creation.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import ShardTypeDef


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
        kinesis: KinesisClient,
        stream_arn: str,
        start_at: datetime,
        checkpoints: CheckpointStore,
        read_limit: int = 10_000,
        discover_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kinesis = kinesis
        self._stream_arn = stream_arn
        self._start_at = start_at
        self._checkpoints = checkpoints
        self._limit = read_limit
        self._discover_seconds = discover_seconds
        self._clock = clock
        self._iterators: dict[str, str] = {}  # shards being read
        self._finished: set[str] = set()  # closed shards read to their end
        self._discover_now = True
        self._next_discovery = 0.0
        self.progress: dict[str, ShardProgress] = {}
        self.caught_up = False
        self.read_errors = 0
        self._last_read: dict[str, str] = {}

    def request_discovery(self) -> None:
        """List the stream's shards again before the next read (a drain must not miss a new shard)."""
        self._discover_now = True

    def _list_shards(self) -> list[ShardTypeDef]:
        page = self._kinesis.list_shards(StreamARN=self._stream_arn)
        shards = list(page["Shards"])
        while page.get("NextToken"):
            # A page after the first is named by its token alone (ListShards refuses the stream with it).
            page = self._kinesis.list_shards(NextToken=page["NextToken"])
            shards.extend(page["Shards"])
        return shards

    def _discover(self) -> None:
        shards = self._list_shards()
        listed = {shard["ShardId"] for shard in shards}
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id in self._iterators or shard_id in self._finished:
                continue
            parents = {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")} & listed
            if not parents <= self._finished:
                continue  # a child waits until its parents are read to their end
            self._open(shard_id)
        self._discover_now = False
        self._next_discovery = self._clock() + self._discover_seconds

    def _open(self, shard_id: str) -> None:
        checkpoint = self._checkpoints.positions.get(shard_id)
        self.progress.setdefault(shard_id, ShardProgress(checkpoint))
        self._iterators[shard_id] = self._iterator_from(shard_id, checkpoint)

    def _iterator_from(self, shard_id: str, position: str | None) -> str:
        """An iterator after ``position``, or at the delivery stream's creation if there is none yet."""
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

    def poll(self) -> list[SourceRecord]:
        """One GetRecords per open shard. ``caught_up`` tells whether every shard was at its tip."""
        if self._discover_now or self._clock() >= self._next_discovery:
            self._discover()
        records: list[SourceRecord] = []
        caught_up = True
        for shard_id, iterator in list(self._iterators.items()):
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
            batch = response["Records"]
            next_iterator = response.get("NextShardIterator")
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
            if next_iterator is None:
                # A closed shard read to its end: its children can be read now, so list the shards
                # again before the next read. (moto never ends a closed shard and keeps routing puts
                # to it, so there the parent is read on and its children stay empty: nothing is lost.)
                del self._iterators[shard_id]
                self._finished.add(shard_id)
                self._discover_now = True
                caught_up = False
            else:
                self._iterators[shard_id] = next_iterator
        self.caught_up = caught_up
        return records

    def _iterator_after(self, shard_id: str) -> str:
        position = self._last_read.get(shard_id) or self._checkpoints.positions.get(shard_id)
        return self._iterator_from(shard_id, position)

    def delivered(self, records: Iterable[SourceRecord]) -> None:
        progress = self.progress
        for record in records:
            progress[record.shard_id].delivered(int(record.sequence_number))

    def checkpoint(self) -> None:
        positions = {
            shard_id: str(progress.watermark)
            for shard_id, progress in list(self.progress.items())
            if progress.watermark is not None
        }
        self._checkpoints.save(positions)

    @property
    def pending(self) -> int:
        return sum(progress.pending for progress in list(self.progress.values()))
