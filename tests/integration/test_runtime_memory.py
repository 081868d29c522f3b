# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""The runtime's memory does not grow with the backlog: a delivery stream reads at most ``read_limit``
records per shard per poll and handles them before it reads again, whatever the stream holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firehose.local_aws.server import EmbeddedAws
from firehose.runtime.source import CheckpointStore, KinesisSource
from tests.support.pipeline_support import embedded_aws, put_records  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def test_a_poll_reads_at_most_read_limit_records_per_shard_of_a_large_backlog(
    embedded_aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN a one-shard stream holding a backlog of 2,500 records
    kinesis = embedded_aws.client("kinesis")
    kinesis.create_stream(StreamName="backlog", ShardCount=1)
    arn = kinesis.describe_stream(StreamName="backlog")["StreamDescription"]["StreamARN"]
    created = datetime.now(UTC) - timedelta(seconds=5)
    put_records(embedded_aws, "backlog", (f"record-{index}".encode() for index in range(2_500)))
    source = KinesisSource(
        kinesis, arn, created, CheckpointStore(tmp_path / "checkpoint.json"), read_limit=1_000
    )

    # WHEN it is polled until nothing is left
    reads = []
    while batch := source.poll():
        reads.append(len(batch))

    # THEN no poll held more than read_limit records, and every record was read once
    assert reads == [1_000, 1_000, 500]
    assert source.pending == 2_500
