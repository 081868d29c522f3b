"""PHI never leaves the transform through its output channels: at DEBUG log level, with powertools' own
debug output and event logging requested, nothing printed or logged holds a patient phone number or any
part of a CTR payload, whatever the records' outcomes (and when the batch itself fails).

The Lambda runs in a subprocess so that everything it writes to stdout and stderr is captured at the file
descriptor level, plus every ``logging`` record of any logger with all its attributes (``extra`` too).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support import ctr_factory as ctrs

ROOT = Path(__file__).resolve().parents[3]
PHONES = [f"+1415867{n:04d}" for n in (1203, 4471, 5609, 7732, 9915, 3388, 6024)]
# Payload text that must not leak either (agent, queue, recording path, the raw CTR's keys).
PAYLOAD_MARKERS = [
    "dr.lindqvist",
    "Oncology Callbacks",
    "CallRecordings",
    "TELEPHONE_NUMBER",
    "CustomerEndpoint",
]

_CHILD = textwrap.dedent(
    """
    import json, logging, sys, traceback

    class Everything(logging.Handler):
        def emit(self, record):
            sys.stderr.write("LOGRECORD " + repr(vars(record)) + " " + record.getMessage() + "\\n")

    logging.getLogger().addHandler(Everything())
    logging.getLogger().setLevel(logging.DEBUG)

    import transform.handler as handler

    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).addHandler(Everything())

    from tests.support.ctr_factory import LambdaContext

    for event in json.load(sys.stdin):
        try:
            response = handler.lambda_handler(event, LambdaContext())
            print("ANSWERED", len(response["records"]), flush=True)
        except Exception:
            traceback.print_exc()  # what the Lambda runtime logs when an invocation fails
            print("FAILED", flush=True)
    """
)


def _batch() -> list[ctrs.Payload]:
    billable = [
        ctrs.billable_ctr(phone=PHONES[0], username="dr.lindqvist", queue_name="Oncology Callbacks"),
        ctrs.outbound_ctr(phone=PHONES[1], username="dr.lindqvist"),
        ctrs.transfer_ctr(phone=PHONES[2]),
    ]
    invalid = ctrs.billable_ctr(phone=PHONES[3], username="dr.lindqvist")
    invalid["DisconnectTimestamp"] = f"call {PHONES[3]} back"
    odd = ctrs.billable_ctr(phone=PHONES[4])
    odd["InitiationMethod"] = [PHONES[4]]
    odd["Channel"] = {PHONES[4]: "VOICE"}
    truncated = json.dumps(ctrs.billable_ctr(phone=PHONES[5])).encode()[:-40]
    return [
        *billable,
        invalid,
        odd,
        truncated,
        ctrs.voicemail_ctr(phone=PHONES[6]),
        ctrs.abandoned_ctr(phone=PHONES[6]),
        ctrs.chat_ctr(),
        ctrs.monitor_ctr(phone=PHONES[0]),
        ctrs.agent_event(),
    ]


def _run_lambda(
    environment: dict[str, str], events: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "POWERTOOLS_DEBUG": "true",
        "POWERTOOLS_LOGGER_LOG_EVENT": "true",
        "POWERTOOLS_SERVICE_NAME": "ctr-billing-transform-csv",
        "POWERTOOLS_METRICS_NAMESPACE": "CtrBilling",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(events),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _assert_no_phi(output: str, events: list[dict[str, Any]]) -> None:
    for phone in PHONES:
        national = phone[2:]  # without +1: catches any spelling of the number
        assert national not in output, f"phone number {phone[:5]}... leaked"
    for marker in PAYLOAD_MARKERS:
        assert marker not in output, f"CTR payload text {marker!r} leaked"
    for event in events:
        for record in event["records"]:
            data = record["data"]
            for start in range(0, max(len(data) - 32, 1), 32):
                assert data[start : start + 32] not in output, "record data leaked"


@pytest.mark.parametrize(
    "environment",
    [
        {"OUTPUT_FORMAT": "csv", "CSV_COLUMNS": "patient_phone,agent_username,queue_name,duration_seconds"},
        {"OUTPUT_FORMAT": "json"},
    ],
    ids=["csv", "json"],
)
def test_no_phone_number_or_payload_in_anything_printed_at_debug(environment: dict[str, str]) -> None:
    # GIVEN a batch of every outcome carrying patient phone numbers, and a batch too large to answer
    events = [ctrs.firehose_event(_batch())]
    too_large = ctrs.firehose_event([ctrs.billable_ctr(phone=PHONES[0])])
    too_large["records"] += [
        {**ctrs.firehose_record(b"", f"big{i}", i), "data": "QUJD" * 400_000 + PHONES[1]} for i in range(5)
    ]
    events.append(too_large)
    # WHEN the Lambda handles them at DEBUG log level
    completed = _run_lambda(environment, events)
    # THEN it ran and logged (the capture works) ...
    assert f"ANSWERED {len(events[0]['records'])}" in completed.stdout
    assert "FAILED" in completed.stdout
    output = completed.stdout + completed.stderr
    assert "LOGRECORD" in output and "batch transformed" in output and "ResponseTooLargeError" in output
    assert '"BillableContact"' in output  # the EMF metrics were printed
    # ... and nothing printed or logged holds a phone number or CTR payload
    _assert_no_phi(output, events[:1])
