"""Hypothesis strategies of hostile Firehose input, shared by the fuzz tests and ``bench/bench_fuzz.py``.

Mutated CTRs (type changes, missing and null fields, huge strings, deep nesting, NaN/Infinity, control
characters, unicode including lone surrogates, boundary timestamps) and arbitrary bytes, wrapped as
Firehose records; and the transform modes they go through.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from functools import cache
from typing import Any

from hypothesis import strategies as st

from tests.support.ctr_factory import billable_ctr, firehose_record
from tests.support.fake_dynamodb import KeyLimitedDynamoDB
from transform import handler
from transform.core.batch import BatchTransformer
from transform.core.columns import COLUMN_NAMES
from transform.core.settings import OutputFormat, TransformSettings

# Every transform mode: output format, billing timezone, custom columns, other rule settings.
MODES: tuple[dict[str, str], ...] = (
    {"OUTPUT_FORMAT": "csv"},
    {"OUTPUT_FORMAT": "csv", "BILLING_TIMEZONE": "America/New_York"},
    {"OUTPUT_FORMAT": "csv", "BILLING_TIMEZONE": "Asia/Kolkata", "CSV_COLUMNS": ",".join(COLUMN_NAMES[::-1])},
    {
        "OUTPUT_FORMAT": "csv",
        "CSV_COLUMNS": "contact_id,patient_phone,queue_name,agent_username",
        "MIN_BILLABLE_SECONDS": "60",
        "BILLABLE_CHANNELS": "VOICE,CHAT",
    },
    {"OUTPUT_FORMAT": "json"},
    {"OUTPUT_FORMAT": "json", "BILLING_TIMEZONE": "Pacific/Chatham", "BILLABLE_CHANNELS": "VOICE,CHAT,TASK"},
    # As deployed: the vendor transform with enrichment and the ledger, the lake's with enrichment
    # (DynamoDB behind ``tests/support/fake_dynamodb.py``, which refuses keys as the service does).
    {"OUTPUT_FORMAT": "csv", "DIRECTORY_TABLE": "directory", "LEDGER_TABLE": "ledger"},
    {"OUTPUT_FORMAT": "json", "DIRECTORY_TABLE": "directory"},
)

lone_surrogates = st.integers(0xD800, 0xDFFF).map(chr)
control_characters = st.sampled_from(["\x00", "\r", "\n", "\t", "\x1b", "\x7f", "\u2028", "\ufeff", '"', ","])
hostile_text = st.lists(
    st.one_of(st.characters(), lone_surrogates, control_characters, st.sampled_from(["=", "+", "-", "@"])),
    max_size=24,
).map("".join)

BOUNDARY_TIMESTAMPS = (
    "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59.999999+00:00",
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00Z",
    "2026-11-02T14:14:20.123456789Z",
    "2026-11-02T14:14:20,5Z",
    "2026-11-02T14:14:20+14:00",
    "2026-11-02T14:14:20",
    "2026-11-02",
    "2026-W45-1T10:00:00Z",
    "20261102T141420Z",
    "",
    "NaN",
)
timestamps = st.one_of(
    st.sampled_from(BOUNDARY_TIMESTAMPS),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    timestamps,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=8,
)


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


MUTATIONS = ("delete", "null", "replace", "huge", "deep", "timestamp", "number")


def _slots(document: Any, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) of a JSON document, down to a few levels."""
    if depth > 4:
        return
    if isinstance(document, dict):
        for key, value in document.items():
            yield document, key
            yield from _slots(value, depth + 1)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield document, index
            yield from _slots(value, depth + 1)


