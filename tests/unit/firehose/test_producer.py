"""The one Kinesis producer: PutRecords' batch limits, refused records put again after a backoff pause,
and the records a demo or a chaos run puts."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from firehose.pipeline.producer import (
    MAX_BATCH_BYTES,
    ProducerError,
    ctr_records,
    input_records,
    put_records,
)
from transform.core.backoff import Backoff


class FakeKinesis:
    """PutRecords that refuses the entries whose data is in ``refuse`` for their first ``times`` calls."""

    def __init__(self, refuse: set[bytes] | None = None, times: int = 1) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._refuse = refuse or set()
        self._times = times

    def put_records(self, *, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(list(Records))
        results: list[dict[str, Any]] = []
        for entry in Records:
            refused = entry["Data"] in self._refuse and self._attempts(entry["Data"]) <= self._times
            results.append(
                {"ErrorCode": "ProvisionedThroughputExceededException"}
                if refused
                else {"SequenceNumber": "1"}
            )
        return {"FailedRecordCount": sum("ErrorCode" in r for r in results), "Records": results}

    def _attempts(self, data: bytes) -> int:
        return sum(entry["Data"] == data for call in self.calls for entry in call)


def test_records_go_in_batches_of_500_and_the_total_is_reported_after_each() -> None:
    # GIVEN 1,201 small records
    kinesis = FakeKinesis()
    totals: list[int] = []
    records = [(f"r{n}".encode(), f"k{n}") for n in range(1201)]
    # WHEN put
    put = put_records(kinesis, "stream", records, totals.append)  # type: ignore[arg-type]
    # THEN in three calls of at most 500, in order, each followed by the running total
    assert put == 1201
    assert [len(call) for call in kinesis.calls] == [500, 500, 201]
    assert [entry["Data"] for call in kinesis.calls for entry in call] == [data for data, _ in records]
    assert totals == [500, 1000, 1201]


def test_a_batch_stays_under_five_mb() -> None:
    # GIVEN records of 900 KB (under Kinesis's 1 MB record limit)
    kinesis = FakeKinesis()
    records = [(bytes([65 + n]) * 900_000, f"k{n}") for n in range(12)]
    # WHEN put  THEN no call carries more than 5 MB
    assert put_records(kinesis, "stream", records) == 12  # type: ignore[arg-type]
    assert all(sum(len(entry["Data"]) for entry in call) <= MAX_BATCH_BYTES for call in kinesis.calls)
    assert [len(call) for call in kinesis.calls] == [5, 5, 2]


def test_only_refused_records_are_put_again_after_a_backoff_pause() -> None:
    # GIVEN a stream that refuses two of three records twice (a partly failed PutRecords)
    kinesis = FakeKinesis(refuse={b"b", b"c"}, times=2)
    pauses: list[float] = []
    backoff = Backoff(random=random.Random(3))
    # WHEN put
    put = put_records(
        kinesis,  # type: ignore[arg-type]
        "stream",
        [(b"a", "1"), (b"b", "2"), (b"c", "3")],
        backoff=backoff,
        sleep=pauses.append,
    )
    # THEN the refused ones, and only those, went again, after pauses within the backoff's ceilings
    assert put == 3
    assert [[entry["Data"] for entry in call] for call in kinesis.calls] == [
        [b"a", b"b", b"c"],
        [b"b", b"c"],
        [b"b", b"c"],
    ]
    assert len(pauses) == 2
    assert all(0 <= pause <= backoff.ceiling(attempt) for attempt, pause in enumerate(pauses, start=1))


def test_a_stream_that_keeps_refusing_fails_the_put_without_naming_the_data() -> None:
    # GIVEN a stream that refuses a record every time
    kinesis = FakeKinesis(refuse={b"+12025550143"}, times=100)
    # WHEN put with 4 attempts  THEN it gives up, saying so, with no record content in the message
    with pytest.raises(ProducerError, match="after 4 attempts") as raised:
        put_records(kinesis, "stream", [(b"+12025550143", "p")], sleep=lambda _: None, max_attempts=4)  # type: ignore[arg-type]
    assert len(kinesis.calls) == 4
    assert "1202555" not in str(raised.value)


def test_a_record_over_one_mb_is_refused_before_anything_is_put() -> None:
    kinesis = FakeKinesis()
    with pytest.raises(ProducerError, match="record 2 is over"):
        put_records(kinesis, "stream", [(b"a", "1"), (b"x" * (1024 * 1024), "2")])  # type: ignore[arg-type]
    assert kinesis.calls == []


def test_ctrs_are_put_as_compact_json_partitioned_by_contact() -> None:
    ctrs = [{"ContactId": "c-1", "Channel": "VOICE"}, {"Other": 1}]
    assert list(ctr_records(ctrs)) == [
        (json.dumps(ctrs[0], separators=(",", ":")).encode(), "c-1"),
        (b'{"Other":1}', "None"),
    ]


def test_input_lines_are_records_unchanged_without_their_line_endings(tmp_path: Path) -> None:
    source = tmp_path / "records"
    source.write_bytes(b'{"a":1}\r\nnot json\n  spaced  \nlast')
    assert list(input_records(source)) == [
        (b'{"a":1}', "line-1"),
        (b"not json", "line-2"),
        (b"  spaced  ", "line-3"),
        (b"last", "line-4"),
    ]
