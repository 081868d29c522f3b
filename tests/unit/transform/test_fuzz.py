"""Fuzzing the transform handler in every mode with hostile input (``tests/support/fuzz_inputs.py``).

Properties, whatever the input: the handler never raises; it answers every recordId exactly once, in
order, with a valid result; every ``Ok`` CSV line is one RFC 4180 record of exactly the configured
number of columns; every ``Ok`` JSON row parses and holds every registry column plus partition keys.
"""

from __future__ import annotations

import csv
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzz_inputs import MODES, check_response, firehose_batches, mode
from transform import handler

# Huge strings pass through as given; a cell may exceed the csv module's default 128 KiB field limit.
csv.field_size_limit(sys.maxsize)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class FakeContext:
    function_name = "TransformCsvFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:TransformCsvFunction"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


@FUZZ
@given(mode_index=st.sampled_from(range(len(MODES))), batch=firehose_batches())
def test_hostile_batches_never_break_the_transform(mode_index: int, batch: list[dict[str, Any]]) -> None:
    # GIVEN a transform mode and a batch of hostile records
    settings_, transformer = mode(mode_index)
    # WHEN it is transformed THEN nothing raises and every answer is well-formed
    check_response(settings_, batch, transformer.transform(batch).response)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode_index=st.sampled_from(range(len(MODES))), batch=firehose_batches())
def test_hostile_batches_through_the_lambda_handler(
    mode_index: int, batch: list[dict[str, Any]], monkeypatch_module: pytest.MonkeyPatch
) -> None:
    # GIVEN the deployed entry point (Logger and Metrics included) in one of the modes
    settings_, transformer = mode(mode_index)
    monkeypatch_module.setattr(handler, "TRANSFORMER", transformer)
    # WHEN Firehose invokes it with hostile records THEN it answers, never raising
    check_response(settings_, batch, handler.lambda_handler({"records": batch}, FakeContext()))


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch
