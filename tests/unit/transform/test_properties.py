"""Property-based: whatever the records hold, the handler never raises, answers every recordId exactly once,
and every Ok CSV line is one CSV row of exactly the configured columns."""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import math
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.support import ctr_factory as ctrs
from transform.core.batch import parse_document
from transform.core.columns import COLUMN_NAMES
from transform.core.rows import CsvEncoder, json_row, partition_keys
from transform.core.rules import BillableContact, classify
from transform.core.settings import TransformSettings

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(
        ["2026-11-02T14:13:58Z", "2026-11-02T14:13:58.5+05:30", "VOICE", "OUTBOUND", "+12025550143"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
TOP_FIELDS = [
    "ContactId",
    "Channel",
    "InitiationMethod",
    "InitiationTimestamp",
    "DisconnectTimestamp",
    "LastUpdateTimestamp",
    "InitialContactId",
    "PreviousContactId",
    "DisconnectReason",
    "Agent",
    "Queue",
    "CustomerEndpoint",
    "Attributes",
]
NESTED_FIELDS = [
    ("Agent", "ConnectedToAgentTimestamp"),
    ("Agent", "CustomerHoldDuration"),
    ("Agent", "NumberOfHolds"),
    ("Agent", "Username"),
    ("Agent", "ARN"),
    ("Queue", "Name"),
    ("CustomerEndpoint", "Address"),
    ("CustomerEndpoint", "Type"),
    ("Attributes", "extensionNumber"),
]


@st.composite
def mutated_ctrs(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic CTR with some billing fields replaced by arbitrary JSON values or text."""
    ctr = draw(st.sampled_from(ctrs.realistic_ctrs(20, seed=3)))
    ctr = json.loads(json.dumps(ctr))
    for field in draw(st.lists(st.sampled_from(TOP_FIELDS), max_size=3)):
        ctr[field] = draw(JSON_VALUES)
    for parent, field in draw(st.lists(st.sampled_from(NESTED_FIELDS), max_size=4)):
        if isinstance(ctr.get(parent), dict):
            ctr[parent][field] = draw(JSON_VALUES | st.text())
    return ctr


RECORD_DATA = st.one_of(
    st.binary(max_size=300).map(lambda raw: base64.b64encode(raw).decode()),
    st.text(max_size=40),
    mutated_ctrs().map(lambda ctr: base64.b64encode(json.dumps(ctr).encode()).decode()),
    mutated_ctrs().map(lambda ctr: base64.b64encode(json.dumps(ctr, ensure_ascii=False).encode()).decode()),
)
BATCHES = st.lists(RECORD_DATA, max_size=25)


def _load_handler(environment: dict[str, str]) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CtrBillingTest")
        spec = importlib.util.find_spec("transform.handler")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(
    scope="module",
    params=[
        {"OUTPUT_FORMAT": "csv"},
        {"OUTPUT_FORMAT": "csv", "CSV_COLUMNS": ",".join(COLUMN_NAMES), "BILLING_TIMEZONE": "Asia/Kolkata"},
        {"OUTPUT_FORMAT": "csv", "CSV_COLUMNS": "agent_username"},
        {"OUTPUT_FORMAT": "json"},
    ],
    ids=["csv-default", "csv-all-columns", "csv-one-column", "json"],
)
def handler(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    yield from _load_handler(request.param)


def _invoke(handler: ModuleType, data: list[str]) -> tuple[list[str], dict[str, Any]]:
    event = ctrs.firehose_event([])
    record_ids = [
        f"49590338271490256608559692538361571095921575989136588898{i:04d}" for i in range(len(data))
    ]
    event["records"] = [
        {**ctrs.firehose_record(b"", record_id, i), "data": value}
        for i, (record_id, value) in enumerate(zip(record_ids, data, strict=True))
    ]
    return record_ids, handler.lambda_handler(event, ctrs.LambdaContext())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=BATCHES)
def test_never_raises_and_answers_each_record_once(handler: ModuleType, data: list[str]) -> None:
    # GIVEN any batch of any record data  WHEN the handler runs  THEN it returns (never raises) ...
    record_ids, response = _invoke(handler, data)
    # ... one answer per recordId, in order, each with a Firehose result
    assert [answer["recordId"] for answer in response["records"]] == record_ids
    assert {answer["result"] for answer in response["records"]} <= {"Ok", "Dropped", "ProcessingFailed"}
    settings_in_force = handler.SETTINGS
    for answer in response["records"]:
        if answer["result"] != "Ok":
            continue
        payload = base64.b64decode(answer["data"]).decode("utf-8")
        assert payload.endswith("\n")
        if settings_in_force.output_format.value == "csv":
            # ... and every Ok CSV line is exactly one row of exactly the configured columns
            rows = list(csv.reader(io.StringIO(payload, newline="")))
            assert len(rows) == 1
            assert len(rows[0]) == len(settings_in_force.csv_columns)
        else:
            row = json.loads(payload)
            assert tuple(row) == COLUMN_NAMES
            keys = answer["metadata"]["partitionKeys"]
            assert [len(keys["year"]), len(keys["month"]), len(keys["day"])] == [4, 2, 2]


_ALL_COLUMNS = TransformSettings.from_environ({"CSV_COLUMNS": ",".join(COLUMN_NAMES)})
_ENCODER = CsvEncoder(COLUMN_NAMES, None)


def _outcome(ctr: dict[str, Any]) -> Any:
    classification = classify(ctr, _ALL_COLUMNS)
    if isinstance(classification, BillableContact):
        return _ENCODER.line(classification), json_row(classification), partition_keys(classification)
    return classification


@settings(max_examples=200, deadline=None)
@given(ctr=mutated_ctrs())
def test_decoding_only_the_billing_fields_bills_like_the_whole_document(ctr: dict[str, Any]) -> None:
    # GIVEN any CTR-like JSON document (finite numbers: the strict decoder refuses NaN and Infinity)
    text = json.dumps(ctr)
    assume(not _has_non_finite_number(ctr))
    # WHEN classified and encoded from msgspec's billing fields and from json.loads of everything
    # THEN the outcome and every byte of the rows are the same
    assert _outcome(parse_document(text)) == _outcome(json.loads(text))


def _has_non_finite_number(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite_number(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite_number(item) for item in value)
    return False
