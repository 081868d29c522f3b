"""One Firehose transformation batch: every outcome of the DESIGN §3 table, every recordId answered once,
batch stages, and the 6 MB response limit."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest

from tests.support import ctr_factory as ctrs
from transform.core import batch
from transform.core.batch import (
    MAX_RESPONSE_BYTES,
    BatchTransformer,
    ClaimStage,
    PendingContact,
    ResponseTooLargeError,
    response_size,
)
from transform.core.rules import BillableContact, Outcome, classify
from transform.core.settings import TransformSettings

CSV = TransformSettings.from_environ({})
JSON = TransformSettings.from_environ({"OUTPUT_FORMAT": "json"})


def _run(payloads: Sequence[ctrs.Payload], settings: TransformSettings = CSV, stages: Any = ()) -> Any:
    event = ctrs.firehose_event(payloads)
    return event, BatchTransformer(settings, stages).transform(event["records"])


def test_an_empty_batch_answers_no_records() -> None:
    _, result = _run([])
    assert result.response == {"records": []}
    assert not result.outcomes


def _raw_record(data: object) -> dict[str, Any]:
    record = ctrs.firehose_record(b"", "r0")
    record["data"] = data
    return record


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("not base64!", "data is not base64"),
        ("QUJD=", "data is not base64"),
        ("\\u0051UJD", "data is not base64"),
        (None, "data is not a string"),
        (base64.b64encode(b'{"ContactId": "\xff"}').decode(), "data is not UTF-8"),
        (base64.b64encode(b'{"Other": "\xc3\x28"}').decode(), "data is not UTF-8"),
        (ctrs.encode(b'{"ContactId": '), "data is not JSON"),
        (ctrs.encode(b'{"ContactId": "x", "Agent": NaN}'), "data is not JSON"),
        (ctrs.encode(b'{"ContactId": "\\ud800"}'), "data is not JSON"),
        (ctrs.encode(b'{"ContactId": "x"}\n{"ContactId": "y"}'), "data is not JSON"),
        (ctrs.encode(b'["ContactId"]'), "data is not a JSON object"),
        (ctrs.encode(b'"a CTR"'), "data is not a JSON object"),
        (ctrs.encode(b"null"), "data is not a JSON object"),
        (ctrs.encode(b"[" * 100_000 + b"]" * 100_000), "data is not a JSON object"),
        (ctrs.encode(b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "data is not JSON"),
    ],
)
def test_undecodable_records_fail_as_malformed_keeping_their_data(data: object, problem: str) -> None:
    # GIVEN a record whose data is not base64 of a UTF-8 JSON object
    record = _raw_record(data)
    # WHEN transformed
    result = BatchTransformer(CSV).transform([record])
    # THEN ProcessingFailed with the original data (for the error output) when it is base64 Firehose can
    # decode, else empty; counted as malformed
    echoed = data if isinstance(data, str) and problem != "data is not base64" else ""
    assert result.records == [{"recordId": "r0", "result": "ProcessingFailed", "data": echoed}]
    assert result.outcomes == {Outcome.MALFORMED: 1}
    assert result.failures == {"r0": problem}


def test_each_outcome_of_the_design_table() -> None:
    # GIVEN one record of each case, in one batch
    invalid = ctrs.billable_ctr()
    invalid["DisconnectTimestamp"] = "not a time"
    payloads: list[ctrs.Payload] = [
        b"\xffnot json",
        ctrs.agent_event(),
        invalid,
        ctrs.voicemail_ctr(),
        ctrs.abandoned_ctr(),
        ctrs.chat_ctr(),
        ctrs.monitor_ctr(),
        ctrs.billable_ctr(),
    ]
    event, result = _run(payloads)
    # WHEN transformed  THEN each gets its Firehose result, in order, and its count
    assert [r["result"] for r in result.records] == [
        "ProcessingFailed",
        "Dropped",
        "ProcessingFailed",
        "Dropped",
        "Dropped",
        "Dropped",
        "Dropped",
        "Ok",
    ]
    assert result.outcomes == {
        Outcome.MALFORMED: 1,
        Outcome.NOT_A_CONTACT_RECORD: 1,
        Outcome.INVALID: 1,
        Outcome.NOT_BILLABLE: 4,
        Outcome.BILLABLE: 1,
    }
    assert result.not_billable == {"NotConnectedToAgent": 2, "ChannelNotBillable": 1, "SupervisorMonitor": 1}
    assert result.failures == {
        "r0": "data is not UTF-8",
        "r2": "DisconnectTimestamp not an ISO 8601 timestamp",
    }
    # failed records keep their data; dropped ones carry none
    assert result.records[2]["data"] == event["records"][2]["data"]
    assert result.records[1]["data"] == ""


def test_every_record_id_is_answered_once_in_order() -> None:
    payloads = [*ctrs.realistic_ctrs(50), b"junk", ctrs.agent_event()]
    event, result = _run(payloads)
    assert [r["recordId"] for r in result.records] == [r["recordId"] for r in event["records"]]


def test_ok_records_are_the_csv_line_base64() -> None:
    _, result = _run([ctrs.sample_ctr()])
    [answer] = result.records
    assert answer["result"] == "Ok"
    assert base64.b64decode(answer["data"]) == b"INBOUND,2026-11-02T14:13:58Z,1011,+12025550143,4417,60\n"
    assert "metadata" not in answer


def test_json_mode_answers_json_rows_with_partition_keys() -> None:
    # GIVEN OUTPUT_FORMAT=json and a call initiated late on New Year's Eve in New York
    ctr = ctrs.billable_ctr()
    ctr["InitiationTimestamp"] = "2026-12-31T23:30:00-05:00"
    ctr["Agent"]["ConnectedToAgentTimestamp"] = "2027-01-01T04:30:10Z"
    ctr["DisconnectTimestamp"] = "2027-01-01T04:40:10Z"
    ctr["Agent"]["AfterContactWorkStartTimestamp"] = "2027-01-01T04:40:10Z"
    _, result = _run([ctr], JSON)
    # WHEN transformed  THEN a JSON row and the UTC day as partition keys
    [answer] = result.records
    row = json.loads(base64.b64decode(answer["data"]))
    assert row["duration_seconds"] == 600
    assert row["initiation_timestamp"] == "2027-01-01T04:30:00Z"
    assert answer["metadata"] == {"partitionKeys": {"year": "2027", "month": "01", "day": "01"}}


def test_a_record_the_encoder_cannot_write_costs_that_record_only() -> None:
    # GIVEN a billable contact whose text cannot be written as UTF-8 (a lone surrogate, which decoding
    # refuses, so it is put in by a stage here), next to a good one
    settings = TransformSettings.from_environ({"CSV_COLUMNS": "agent_username"})
    broken = ctrs.billable_ctr()
    broken["Agent"]["Username"] = "dr.\udcff"
    broken_contact = classify(broken, settings)
    assert isinstance(broken_contact, BillableContact)

    def swap_in_broken_contact(pending: Sequence[PendingContact]) -> None:
        pending[0].contact = broken_contact

    records = ctrs.firehose_event([ctrs.billable_ctr(), ctrs.billable_ctr()])["records"]
    # WHEN transformed
    result = BatchTransformer(settings, [swap_in_broken_contact]).transform(records)
    # THEN that record fails as invalid, the other is written
    assert [r["result"] for r in result.records] == ["ProcessingFailed", "Ok"]
    assert result.outcomes == {Outcome.INVALID: 1, Outcome.BILLABLE: 1}
    assert result.failures == {"r0": "text is not valid Unicode"}


def test_a_bug_in_the_rules_costs_that_record_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN rules that fail with an unexpected error on one contact of three
    doomed = ctrs.billable_ctr()
    real_classify = batch.classify

    def failing_classify(ctr: dict[str, Any], settings: TransformSettings) -> Any:
        if ctr.get("ContactId") == doomed["ContactId"]:
            raise KeyError("a bug")
        return real_classify(ctr, settings)

    monkeypatch.setattr(batch, "classify", failing_classify)
    # WHEN a batch with it is transformed
    _, result = _run([ctrs.billable_ctr(), doomed, ctrs.billable_ctr()])
    # THEN that record fails as invalid, naming the error's type only; the others are written
    assert [r["result"] for r in result.records] == ["Ok", "ProcessingFailed", "Ok"]
    assert result.outcomes == {Outcome.INVALID: 1, Outcome.BILLABLE: 2}
    assert result.failures == {"r1": "unexpected KeyError"}


def test_outcomes_are_reported_in_a_fixed_order() -> None:
    # GIVEN a batch with every outcome, listed in an order unlike the report's, and a stage that drops one
    def drop_first(pending: Sequence[PendingContact]) -> None:
        pending[0].dropped_as = Outcome.DUPLICATE

    invalid = ctrs.billable_ctr()
    invalid["DisconnectTimestamp"] = "not a time"
    payloads = [
        ctrs.billable_ctr(),
        ctrs.billable_ctr(),
        ctrs.agent_event(),
        ctrs.voicemail_ctr(),
        invalid,
        b"\xffnot json",
    ]
    # WHEN transformed
    _, result = _run(payloads, CSV, [drop_first])
    # THEN the counts come in the same order whatever the records' order (the handler logs and publishes
    # them in this order)
    assert list(result.outcomes) == [
        Outcome.MALFORMED,
        Outcome.INVALID,
        Outcome.NOT_BILLABLE,
        Outcome.NOT_A_CONTACT_RECORD,
        Outcome.DUPLICATE,
        Outcome.BILLABLE,
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(InitiationMethod=["OUTBOUND"]),
        lambda c: c.update(Channel={"VOICE": 1}),
        lambda c: c.update(LastUpdateTimestamp="9999-12-31T23:59:59-01:00"),
        lambda c: c.update(Attributes=["extensionNumber"]),
        lambda c: c.update(Queue="Telehealth General"),
        lambda c: c.update(CustomerEndpoint=["+12025550143"]),
        lambda c: c["Agent"].update(NumberOfHolds=1e300, Username={"name": "x"}),
    ],
)
@pytest.mark.parametrize("settings", [CSV, JSON], ids=["csv", "json"])
def test_odd_field_types_never_fail_the_batch(mutate: Any, settings: TransformSettings) -> None:
    # GIVEN a batch with a CTR whose fields have odd JSON types, between two good ones
    odd = ctrs.billable_ctr()
    mutate(odd)
    _, result = _run([ctrs.billable_ctr(), odd, ctrs.billable_ctr()], settings)
    # WHEN transformed  THEN every record is answered, the good ones Ok
    assert [r["result"] for r in result.records][::2] == ["Ok", "Ok"]
    assert len(result.records) == 3


# --- batch stages ---------------------------------------------------------------------------------


def test_stages_see_only_billable_contacts_and_can_enrich_and_drop() -> None:
    # GIVEN an enrichment stage and a ledger-like stage
    seen: list[str] = []

    def enrich(pending: Sequence[PendingContact]) -> None:
        for item in pending:
            seen.append(item.record_id)
            item.contact.provider_extension = "7001"

    def drop_second(pending: Sequence[PendingContact]) -> None:
        pending[1].dropped_as = Outcome.DUPLICATE

    payloads = [ctrs.billable_ctr(extension=None), ctrs.voicemail_ctr(), ctrs.billable_ctr(extension=None)]
    _, result = _run(payloads, CSV, [enrich, drop_second])
    # WHEN transformed  THEN stages saw the billable ones, in order; the enrichment is in the row
    assert seen == ["r0", "r2"]
    assert [r["result"] for r in result.records] == ["Ok", "Dropped", "Dropped"]
    assert base64.b64decode(result.records[0]["data"]).split(b",")[4] == b"7001"
    assert result.outcomes == {Outcome.BILLABLE: 1, Outcome.NOT_BILLABLE: 1, Outcome.DUPLICATE: 1}


def test_a_failing_stage_fails_the_batch_so_firehose_retries_it() -> None:
    # GIVEN a stage whose AWS call fails  WHEN transformed  THEN the error propagates (never a skipped row)
    def unavailable(pending: Sequence[PendingContact]) -> None:
        raise ConnectionError("DynamoDB unreachable")

    with pytest.raises(ConnectionError):
        _run([ctrs.billable_ctr()], CSV, [unavailable])


class RecordingClaims(ClaimStage):
    """A ledger-like claim stage that records what it was asked to claim and drops ``drop`` of them."""

    def __init__(self, drop: Sequence[str] = ()) -> None:
        self.claimed: list[str] = []
        self._drop = set(drop)

    def __call__(self, contacts: Sequence[PendingContact]) -> None:
        for item in contacts:
            self.claimed.append(item.record_id)
            if item.record_id in self._drop:
                item.dropped_as = Outcome.DUPLICATE


def test_claims_run_last_and_only_for_rows_that_encoded() -> None:
    # GIVEN a claim stage listed FIRST, an enrichment after it, and a contact whose row cannot be
    # encoded (a lone surrogate put in by the enrichment)
    settings = TransformSettings.from_environ({"CSV_COLUMNS": "agent_username,provider_extension"})
    broken = ctrs.billable_ctr()
    broken["Agent"]["Username"] = "dr.\udcff"
    broken_contact = classify(broken, settings)
    assert isinstance(broken_contact, BillableContact)
    extensions_when_claimed: list[str] = []

    class Claims(RecordingClaims):
        def __call__(self, contacts: Sequence[PendingContact]) -> None:
            extensions_when_claimed.extend(item.contact.provider_extension for item in contacts)
            super().__call__(contacts)

    def enrich(pending: Sequence[PendingContact]) -> None:
        pending[0].contact = broken_contact
        for item in pending:
            item.contact.provider_extension = "7001"

    claims = Claims(drop=["r2"])
    payloads = [ctrs.billable_ctr(extension=None) for _ in range(3)]
    # WHEN transformed
    _, result = _run(payloads, settings, [claims, enrich])
    # THEN the claim saw the enriched rows, but not the one that failed to encode
    assert claims.claimed == ["r1", "r2"]
    assert extensions_when_claimed == ["7001", "7001"]
    assert [r["result"] for r in result.records] == ["ProcessingFailed", "Ok", "Dropped"]
    assert result.outcomes == {Outcome.INVALID: 1, Outcome.BILLABLE: 1, Outcome.DUPLICATE: 1}


def test_a_response_refused_for_its_size_claims_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a claim stage and a response over the size limit (lowered here)
    monkeypatch.setattr(batch, "MAX_RESPONSE_BYTES", 100)
    claims = RecordingClaims()
    # WHEN transformed  THEN it is refused (Firehose retries) before anything was claimed
    with pytest.raises(ResponseTooLargeError):
        _run([ctrs.billable_ctr(), ctrs.billable_ctr()], CSV, [claims])
    assert claims.claimed == []


def test_stages_do_not_run_without_billable_contacts() -> None:
    calls: list[int] = []
    _run([ctrs.voicemail_ctr()], CSV, [lambda pending: calls.append(len(pending))])
    assert calls == []


# --- the 6 MB response limit ----------------------------------------------------------------------


def _big_failures(count: int, size: int) -> list[dict[str, Any]]:
    return [
        _raw_record(base64.b64encode(b"\x01" * size).decode()) | {"recordId": f"r{i}"} for i in range(count)
    ]


def test_a_response_over_6_mb_is_refused_not_truncated() -> None:
    # GIVEN failed records whose echoed data adds up to just over 6 MB
    records = _big_failures(7, 700_000)  # 7 x 933,336 base64 characters
    # WHEN transformed  THEN an error Firehose retries, with no record data in its message
    with pytest.raises(ResponseTooLargeError) as raised:
        BatchTransformer(CSV).transform(records)
    assert "6 MB" in str(raised.value)
    assert "AQEB" not in str(raised.value)


def test_a_response_just_under_6_mb_is_answered() -> None:
    records = _big_failures(6, 700_000)
    result = BatchTransformer(CSV).transform(records)
    assert len(json.dumps(result.response)) < MAX_RESPONSE_BYTES


@pytest.mark.parametrize("settings", [CSV, JSON], ids=["csv", "json"])
def test_the_size_check_bounds_the_serialised_response(settings: TransformSettings) -> None:
    # GIVEN a batch with every kind of answer (JSON mode adds partition keys)
    payloads = [*ctrs.realistic_ctrs(40), b"junk", ctrs.agent_event()]
    _, result = _run(payloads, settings)
    # WHEN sized  THEN never less than what the Lambda runtime will send
    assert response_size(result.records) >= len(json.dumps(result.response))
    assert response_size(result.records) < len(json.dumps(result.response)) * 1.2
