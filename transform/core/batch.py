"""One Firehose transformation batch: decode, classify, run batch stages, encode, answer every recordId.

Plain dict access rather than powertools' event data classes: the data classes wrap every record and
cost about a third of the per-record budget (see ``bench/bench_transform.py``).
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transform.core.decoding import DecodeError, ValidationError, decode_base64, decode_ctr_fields
from transform.core.rows import CsvEncoder, json_row, partition_keys
from transform.core.rules import (
    BillableContact,
    Classification,
    InvalidContact,
    NotAContactRecord,
    NotBillable,
    Outcome,
    classify,
)
from transform.core.settings import OutputFormat, TransformSettings

# Lambda's synchronous response limit; Firehose retries an invocation whose response is too large.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
# JSON framing (with json.dumps' default separators) of the response, of one response record besides its
# recordId and data (with the longest result and the separator to the next record), and of its
# partition keys (fixed widths: YYYY, MM, DD).
_RESPONSE_FRAME_BYTES = len('{"records": []}')
_RECORD_FRAME_BYTES = len('{"recordId": "", "result": "ProcessingFailed", "data": ""}, ')
_METADATA_BYTES = len(', "metadata": {"partitionKeys": {"year": "YYYY", "month": "MM", "day": "DD"}}')


class ResponseTooLargeError(RuntimeError):
    """The response would exceed 6 MB. Raised (not truncated) so Firehose retries the invocation."""


class RecordDecodeError(ValueError):
    """The record's data is not base64 of a UTF-8 JSON object. The message never holds the data."""


@dataclass(slots=True)
class PendingContact:
    """A billable contact of this batch, before encoding. Batch stages may enrich or drop it."""

    record_id: str
    record: Mapping[str, Any]
    contact: BillableContact
    dropped_as: Outcome | None = None
    # Set with ``dropped_as = DUPLICATE`` when the dropped version changes billing fields (the ledger).
    billing_correction: bool = False


BatchStage = Callable[[Sequence[PendingContact]], None]
# A billable contact and the position of its answer in the response.
_Pending = tuple[int, PendingContact]


@dataclass(frozen=True, slots=True)
class _Malformed:
    """A record whose data is not base64 of a UTF-8 JSON object; ``problem`` says which, never the data."""

    problem: str


# What each classification that no batch stage sees is counted as, in the order they are reported.
_UNBILLED_OUTCOMES: dict[type[Classification | _Malformed], Outcome] = {
    _Malformed: Outcome.MALFORMED,
    InvalidContact: Outcome.INVALID,
    NotBillable: Outcome.NOT_BILLABLE,
    NotAContactRecord: Outcome.NOT_A_CONTACT_RECORD,
}


class ClaimStage:
    """A batch stage that decides which billable rows are emitted (the billing ledger claims contacts).

    It runs last, after every row is encoded and the response is known to fit, and sees only the
    contacts whose rows encoded: a record that fails afterwards must not leave a claim behind, or its
    later redelivery would be dropped as a duplicate and the contact never billed.
    """

    def __call__(self, contacts: Sequence[PendingContact]) -> None:
        raise NotImplementedError


@dataclass(slots=True)
class BatchResult:
    records: list[dict[str, Any]]
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    not_billable: Counter[str] = field(default_factory=Counter)
    # recordId -> the reason a record failed (a code or a field name, never a value).
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def response(self) -> dict[str, Any]:
        return {"records": self.records}