@st.composite
def mutated_ctrs(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic billable CTR with a few hostile mutations anywhere in it."""
    ctr = billable_ctr(
        # The last one is over DynamoDB's 2,048-byte key limit (the ledger's key).
        contact_id=draw(
            st.sampled_from(["c-1", "c-2", "3b9f1c2e-5d4a-4e6b-9c8d-1f2e3a4b5c6d", "\u00e9" * 1100])
        ),
        talk_seconds=draw(st.integers(0, 5000)),
        hold_seconds=draw(st.sampled_from([None, 0, 60])),
    )
    for _ in range(draw(st.integers(0, 5))):
        container, key = draw(st.sampled_from(list(_slots(ctr))))
        mutation = draw(st.sampled_from(MUTATIONS))
        if mutation == "delete":
            del container[key]
        elif mutation == "null":
            container[key] = None
        elif mutation == "replace":
            container[key] = draw(json_values)
        elif mutation == "huge":
            container[key] = draw(st.sampled_from(["=", "+", "9", "\u00e9", "\ud800", '"'])) * draw(
                st.integers(10_000, 200_000)
            )
        elif mutation == "deep":
            container[key] = _deep(draw(st.integers(10, 900)))
        elif mutation == "timestamp":
            container[key] = draw(timestamps)
        else:
            container[key] = draw(
                st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, 2**64, 1e308, -0.0, 1.5])
            )
    return ctr


@st.composite
def encoded_ctrs(draw: st.DrawFn) -> bytes:
    """A mutated CTR as bytes: escaped JSON, raw UTF-8 (lone surrogates make it invalid), or bit-flipped."""
    ctr = draw(mutated_ctrs())
    style = draw(st.sampled_from(["ascii", "ascii", "ascii", "utf8", "utf8", "flipped", "truncated"]))
    if style == "ascii":
        return json.dumps(ctr).encode()  # NaN/Infinity as JSON's non-standard literals, \uXXXX escapes
    raw = json.dumps(ctr, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if style == "flipped" and raw:
        position = draw(st.integers(0, len(raw) - 1))
        return raw[:position] + bytes([raw[position] ^ draw(st.integers(1, 255))]) + raw[position + 1 :]
    if style == "truncated":
        return raw[: draw(st.integers(0, len(raw)))]
    return raw


_b64 = base64.b64encode
# Mostly mutated CTRs (the interesting paths), sometimes arbitrary bytes, junk strings or non-strings.
record_data = st.integers(0, 9).flatmap(
    lambda pick: (
        encoded_ctrs().map(lambda raw: _b64(raw).decode("ascii"))
        if pick < 7
        else st.binary(max_size=512).map(lambda raw: _b64(raw).decode("ascii"))
        if pick == 7
        else st.sampled_from(["", "not base64!", "====", "e30", "bnVsbA==", "W10=", "ImEi"])  # {} null [] "a"
        if pick == 8
        else st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2))
    )
)


@st.composite
def firehose_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One to eight Firehose records with unique recordIds and hostile data."""
    batch = []
    for index in range(draw(st.integers(1, 8))):
        record = firehose_record({}, f"rec-{index}", index)
        record["data"] = draw(record_data)
        batch.append(record)
    return batch


# Huge strings pass through as given; a cell may exceed the csv module's default 128 KiB field limit.
csv.field_size_limit(sys.maxsize)


@cache
def mode(index: int) -> tuple[TransformSettings, BatchTransformer]:
    settings_ = TransformSettings.from_environ(MODES[index])
    return settings_, BatchTransformer(settings_, handler._stages(settings_, KeyLimitedDynamoDB()))


def check_response(
    settings_: TransformSettings, batch: list[dict[str, Any]], response: dict[str, Any]
) -> None:
    answers = response["records"]
    assert [answer["recordId"] for answer in answers] == [record["recordId"] for record in batch]
    for answer in answers:
        assert answer["result"] in ("Ok", "Dropped", "ProcessingFailed")
        assert isinstance(answer["data"], str)
        if answer["result"] != "Ok":
            continue
        payload = base64.b64decode(answer["data"], validate=True).decode("utf-8")
        assert payload.endswith("\n")
        if settings_.output_format is OutputFormat.CSV:
            rows = list(csv.reader(io.StringIO(payload, newline=""), strict=True))
            assert len(rows) == 1
            assert len(rows[0]) == len(settings_.csv_columns)
        else:
            assert payload.count("\n") == 1
            row = json.loads(payload)
            assert set(row) == set(COLUMN_NAMES)
            keys = answer["metadata"]["partitionKeys"]
            assert re.fullmatch(r"[0-9]{4}", keys["year"])
            assert re.fullmatch(r"[0-9]{2}", keys["month"])
            assert re.fullmatch(r"[0-9]{2}", keys["day"])
