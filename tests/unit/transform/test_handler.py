"""The Lambda entry point: settings at cold start, the Firehose response, EMF metrics per outcome.

The handler reads its settings when its module is imported (the cold start). Each test here loads a fresh
copy of ``transform.handler`` under its own environment (``load_handler``) without touching the module
other tests import, and a subprocess checks what the import pulls in.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cfn_tools import load_yaml

from tests.events import FIREHOSE_TRANSFORMATION, load_event
from tests.support import ctr_factory as ctrs
from transform.core.settings import SettingsError

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE: dict[str, Any] = load_yaml((ROOT / "cloudformation" / "template.yaml").read_text(encoding="utf-8"))
TRANSFORM_FUNCTIONS = ("TransformCsvFunction", "TransformJsonFunction")
_LOADS = itertools.count()


def _template_variables(function: str) -> dict[str, Any]:
    variables: dict[str, Any] = TEMPLATE["Resources"][function]["Properties"]["Environment"]["Variables"]
    return variables


# Every variable the template gives a transform function (the handler must not read others).
SETTING_VARIABLES = sorted(
    {name for function in TRANSFORM_FUNCTIONS for name in _template_variables(function)}
    | {"DIRECTORY_CACHE_SECONDS", "LEDGER_RETENTION_DAYS"}
)


@pytest.fixture
def load_handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import a fresh ``transform.handler`` (a cold start) under the given environment."""

    def load(**environment: str) -> ModuleType:
        for name in SETTING_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        # A service name of its own: powertools binds a logger's output stream when first created.
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"transform-under-test-{next(_LOADS)}")
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CtrBillingTest")
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.find_spec("transform.handler")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _emf_documents(output: str) -> list[dict[str, Any]]:
    return [document for line in output.splitlines() if "_aws" in (document := _json_or_empty(line))]


def _json_or_empty(line: str) -> dict[str, Any]:
    try:
        document = json.loads(line)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def test_the_template_points_both_functions_at_this_handler() -> None:
    for function in TRANSFORM_FUNCTIONS:
        module_name, _, attribute = TEMPLATE["Resources"][function]["Properties"]["Handler"].rpartition(".")
        assert (module_name, attribute) == ("transform.handler", "lambda_handler")


@pytest.mark.parametrize(
    "variable",
    sorted(
        {
            name
            for function in TRANSFORM_FUNCTIONS
            for name in _template_variables(function)
            if not name.startswith("POWERTOOLS_")
        }
    ),
)
def test_every_template_variable_fails_the_cold_start_when_bad(load_handler: Any, variable: str) -> None:
    # GIVEN a variable the template sets, with a bad value  WHEN the Lambda cold-starts
    with pytest.raises(SettingsError) as raised:
        load_handler(**{variable: "?? not valid ??"})
    # THEN it fails, naming the variable
    assert str(raised.value).startswith(variable)


