"""Real, public Amazon Connect CTRs (``tests/fixtures/ctrs/``, sources in its README) through the transform.

Every expected value below was worked out by hand from DESIGN §3 (revised rules), never copied from the
program's output; the arithmetic is in the comments. Provider time ends at ``provider_left_timestamp``:
the earlier of ``Agent.AfterContactWorkStartTimestamp`` and ``DisconnectTimestamp`` when the former is set,
else the earlier of ``TransferCompletedTimestamp`` and ``DisconnectTimestamp`` when that is set, else
``DisconnectTimestamp``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.ctr_factory import firehose_event
from transform.core.batch import BatchResult, BatchTransformer
from transform.core.rules import BillableContact, NotBillable, NotBillableReason, Outcome, classify
from transform.core.settings import TransformSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ctrs"
README = FIXTURES / "README.md"

CSV_COLUMNS = (
    "contact_id,call_type,initiation_timestamp,duration_seconds,provider_left_timestamp,"
    "contact_duration_seconds,next_contact_id,patient_phone,provider_extension,hold_seconds"
)

EXTERNAL_TRANSFER = "external-transfer-republished.json"
DUPLICATE_DELIVERIES = "external-transfer-duplicate-deliveries.json"
MANY_ATTRIBUTES = "production-many-attributes-acw-after-disconnect.json"
INBOUND_2019 = "inbound-voice-2019.json"
IVR_SURVEY = "ivr-survey-no-agent.json"

TRANSFER_CONTACT_ID = "6fe40d2a-1a89-4d73-bfcf-5d9c33894f47"

# The external transfer (every version): InitiationTimestamp 17:12:59, Agent.ConnectedToAgentTimestamp
# 17:20:32, TransferCompletedTimestamp 17:28:12, Agent.AfterContactWorkStartTimestamp 17:28:12,
# DisconnectTimestamp 17:47:28 (all 2022-01-05, UTC).
#   provider left  = min(ACW start 17:28:12, disconnect 17:47:28) = 17:28:12
#                    (the transfer rule gives the same: min(17:28:12, 17:47:28) = 17:28:12)
#   duration       = 17:28:12 - 17:20:32 = 7 min 40 s = 460 s
#                    NOT 17:47:28 - 17:20:32 = 26 min 56 s = 1,616 s: the caller stayed on the outside
#                    number another 17:47:28 - 17:28:12 = 19 min 16 s = 1,156 s after the provider left
#   contact        = 17:47:28 - 17:12:59 = 34 min 29 s = 2,069 s
#   hold           = Agent.CustomerHoldDuration = 221; NextContactId null -> empty
#   call_type      = INBOUND (InitiationMethod INBOUND); patient_phone = CustomerEndpoint.Address (fictional)
#   provider_extension: no extensionNumber attribute and no directory -> empty
TRANSFER_CSV_LINE = (
    b"6fe40d2a-1a89-4d73-bfcf-5d9c33894f47,INBOUND,2022-01-05T17:12:59Z,460,2022-01-05T17:28:12Z,2069,,"
    b"+12025550101,,221\n"
)
TRANSFER_LAST_UPDATES = ("2022-01-05T17:48:35Z", "2022-01-11T03:41:32Z", "2022-01-11T04:09:47Z")

# The Intuit production record: InitiationTimestamp 18:01:18, connected 18:15:23, DisconnectTimestamp
# 19:09:37, Agent.AfterContactWorkStartTimestamp 19:10:01 (24 s AFTER the disconnect), 2019-08-13 UTC.
#   provider left  = min(ACW start 19:10:01, disconnect 19:09:37) = 19:09:37
#   duration       = 19:09:37 - 18:15:23 = 54 min 14 s = 3,254 s (not 19:10:01 - 18:15:23 = 3,278 s)
#   contact        = 19:09:37 - 18:01:18 = 1 h 8 min 19 s = 4,099 s
#   hold 1021; NextContactId 11460ea0-...; no extensionNumber among its 138 attributes -> empty
MANY_ATTRIBUTES_CSV_LINE = (
    b"a373989e-2c38-4c25-984a-36ab10538449,INBOUND,2019-08-13T18:01:18Z,3254,2019-08-13T19:09:37Z,4099,"
    b"11460ea0-b994-49a1-bfe4-f2e34bf2f237,+14165550101,,1021\n"
)

# The VoiceBase quick start record: InitiationTimestamp 00:07:11, connected 00:07:42, ACW start and
# DisconnectTimestamp both 00:57:33, 2019-01-02 UTC.
#   provider left  = min(00:57:33, 00:57:33) = 00:57:33
#   duration       = 00:57:33 - 00:07:42 = 49 min 51 s = 2,991 s
#   contact        = 00:57:33 - 00:07:11 = 50 min 22 s = 3,022 s; hold 0; no NextContactId
INBOUND_2019_CSV_LINE = (
    b"3aec0dc9-2817-4b95-8b72-492c8f972493,INBOUND,2019-01-02T00:07:11Z,2991,2019-01-02T00:57:33Z,3022,,"
    b"+13125550103,,0\n"
)

# Billable fixtures and their provider seconds (above), for the MIN_BILLABLE_SECONDS boundary.
PROVIDER_SECONDS = {EXTERNAL_TRANSFER: 460, MANY_ATTRIBUTES: 3254, INBOUND_2019: 2991}


def _load(name: str) -> list[dict[str, Any]]:
    """The deliveries a fixture holds: one object, or an array of versions in arrival order."""
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document if isinstance(document, list) else [document]


def _settings(**environ: str) -> TransformSettings:
    return TransformSettings.from_environ(
        {"CSV_COLUMNS": CSV_COLUMNS, "BILLABLE_CHANNELS": "VOICE", **environ}
    )


def _transform(records: Sequence[Mapping[str, Any]], settings: TransformSettings) -> BatchResult:
    return BatchTransformer(settings).transform(firehose_event(records)["records"])


def _data(answer: Mapping[str, Any]) -> bytes:
    return base64.b64decode(answer["data"])


def _json_row(answer: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(_data(answer))
    return row


# --- the external transfer -------------------------------------------------------------------------


def test_external_transfer_bills_the_provider_until_the_transfer_not_until_the_disconnect() -> None:
    # GIVEN the first published version of a real call the provider transferred to an outside number
    # after 7 min 40 s, which then stayed open 19 min 16 s more (arithmetic at TRANSFER_CSV_LINE)
    (first, _, _) = _load(EXTERNAL_TRANSFER)
    assert first["TransferredToEndpoint"]["Type"] == "TELEPHONE_NUMBER"
    # WHEN transformed to the vendor CSV
    result = _transform([first], _settings())
    # THEN it is billed for 460 s (not 1,616 s), ending at the transfer, with the contact's 2,069 s beside
    (answer,) = result.records
    assert answer["result"] == "Ok"
    assert _data(answer) == TRANSFER_CSV_LINE
    assert result.outcomes == {Outcome.BILLABLE: 1}
    assert not result.not_billable


def test_external_transfer_json_row_has_every_column_and_partitions_by_initiation_day() -> None:
    # GIVEN the first version of the external transfer
    (first, _, _) = _load(EXTERNAL_TRANSFER)
    # WHEN transformed for the data lake
    result = _transform([first], _settings(OUTPUT_FORMAT="json"))
    # THEN the row holds every registry column, the three new ones included (values from the CTR and the
    # arithmetic at TRANSFER_CSV_LINE), and partitions by InitiationTimestamp's UTC day 2022-01-05
    (answer,) = result.records
    assert answer["result"] == "Ok"
    assert _json_row(answer) == {
        "call_type": "INBOUND",
        "initiation_timestamp": "2022-01-05T17:12:59Z",
        "duration_seconds": 460,
        "patient_phone": "+12025550101",
        "provider_extension": "",
        "hold_seconds": 221,
        "contact_id": TRANSFER_CONTACT_ID,
        "initial_contact_id": "",
        "previous_contact_id": "",
        "channel": "VOICE",
        "initiation_method": "INBOUND",
        "connected_to_agent_timestamp": "2022-01-05T17:20:32Z",
        "disconnect_timestamp": "2022-01-05T17:47:28Z",
        "last_update_timestamp": "2022-01-05T17:48:35Z",
        "agent_id": "e7c9afb6-b1e1-4afa-b5b5-d1c9bc752b69",
        "agent_username": "Steve.Lusk",
        "queue_name": "TCC Refrig AC LLA",
        "number_of_holds": 2,
        "disconnect_reason": "CUSTOMER_DISCONNECT",
        "provider_left_timestamp": "2022-01-05T17:28:12Z",
        "contact_duration_seconds": 2069,
        "next_contact_id": "",
    }
    assert answer["metadata"] == {"partitionKeys": {"year": "2022", "month": "01", "day": "05"}}


def test_every_republished_version_is_billed_on_its_own() -> None:
    # GIVEN the three versions Connect published of the external transfer, in arrival order: same
    # ContactId and billing fields, later LastUpdateTimestamp, changed Attributes
    versions = _load(EXTERNAL_TRANSFER)
    assert {version["ContactId"] for version in versions} == {TRANSFER_CONTACT_ID}
    assert tuple(version["LastUpdateTimestamp"] for version in versions) == TRANSFER_LAST_UPDATES
    # WHEN transformed in one batch, to CSV and to JSON rows
    csv = _transform(versions, _settings())
    lake = _transform(versions, _settings(OUTPUT_FORMAT="json"))
    # THEN the Lambda emits every version (latest-per-ContactId happens later), each billed the same 460 s
    assert [answer["result"] for answer in csv.records] == ["Ok", "Ok", "Ok"]
    assert [_data(answer) for answer in csv.records] == [TRANSFER_CSV_LINE] * 3
    assert csv.outcomes == {Outcome.BILLABLE: 3}
    # AND the rows differ exactly where the records' billing columns differ: last_update_timestamp
    rows = [_json_row(answer) for answer in lake.records]
    assert tuple(row["last_update_timestamp"] for row in rows) == TRANSFER_LAST_UPDATES
    for row in rows[1:]:
        assert {name for name in row if row[name] != rows[0][name]} == {"last_update_timestamp"}
    # AND every version lands in the partition of the initiation day, whatever its arrival
    assert {json.dumps(answer["metadata"], sort_keys=True) for answer in lake.records} == {
        json.dumps({"partitionKeys": {"day": "05", "month": "01", "year": "2022"}}, sort_keys=True)
    }


def test_duplicate_deliveries_each_answer_the_same_row() -> None:
    # GIVEN the same three versions each delivered twice (at-least-once delivery), as published
    deliveries = _load(DUPLICATE_DELIVERIES)
    assert deliveries[0::2] == _load(EXTERNAL_TRANSFER)
    assert deliveries[1::2] == _load(EXTERNAL_TRANSFER)
    # WHEN transformed in one batch for the data lake
    result = _transform(deliveries, _settings(OUTPUT_FORMAT="json"))
    # THEN every delivery is answered Ok (no ledger configured), and each copy's row is byte-identical to
    # its twin's
    assert [answer["result"] for answer in result.records] == ["Ok"] * 6
    assert result.outcomes == {Outcome.BILLABLE: 6}
    data = [answer["data"] for answer in result.records]
    assert data[0] == data[1]
    assert data[2] == data[3]
    assert data[4] == data[5]
    assert len({data[0], data[2], data[4]}) == 3
    assert [_json_row(answer)["duration_seconds"] for answer in result.records] == [460] * 6


# --- the other real records ------------------------------------------------------------------------


def test_after_contact_work_starting_after_the_disconnect_ends_provider_time_at_the_disconnect() -> None:
    # GIVEN a production CTR with 138 attributes whose after-contact work starts 24 s after the disconnect,
    # and whose caller went on to another leg (NextContactId)
    (record,) = _load(MANY_ATTRIBUTES)
    assert len(record["Attributes"]) == 138
    # WHEN transformed to the vendor CSV
    result = _transform([record], _settings())
    # THEN provider time ends at the disconnect (the earlier of the two): 3,254 s, and the next leg is named
    (answer,) = result.records
    assert answer["result"] == "Ok"
    assert _data(answer) == MANY_ATTRIBUTES_CSV_LINE
    assert result.outcomes == {Outcome.BILLABLE: 1}


def test_a_plain_2019_inbound_call_is_billed_to_its_disconnect() -> None:
    # GIVEN a real inbound voice call whose after-contact work starts at the disconnect second
    (record,) = _load(INBOUND_2019)
    # WHEN transformed to the vendor CSV
    result = _transform([record], _settings())
    # THEN billed 2,991 s from the connect to the disconnect (arithmetic at INBOUND_2019_CSV_LINE)
    (answer,) = result.records
    assert answer["result"] == "Ok"
    assert _data(answer) == INBOUND_2019_CSV_LINE
    assert result.outcomes == {Outcome.BILLABLE: 1}


def test_a_real_call_without_a_channel_key_is_not_billable() -> None:
    # No published CTR without ``Channel`` could be found (the key predates the public samples; see the
    # README). GIVEN the real 2019 call with the key removed, as a record from before the key existed
    (record,) = _load(INBOUND_2019)
    del record["Channel"]
    # WHEN transformed  THEN dropped: a channel that is not known to be billable is never billed
    result = _transform([record], _settings())
    assert [answer["result"] for answer in result.records] == ["Dropped"]
    assert result.not_billable == {NotBillableReason.CHANNEL.value: 1}


def test_an_ivr_only_contact_that_never_reached_a_provider_is_dropped() -> None:
    # GIVEN a real voice contact that only went through an IVR survey: Agent null, no queue
    (record,) = _load(IVR_SURVEY)
    assert record["Agent"] is None
    # WHEN transformed
    result = _transform([record], _settings())
    # THEN dropped as not billable, reason NotConnectedToAgent (VOICE is billable, so the channel passes)
    assert result.records == [{"recordId": "r0", "result": "Dropped", "data": ""}]
    assert result.outcomes == {Outcome.NOT_BILLABLE: 1}
    assert result.not_billable == {"NotConnectedToAgent": 1}


@pytest.mark.parametrize(
    ("name", "billable"),
    [
        (EXTERNAL_TRANSFER, True),
        (DUPLICATE_DELIVERIES, True),
        (MANY_ATTRIBUTES, True),
        (INBOUND_2019, True),
        (IVR_SURVEY, False),
    ],
)
def test_classify_each_real_record(name: str, billable: bool) -> None:
    # GIVEN every delivery of a fixture, as the whole published document
    records = _load(name)
    # WHEN classified under the default settings (VOICE billable, no minimum)
    classifications = [classify(record, TransformSettings()) for record in records]
    # THEN the billable ones are BillableContact; the IVR-only one is NotBillable(NotConnectedToAgent)
    for classification in classifications:
        if billable:
            assert isinstance(classification, BillableContact)
        else:
            assert classification == NotBillable(NotBillableReason.NOT_CONNECTED_TO_AGENT)


@pytest.mark.parametrize(("name", "seconds"), sorted(PROVIDER_SECONDS.items()))
def test_the_minimum_duration_applies_to_provider_time(name: str, seconds: int) -> None:
    # GIVEN a billable real record and its hand-computed provider seconds (460 for the external transfer,
    # whose disconnect is 1,616 s after the connect; 3,254 for the record whose ACW starts after the
    # disconnect, 3,278 s to the ACW start)
    record = _load(name)[0]
    # WHEN MIN_BILLABLE_SECONDS is exactly that, and one second more (default CSV columns)
    at_minimum = _transform([record], TransformSettings.from_environ({"MIN_BILLABLE_SECONDS": str(seconds)}))
    above = _transform([record], TransformSettings.from_environ({"MIN_BILLABLE_SECONDS": str(seconds + 1)}))
    # THEN billed at the minimum, dropped as BelowMinimumDuration one second above it
    assert [answer["result"] for answer in at_minimum.records] == ["Ok"]
    assert [answer["result"] for answer in above.records] == ["Dropped"]
    assert above.not_billable == {"BelowMinimumDuration": 1}


def test_no_real_voice_record_is_billed_when_only_chat_is_billable() -> None:
    # GIVEN every delivery of every fixture (all Channel VOICE): 3 + 6 + 1 + 1 + 1 = 12 records
    records = [record for name in _fixture_names() for record in _load(name)]
    assert len(records) == 12
    # WHEN BILLABLE_CHANNELS is CHAT
    result = _transform(records, TransformSettings.from_environ({"BILLABLE_CHANNELS": "CHAT"}))
    # THEN all are dropped for their channel, checked before the agent connection
    assert {answer["result"] for answer in result.records} == {"Dropped"}
    assert result.not_billable == {"ChannelNotBillable": 12}


# --- the fixtures themselves -----------------------------------------------------------------------


def _fixture_names() -> list[str]:
    return sorted(path.name for path in FIXTURES.glob("*.json"))


def test_every_fixture_file_is_described_in_the_readme() -> None:
    # GIVEN the fixture files and the README's per-file sections
    names = _fixture_names()
    sections = re.findall(r"^## `([^`]+\.json)`", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    # THEN each file has a section (source, what it shows, what was changed) and each section a file
    assert names
    assert sorted(sections) == names
    # AND the tests above name exactly those files
    assert (
        sorted({EXTERNAL_TRANSFER, DUPLICATE_DELIVERIES, MANY_ATTRIBUTES, INBOUND_2019, IVR_SURVEY}) == names
    )


# A telephone endpoint must be a fictional E.164 NANP number: +1, an area code, then 555-0100..555-0199.
FICTIONAL_E164 = re.compile(r"\+1[0-9]{3}55501[0-9]{2}")
# Any other string that reads as a NANP phone number (10 digits, optionally +1 / 1 first) must be fictional.
NANP_LIKE = re.compile(r"\+?1?[2-9][0-9]{2}[2-9][0-9]{6}")
FICTIONAL_NANP = re.compile(r"\+?1?[0-9]{3}55501[0-9]{2}")


def _walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _real_looking_phones(document: Any) -> tuple[list[str], int]:
    """Paths of phone numbers outside the fictional block, and how many telephone endpoints were seen."""
    offending: list[str] = []
    endpoint_addresses: set[str] = set()  # checked strictly with their endpoint, not again as a string
    for path, value in _walk(document):
        if isinstance(value, dict) and value.get("Type") == "TELEPHONE_NUMBER":
            endpoint_addresses.add(f"{path}.Address")
            if not (isinstance(value.get("Address"), str) and FICTIONAL_E164.fullmatch(value["Address"])):
                offending.append(f"{path}.Address")
        elif (
            isinstance(value, str)
            and path not in endpoint_addresses
            and NANP_LIKE.fullmatch(value)
            and not FICTIONAL_NANP.fullmatch(value)
        ):
            offending.append(path)
    return offending, len(endpoint_addresses)


def test_the_phone_check_catches_a_number_outside_the_fictional_block() -> None:
    # GIVEN endpoints and an attribute with numbers outside 555-0100..555-0199 (555-1234 is not in it)
    document = {
        "CustomerEndpoint": {"Address": "+12025551234", "Type": "TELEPHONE_NUMBER"},
        "SystemEndpoint": {"Address": "+12025550100", "Type": "TELEPHONE_NUMBER"},
        "Attributes": {"callback": "2025551234", "count": "22", "companyId": "193514500293409"},
    }
    # WHEN checked / THEN exactly the two non-fictional numbers are reported
    assert _real_looking_phones(document) == (["$.CustomerEndpoint.Address", "$.Attributes.callback"], 2)


@pytest.mark.parametrize("name", _fixture_names())
def test_fixture_phone_numbers_are_all_fictional(name: str) -> None:
    # GIVEN a fixture as stored
    document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    # WHEN every telephone endpoint (customer, system, transfer target) and every phone-like string is read
    offending, endpoints = _real_looking_phones(document)
    # THEN all are in the fictional 555-01xx block, and the check did see the record's endpoints
    assert offending == []
    assert endpoints >= 2 * len(_load(name))
