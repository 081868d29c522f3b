"""Fast, strict decoding of a Firehose record's data with msgspec: base64, then the CTR's billing fields.

Decoding is most of a record's cost, so both steps use msgspec's C decoders (``bench/bench_transform.py``):

* base64: msgspec decodes a JSON string into ``bytes`` as base64, about 2.5x faster than ``binascii``,
  and as strict (alphabet and padding checked); the data is quoted as a JSON string for it, so a
  backslash, which would be read as a JSON escape, is refused first.
* the CTR: a CTR is 2-3 KB of JSON of which the billing reads a few hundred bytes. Decoding into the
  structs below skips every other field without building Python objects for it, about five times
  faster than ``json.loads`` of the whole document. ``decode_ctr_fields`` returns the plain dict the
  billing rules read, holding only these fields; an absent field and a ``null`` one are both left out,
  so ``dict.get`` sees ``None`` for either, as it would on the full document. ``ContactId`` alone keeps
  its ``null``: the rules tell a missing key (another kind of event) from a null one (a damaged CTR).

Every CTR field accepts any JSON value (a nested object is typed only so that its unread fields are
skipped too), so a field of an unexpected type reaches the rules as it is, exactly as from
``json.loads``. Stages that need another CTR field must add it here.
"""

from __future__ import annotations

from typing import Any

import msgspec

# Any JSON value other than an object; each field's type adds the object it may be.
_NotAnObject = list[Any] | str | int | float | bool | None


class _Agent(msgspec.Struct, omit_defaults=True):
    ARN: Any = None
    AfterContactWorkStartTimestamp: Any = None
    ConnectedToAgentTimestamp: Any = None
    CustomerHoldDuration: Any = None
    NumberOfHolds: Any = None
    Username: Any = None


class _Queue(msgspec.Struct, omit_defaults=True):
    Name: Any = None


class _Endpoint(msgspec.Struct, omit_defaults=True):
    Address: Any = None
    Type: Any = None


class _CtrFields(msgspec.Struct, omit_defaults=True):
    # UNSET, not None: a ``"ContactId": null`` is a damaged CTR (InvalidContactRecord), while an object
    # without the key is another kind of event (NotAContactRecord), so the null is kept.
    ContactId: Any = msgspec.UNSET
    InitialContactId: Any = None
    PreviousContactId: Any = None
    Channel: Any = None
    InitiationMethod: Any = None
    InitiationTimestamp: Any = None
    DisconnectTimestamp: Any = None
    LastUpdateTimestamp: Any = None
    DisconnectReason: Any = None
    TransferCompletedTimestamp: Any = None
    NextContactId: Any = None
    Agent: _Agent | _NotAnObject = None
    Queue: _Queue | _NotAnObject = None
    CustomerEndpoint: _Endpoint | _NotAnObject = None
    Attributes: dict[str, Any] | _NotAnObject = None


_decode = msgspec.json.Decoder(_CtrFields).decode
_decode_base64 = msgspec.json.Decoder(bytes).decode
_to_builtins = msgspec.to_builtins

# What ``decode_ctr_fields`` raises for text that is not one JSON object (messages name no value).
DecodeError = msgspec.DecodeError
ValidationError = msgspec.ValidationError


def decode_base64(data: str) -> bytes:
    """Strict base64 (RFC 4648 alphabet, padding required). Raises ``ValueError``; the message holds no data."""
    if "\\" in data:
        raise ValueError("not base64")
    try:
        return _decode_base64('"' + data + '"')
    except (msgspec.DecodeError, UnicodeError):
        raise ValueError("not base64") from None


def decode_ctr_fields(text: str | bytes) -> dict[str, Any]:
    """The billing fields of one JSON object. Raises ``msgspec.DecodeError`` for text that is not JSON,
    ``msgspec.ValidationError`` for JSON that is not an object (or holds a number out of range),
    ``RecursionError`` for absurdly deep nesting. The caller validates UTF-8: skipped text is not checked.
    """
    fields: dict[str, Any] = _to_builtins(_decode(text))
    return fields


CTR_FIELDS: tuple[str, ...] = _CtrFields.__struct_fields__
AGENT_FIELDS: tuple[str, ...] = _Agent.__struct_fields__