def test_a_batch_gets_its_response_and_one_metric_per_outcome(
    load_handler: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the deployed CSV handler and a batch with billable, not-billable and malformed records
    handler = load_handler(OUTPUT_FORMAT="csv")
    event = ctrs.firehose_event(
        [ctrs.sample_ctr(), ctrs.voicemail_ctr(), ctrs.abandoned_ctr(), ctrs.chat_ctr(), b"{oops"]
    )
    # WHEN invoked
    response = handler.lambda_handler(event, ctrs.LambdaContext())
    # THEN the Firehose response answers every record
    assert [r["result"] for r in response["records"]] == [
        "Ok",
        "Dropped",
        "Dropped",
        "Dropped",
        "ProcessingFailed",
    ]
    assert base64.b64decode(response["records"][0]["data"]) == (
        b"INBOUND,2026-11-02T14:13:58Z,1011,+12025550143,4417,60\n"
    )
    # AND EMF has one count per outcome, and the not-billable reasons as a dimension
    documents = _emf_documents(capsys.readouterr().out)
    counts = {
        metric["Name"]: document[metric["Name"]]
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
        if "Reason" not in document
    }
    assert counts == {"BillableContact": [1.0], "NotBillable": [3.0], "MalformedRecord": [1.0]}
    by_reason = {
        document["Reason"]: document["NotBillableByReason"] for document in documents if "Reason" in document
    }
    assert by_reason == {"NotConnectedToAgent": [2.0], "ChannelNotBillable": [1.0]}
    assert all(
        ["service", "Reason"] in directive["Dimensions"]
        for document in documents
        if "Reason" in document
        for directive in document["_aws"]["CloudWatchMetrics"]
    )


def test_the_event_firehose_publishes_is_answered_record_by_record(load_handler: Any) -> None:
    # GIVEN the deployed CSV handler and a transformation event as AWS documents it (Kinesis source,
    # string sequence numbers, an empty subsequenceNumber): a CTR, an agent event, and "Hello World"
    handler = load_handler(OUTPUT_FORMAT="csv")
    event = load_event(FIREHOSE_TRANSFORMATION)
    # WHEN invoked
    response = handler.lambda_handler(event, ctrs.LambdaContext())
    # THEN every recordId is answered once, in order: the CTR billed, the agent event dropped, and the
    # text that is no JSON failed with its own data for the error output
    assert [(r["recordId"], r["result"]) for r in response["records"]] == [
        (record["recordId"], result)
        for record, result in zip(event["records"], ("Ok", "Dropped", "ProcessingFailed"), strict=True)
    ]
    assert base64.b64decode(response["records"][0]["data"]) == (
        b"INBOUND,2026-11-02T14:13:58Z,1011,+12025550143,4417,60\n"
    )
    assert response["records"][2]["data"] == "SGVsbG8gV29ybGQ="


def test_an_empty_batch_answers_no_records(load_handler: Any) -> None:
    handler = load_handler()
    with pytest.warns(UserWarning, match="No application metrics"):
        assert handler.lambda_handler(ctrs.firehose_event([]), ctrs.LambdaContext()) == {"records": []}


def test_json_handler_answers_rows_with_partition_keys(load_handler: Any) -> None:
    handler = load_handler(OUTPUT_FORMAT="json")
    response = handler.lambda_handler(ctrs.firehose_event([ctrs.sample_ctr()]), ctrs.LambdaContext())
    [record] = response["records"]
    assert json.loads(base64.b64decode(record["data"]))["contact_id"] == ctrs.sample_ctr()["ContactId"]
    assert record["metadata"] == {"partitionKeys": {"year": "2026", "month": "11", "day": "02"}}


def test_settings_from_the_environment_shape_the_rows(load_handler: Any) -> None:
    # GIVEN the vendor's own columns, a time zone and a minimum duration
    handler = load_handler(
        CSV_COLUMNS="contact_id,initiation_timestamp,duration_seconds",
        BILLING_TIMEZONE="America/New_York",
        MIN_BILLABLE_SECONDS="60",
    )
    long_call = ctrs.billable_ctr(contact_id="c-long", talk_seconds=61, queue_seconds=0)
    short_call = ctrs.billable_ctr(contact_id="c-short", talk_seconds=59)
    # WHEN invoked
    response = handler.lambda_handler(ctrs.firehose_event([long_call, short_call]), ctrs.LambdaContext())
    # THEN the configured columns in local time, and the short call dropped
    assert base64.b64decode(response["records"][0]["data"]) == b"c-long,2026-11-02T09:13:58-05:00,61\n"
    assert response["records"][1]["result"] == "Dropped"


def test_importing_the_handler_imports_neither_boto3_nor_pyarrow() -> None:
    # GIVEN a fresh interpreter with the deployed variables (no directory, no ledger)
    code = (
        "import sys, transform.handler\n"
        "print(','.join(m for m in ('boto3', 'pyarrow', 'duckdb', 'moto') if m in sys.modules))\n"
    )
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OUTPUT_FORMAT": "csv"}
    # WHEN it imports the handler  THEN no heavy SDK came along
    completed = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == ""