def decode_record_data(data: object) -> dict[str, Any]:
    """The billing fields (``transform.core.decoding``) of a record's data: base64 of a UTF-8 JSON object."""
    if not isinstance(data, str):
        raise RecordDecodeError("data is not a string")
    try:
        raw = decode_base64(data)
    except ValueError:
        raise RecordDecodeError("data is not base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordDecodeError("data is not UTF-8") from None
    return parse_document(text)


def parse_document(text: str) -> dict[str, Any]:
    """The billing fields of one CTR document: a JSON object (anything else is a ``RecordDecodeError``).

    Strict JSON: ``NaN``/``Infinity`` literals and escaped lone surrogates are refused, numbers must fit
    a double.
    """
    try:
        return decode_ctr_fields(text)
    except ValidationError as error:
        # Without a path, the document itself is not an object; with one, a number is out of range.
        at_root = " - at `$" not in str(error)
        raise RecordDecodeError("data is not a JSON object" if at_root else "data is not JSON") from None
    except (DecodeError, RecursionError):
        raise RecordDecodeError("data is not JSON") from None
    except UnicodeError:  # a str holding lone surrogates
        raise RecordDecodeError("data is not UTF-8") from None


class BatchTransformer:
    """Turns Firehose records into the transformation response under fixed settings."""

    def __init__(self, settings: TransformSettings, stages: Iterable[BatchStage] = ()) -> None:
        self._settings = settings
        stages = tuple(stages)
        self._stages = tuple(stage for stage in stages if not isinstance(stage, ClaimStage))
        self._claims = tuple(stage for stage in stages if isinstance(stage, ClaimStage))
        self._json = settings.output_format is OutputFormat.JSON
        self._csv_line = CsvEncoder(settings.csv_columns, settings.billing_timezone).line

    def transform(self, records: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Classifies every record, runs the batch stages over the billable ones and encodes their rows,
        checks the response's size, then lets the claim stages decide which rows leave."""
        result = BatchResult([])
        pending = self._classify_all(records, result)
        if pending:
            self._run_stages(pending, result)
        # Before any claim: a refused response (Firehose retries it) leaves nothing claimed.
        _check_response_size(result.records)
        emitted = [(position, item) for position, item in pending if item.dropped_as is None]
        self._run_claims(emitted, result)
        billable = sum(1 for _, item in emitted if item.dropped_as is None)
        if billable:
            result.outcomes[Outcome.BILLABLE] += billable
        return result

    def _classify_all(self, records: Sequence[Mapping[str, Any]], result: BatchResult) -> list[_Pending]:
        """Answers every record no stage can change; returns the billable ones, each with the position
        its answer takes once the stages have run."""
        answers = result.records
        pending: list[_Pending] = []
        # Counted by classification type and folded into result.outcomes at the end: an Enum key hashes
        # in Python, a type in C, and this loop runs once per record.
        counts = dict.fromkeys(_UNBILLED_OUTCOMES, 0)
        classify_record = self._classify_record
        for record in records:
            classification = classify_record(record)
            if type(classification) is BillableContact:
                pending.append((len(answers), PendingContact(record["recordId"], record, classification)))
                answers.append(_NOT_YET_ENCODED)  # replaced once the batch stages have run
            else:
                counts[type(classification)] += 1
                answers.append(_unbilled_answer(record, classification, result))
        for kind, count in counts.items():
            if count:
                result.outcomes[_UNBILLED_OUTCOMES[kind]] += count
        return pending

    def _classify_record(self, record: Mapping[str, Any]) -> Classification | _Malformed:
        try:
            return classify(decode_record_data(record.get("data")), self._settings)
        except RecordDecodeError as error:
            return _Malformed(str(error))
        except Exception as error:  # a bug must cost one record, never the batch
            return InvalidContact(f"unexpected {type(error).__name__}")

    def _run_stages(self, pending: Sequence[_Pending], result: BatchResult) -> None:
        """Runs the batch stages over the billable contacts, then answers each: its row, or ``Dropped``."""
        contacts = [item for _, item in pending]
        for stage in self._stages:
            stage(contacts)
        answers, encode, drop = result.records, self._encode, self._drop
        for position, item in pending:
            answers[position] = drop(item, result) if item.dropped_as is not None else encode(item, result)

    def _run_claims(self, emitted: Sequence[_Pending], result: BatchResult) -> None:
        """Lets the claim stages decide which encoded rows leave; a row they drop is answered ``Dropped``."""
        if not (self._claims and emitted):
            return
        claimable = [item for _, item in emitted]
        for stage in self._claims:
            stage(claimable)
        for position, item in emitted:
            if item.dropped_as is not None:
                result.records[position] = self._drop(item, result)

    @staticmethod
    def _drop(item: PendingContact, result: BatchResult) -> dict[str, Any]:
        assert item.dropped_as is not None
        result.outcomes[item.dropped_as] += 1
        if item.billing_correction:
            result.outcomes[Outcome.BILLING_CORRECTION] += 1
        return _dropped(item.record_id)

    def _encode(self, item: PendingContact, result: BatchResult) -> dict[str, Any]:
        """The record's ``Ok`` answer, or ``ProcessingFailed`` (counted) if its row cannot be encoded."""
        try:
            if self._json:
                answer = _ok(item.record_id, json_row(item.contact))
                answer["metadata"] = {"partitionKeys": partition_keys(item.contact)}
            else:
                answer = _ok(item.record_id, self._csv_line(item.contact))
        except UnicodeEncodeError:
            problem = "text is not valid Unicode"
        except Exception as error:  # a bug must cost one record, never the batch
            problem = f"unexpected {type(error).__name__}"
        else:
            return answer
        result.outcomes[Outcome.INVALID] += 1
        result.failures[item.record_id] = problem
        item.dropped_as = Outcome.INVALID  # answered; not emitted, so never claimed
        return _failed(item.record_id, item.record)


_NOT_YET_ENCODED: dict[str, Any] = {}


def _unbilled_answer(
    record: Mapping[str, Any], classification: Classification | _Malformed, result: BatchResult
) -> dict[str, Any]:
    """The answer of a record that is not billable: ``Dropped``, or ``ProcessingFailed`` with its problem."""
    record_id = record["recordId"]
    if isinstance(classification, NotBillable):
        result.not_billable[classification.reason.value] += 1
        return _dropped(record_id)
    if isinstance(classification, NotAContactRecord):
        return _dropped(record_id)
    assert isinstance(classification, _Malformed | InvalidContact)
    result.failures[record_id] = classification.problem
    return _failed(record_id, record)


def _ok(record_id: str, data: bytes) -> dict[str, Any]:
    return {"recordId": record_id, "result": "Ok", "data": base64.b64encode(data).decode("ascii")}


def _dropped(record_id: str) -> dict[str, Any]:
    # Firehose ignores a dropped record's data; an empty payload keeps the response small.
    return {"recordId": record_id, "result": "Dropped", "data": ""}


def _failed(record_id: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record's own data goes back for the error output, but only when it is valid base64: Firehose
    decodes the answer's data, and echoing something else back breaks the contract (DESIGN §4)."""
    data = record.get("data")
    return {"recordId": record_id, "result": "ProcessingFailed", "data": data if _is_base64(data) else ""}


def _is_base64(data: object) -> bool:
    if not isinstance(data, str):
        return False
    try:
        decode_base64(data)
    except ValueError:
        return False
    return True


def response_size(answers: Sequence[Mapping[str, Any]]) -> int:
    """An upper bound of the response's size as the Lambda runtime serialises it (``json.dumps``), for
    recordIds that need no JSON escaping (Firehose's are ASCII letters and digits)."""
    size = _RESPONSE_FRAME_BYTES
    for answer in answers:
        size += len(answer["data"]) + len(answer["recordId"]) + _RECORD_FRAME_BYTES
        if "metadata" in answer:
            size += _METADATA_BYTES
    return size


def _check_response_size(answers: Sequence[Mapping[str, Any]]) -> None:
    size = response_size(answers)
    if size > MAX_RESPONSE_BYTES:
        raise ResponseTooLargeError(
            f"transformed batch of {len(answers)} records would be about {size} bytes, over the 6 MB limit; "
            "lower the Firehose processor's BufferSizeInMBs"
        )
