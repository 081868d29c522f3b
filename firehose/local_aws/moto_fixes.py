"""Every change the embedded AWS makes to moto's behaviour, in one module.

Each fix below replaces one or more of moto's functions (its *targets*); its docstring says what moto
does wrong or slowly there, and ``tests/integration/test_moto_fixes.py`` holds a test that fails
without it. A fix kept for speed alone is kept only while ``bench/bench_pipeline.py`` shows it worth
more than 5 % of the pipeline's time.

A fix is written against moto's code as it is, so every target (and every moto function a fix relies
on without replacing it) carries the fingerprints of its source in the moto releases the fixes were
verified with. ``install()`` checks them all before it changes anything and refuses to start, naming
the fix, the function and moto's version, when one is missing or its source differs: upgrading moto
then means reading what changed in that function, adjusting the fix, and adding the new fingerprint
(``fingerprint()``) once the tests pass on the new release.

Installed by the process that serves the embedded AWS (``firehose.local_aws.server``), before its
first request; the fixes are process-wide, as moto's backends are.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType, SimpleNamespace
from typing import Any, Literal

import moto
from moto.awslambda.models import LambdaBackend
from moto.awslambda.models import LambdaFunction as MotoLambdaFunction
from moto.core.exceptions import JsonRESTError
from moto.dynamodb import comparisons
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import table as table_models
from moto.dynamodb.models.table import Table
from moto.kinesis.models import KinesisBackend, Record, Shard, kinesis_backends
from moto.kinesis.models import Stream as KinesisStream
from moto.kinesis.responses import KinesisResponse
from moto.kms.models import Key as KmsKey
from moto.s3 import notifications as s3_notifications
from moto.s3.models import FakeBucket, S3Backend, s3_backends
from moto.s3.responses import S3Response
from moto.sqs.models import Queue as SqsQueue
from moto.sqs.models import sqs_backends
from moto.utilities.utils import get_partition

from firehose.local_aws.models import resolved_properties, without_no_value

# The moto releases these fixes are verified with: pyproject.toml's range, checked again at start-up.
# A target with two fingerprints reads differently in 5.1.22 and 5.2.x (type-hint syntax only).
MOTO_RANGE = ((5, 1, 22), (5, 3))
MOTO_RANGE_TEXT = ">=5.1.22,<5.3"


# "fix": moto answers wrongly without it; "speed": moto answers the same, more slowly.
Kind = Literal["fix", "speed"]


class MotoFixError(RuntimeError):
    """moto is not what the fixes were written against; the message names the fix and what changed."""


def fingerprint(value: object) -> str:
    """A short hash of a function's source, blank and comment-only lines and indentation left out (a
    module stands for itself by name). Any change of code, signature or docstring changes it."""
    if isinstance(value, ModuleType):
        return f"module {value.__name__}"
    lines = (line.strip() for line in inspect.getsource(value).splitlines())  # type: ignore[arg-type]
    text = "\n".join(line for line in lines if line and not line.startswith("#"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Target:
    """One of moto's functions (or module attributes), as a fix found it."""

    owner: type | ModuleType
    name: str
    fingerprints: tuple[str, ...]

    @property
    def label(self) -> str:
        owner = self.owner
        where = (
            owner.__name__ if isinstance(owner, ModuleType) else f"{owner.__module__}.{owner.__qualname__}"
        )
        return f"{where}.{self.name}"


@dataclass(frozen=True, slots=True)
class MotoFix:
    name: str
    kind: Kind
    why: str
    replaces: tuple[Target, ...]
    relies_on: tuple[Target, ...]
    apply: Callable[[], None]

    def check(self) -> None:
        """Raise ``MotoFixError`` when a target is missing or its source is not a verified one."""
        version = moto.__version__
        roles = [(target, "replaces") for target in self.replaces]
        roles += [(target, "relies on") for target in self.relies_on]
        for target, role in roles:
            value = getattr(target.owner, target.name, None)
            if value is None:
                raise MotoFixError(
                    f"moto {version} has no {target.label}, which the embedded AWS's fix {self.name!r} "
                    f"{role}; review that fix in {__name__} (verified with moto{MOTO_RANGE_TEXT})"
                )
            try:
                found = fingerprint(value)
            except (OSError, TypeError):  # no Python source: not the function the fix was written for
                found = "no source"
            if found not in target.fingerprints:
                raise MotoFixError(
                    f"moto {version} changed {target.label}, which the embedded AWS's fix {self.name!r} "
                    f"{role} (source fingerprint {found}, verified: {', '.join(target.fingerprints)}). "
                    f"The fix corrects: {self.why.split(chr(10))[0]} Review it in {__name__}, then add "
                    f"the fingerprint once tests/integration/test_moto_fixes.py passes; or install "
                    f"moto{MOTO_RANGE_TEXT}"
                )


FIXES: list[MotoFix] = []
_installed: set[str] = set()
_install_lock = threading.Lock()


def _fix(
    name: str, kind: Kind, *, replaces: tuple[Target, ...], relies_on: tuple[Target, ...] = ()
) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated function as the way to apply a fix; its docstring is the fix's reason."""

    def register(apply: Callable[[], None]) -> Callable[[], None]:
        FIXES.append(MotoFix(name, kind, inspect.cleandoc(apply.__doc__ or ""), replaces, relies_on, apply))
        return apply

    return register


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_moto() -> None:
    """Every fix's targets as verified, and moto's version in the verified range; else ``MotoFixError``."""
    lowest, above = MOTO_RANGE
    if not lowest <= _version(moto.__version__) < above:
        raise MotoFixError(
            f"the embedded AWS is verified with moto{MOTO_RANGE_TEXT}, found moto {moto.__version__}: "
            f"install the range pinned in pyproject.toml"
        )
    for fix in FIXES:
        if fix.name not in _installed:
            fix.check()


def install() -> None:
    """Check every fix, then apply those not yet applied in this process (idempotent)."""
    with _install_lock:
        check_moto()
        for fix in FIXES:
            if fix.name not in _installed:
                fix.apply()
                _installed.add(fix.name)


# --- Kinesis -----------------------------------------------------------------------------------------


def _untracked_record(cls: type[Record], *args: Any, **kwargs: Any) -> Record:
    return object.__new__(cls)


@_fix(
    "kinesis-records-untracked",
    "fix",
    replaces=(Target(Record, "__new__", ("9aec1acda3b1",)),),
)
def _records_untracked() -> None:
    """moto keeps every Kinesis record ever put alive, so trimming a shard frees no memory.

    moto's ``BaseModel.__new__`` appends each model instance to its class's ``instances_tracked`` list
    (for the server's dashboard), which only a full reset empties. ``EmbeddedAws.trim_kinesis`` stands
    in for Kinesis retention by deleting delivered records from their shard; with the tracking list
    holding them, the embedded AWS's memory still grew with every record put. Records are created
    untracked (the dashboard then lists no Kinesis records; nothing here reads it).
    """
    Record.__new__ = staticmethod(_untracked_record)  # type: ignore[assignment,method-assign]


def _max_sequence_number(self: Shard) -> int:
    return next(reversed(self.records)) if self.records else 0


def _min_sequence_number(self: Shard) -> int:
    return next(iter(self.records)) if self.records else 0


def _shard_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Record], int, int]:
    last = int(last_sequence_id)
    if not self.records:
        return [], last, 0
    newest_number = next(reversed(self.records))
    first = max(last + 1, next(iter(self.records)))
    final = newest_number if limit is None else min(newest_number, first + limit - 1)
    results = [record for number in range(first, final + 1) if (record := self.records.get(number))]
    if not results:
        return [], last, 0
    newest = self.records.get(newest_number, results[-1])
    behind = int((newest.created_at - results[-1].created_at) * 1000)
    return results, results[-1].sequence_number, behind


@_fix(
    "kinesis-shard-reads",
    "fix",
    replaces=(
        Target(Shard, "get_records", ("ceddc023ad18", "664bcb003bd0")),
        Target(Shard, "get_min_sequence_number", ("0c6d6da934f3",)),
        Target(Shard, "get_max_sequence_number", ("bc1edc32c659",)),
    ),
    relies_on=(Target(Shard, "put_record", ("6f56c1d72719",)),),
)
def _shard_reads() -> None:
    """moto's GetRecords fails with HTTP 500 when a put lands while it reads, and costs O(shard).

    ``Shard.get_records`` iterates the shard's ``OrderedDict`` of records in Python from its first
    record; the server answers each request on its own thread, so a PutRecords (or a trim) on another
    thread mutates the dict mid-iteration: "RuntimeError: OrderedDict mutated during iteration", an
    HTTP 500 to the reader. It also reads every record before the iterator's position, and
    ``get_min/max_sequence_number`` copy every key into a list (``put_record`` asks for the maximum on
    every put). moto numbers a shard's records with consecutive integers (``put_record``: last + 1), so
    all three are answered by index, touching only the records returned: same results, same iterator.
    """
    Shard.get_records = _shard_records  # type: ignore[method-assign]
    Shard.get_min_sequence_number = _min_sequence_number  # type: ignore[method-assign]
    Shard.get_max_sequence_number = _max_sequence_number  # type: ignore[method-assign]


def _create_stream(
    cls: type[KinesisStream],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> KinesisStream:
    properties = resolved_properties(cloudformation_json)
    backend = kinesis_backends[account_id][region_name]
    shard_count = properties.get("ShardCount")
    stream: KinesisStream = backend.create_stream(
        properties.get("Name") or resource_name,
        int(shard_count) if shard_count is not None else None,  # type: ignore[arg-type]
        stream_mode=properties.get("StreamModeDetails") or None,
        retention_period_hours=properties.get("RetentionPeriodHours"),
    )
    tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
    if tags:
        backend.add_tags_to_stream(stream_arn=None, stream_name=stream.stream_name, tags=tags)
    encryption = properties.get("StreamEncryption")
    if encryption:
        backend.start_stream_encryption(
            stream_arn=None,  # type: ignore[arg-type]
            stream_name=stream.stream_name,
            encryption_type=encryption["EncryptionType"],
            key_id=encryption["KeyId"],
        )
    return stream


@_fix(
    "kinesis-stream-from-template",
    "fix",
    replaces=(Target(KinesisStream, "create_from_cloudformation_json", ("9a9fbff04149",)),),
    relies_on=(Target(KinesisBackend, "create_stream", ("b7b53746a8dc", "d04f4ee9636d")),),
)
def _stream_from_template() -> None:
    """moto's CloudFormation creates an on-demand, encrypted Kinesis stream as one unencrypted shard.

    ``Stream.create_from_cloudformation_json`` reads ``ShardCount`` (default 1), retention and tags
    only: it ignores ``StreamModeDetails`` (the API's ``CreateStream`` gives an on-demand stream four
    shards) and ``StreamEncryption`` (SSE-KMS with the stack's key). The stream is created through the
    backend's API-level calls with both.
    """
    KinesisStream.create_from_cloudformation_json = classmethod(_create_stream)  # type: ignore[method-assign,assignment,arg-type]


def _get_records_response(self: KinesisResponse) -> str:
    next_iterator, records, millis_behind = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    return json.dumps(
        {
            "NextShardIterator": next_iterator,
            "Records": [
                {
                    "Data": record.data,
                    "PartitionKey": record.partition_key,
                    "SequenceNumber": str(record.sequence_number),
                    "ApproximateArrivalTimestamp": record.created_at,
                }
                for record in records
            ],
            "MillisBehindLatest": millis_behind,
        },
        separators=(",", ":"),
    )


@_fix(
    "kinesis-get-records-json",
    "speed",
    replaces=(Target(KinesisResponse, "get_records", ("6db17fbd8d31",)),),
    relies_on=(Target(KinesisBackend, "get_records", ("06f09afbfbbb", "162ac1f91275")),),
)
def _get_records_json() -> None:
    """moto's GetRecords answer goes through its generic serializer, record by record.

    ``KinesisResponse.get_records`` returns ``Record.to_json()`` dicts (the data base64-decoded), which
    moto's serializer encodes again, field by field, against the service model: the largest cost of a
    local delivery stream's reads, worth ~15 % of the pipeline's time in ``bench_pipeline``. The JSON
    Kinesis sends is built directly: the base64 text the record was put with, the arrival time as epoch
    seconds.
    """
    KinesisResponse.get_records = _get_records_response  # type: ignore[assignment,method-assign]


# --- S3 and KMS --------------------------------------------------------------------------------------


def _bucket_permission(self: FakeBucket, action: str, resource: str) -> Any:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    if self.policy is None:
        return PermissionResult.NEUTRAL
    document = json.loads(self.policy)
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    enforced = [s for s in statements if isinstance(s, dict) and not s.get("Condition")]
    if not enforced:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**document, "Statement": enforced})).is_action_permitted(action, resource)


@_fix(
    "s3-conditional-bucket-policy",
    "fix",
    replaces=(Target(FakeBucket, "get_permission", ("3f29b3715a97",)),),
)
def _conditional_bucket_policy() -> None:
    """moto denies every object request to a bucket whose policy denies insecure transport.

    On each object GET/PUT/DELETE moto evaluates the bucket policy with ``IAMPolicy``, which does not
    evaluate ``Condition`` blocks: the template's "Deny s3:* unless aws:SecureTransport" then denies
    every request, TLS or not (the embedded AWS speaks plain HTTP on 127.0.0.1). Statements with a
    Condition are left out of local enforcement; unconditional ones are enforced as moto does, and
    GetBucketPolicy still returns the whole policy.
    """
    FakeBucket.get_permission = _bucket_permission  # type: ignore[method-assign]


_create_bucket_from_cloudformation: Callable[..., FakeBucket] = (
    FakeBucket.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
)

# CloudFormation's NotificationConfiguration lists, by the name moto's backend takes them (the API's XML
# element) and the property naming each one's target.
_NOTIFICATION_TARGETS = (
    ("QueueConfigurations", "QueueConfiguration", "Queue"),
    ("TopicConfigurations", "TopicConfiguration", "Topic"),
)


def _notification_configuration(template: dict[str, Any]) -> dict[str, Any]:
    """A template's ``NotificationConfiguration`` in the shape moto's backend takes from the API's XML."""
    config: dict[str, Any] = {}
    for property_name, api_name, target in _NOTIFICATION_TARGETS:
        entries = []
        for entry in template.get(property_name) or []:
            rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            api_entry: dict[str, Any] = {target: entry[target], "Event": [entry["Event"]]}
            if rules:
                filter_rules = [{"Name": str(rule["Name"]).lower(), "Value": rule["Value"]} for rule in rules]
                api_entry["Filter"] = {"S3Key": {"FilterRule": filter_rules}}
            entries.append(api_entry)
        if entries:
            config[api_name] = entries
    event_bridge = template.get("EventBridgeConfiguration") or {}
    if str(event_bridge.get("EventBridgeEnabled", "")).lower() == "true":
        config["EventBridgeConfiguration"] = {}
    return config


def _create_bucket(
    cls: type[FakeBucket],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> FakeBucket:
    bucket = _create_bucket_from_cloudformation(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = resolved_properties(cloudformation_json)
    backend: S3Backend = s3_backends[account_id][get_partition(region_name)]
    status = (properties.get("VersioningConfiguration") or {}).get("Status")
    if status:
        backend.put_bucket_versioning(bucket.name, str(status))
    if str(properties.get("ObjectLockEnabled", "")).lower() == "true":
        # As S3 does for a bucket created with Object Lock: versioning is enabled with it.
        backend.put_bucket_versioning(bucket.name, "Enabled")
        retention = ((properties.get("ObjectLockConfiguration") or {}).get("Rule") or {}).get(
            "DefaultRetention"
        ) or {}
        mode = retention.get("Mode")
        backend.put_object_lock_configuration(
            bucket.name,
            lock_enabled=True,
            mode=str(mode) if mode else None,
            # What moto's PutObjectLockConfiguration passes: both numbers, the one not given as 0.
            days=int(retention.get("Days", 0)) if mode else None,
            years=int(retention.get("Years", 0)) if mode else None,
        )
    notifications = _notification_configuration(properties.get("NotificationConfiguration") or {})
    if notifications:
        backend.put_bucket_notification_configuration(bucket.name, notifications)
    return bucket


@_fix(
    "s3-bucket-from-template",
    "fix",
    replaces=(Target(FakeBucket, "create_from_cloudformation_json", ("c9833d691975", "b8779b303115")),),
    relies_on=(
        Target(S3Backend, "put_bucket_versioning", ("7f764ee39c68",)),
        Target(S3Backend, "put_object_lock_configuration", ("6fc91bc0166c", "4d749d62e052")),
        Target(S3Backend, "put_bucket_notification_configuration", ("3790ebe8347c",)),
        Target(FakeBucket, "set_notification_configuration", ("300fb00b8de6", "679e9588a97d")),
    ),
)
def _bucket_from_template() -> None:
    """moto's CloudFormation creates a bucket with its encryption and tags only.

    ``FakeBucket.create_from_cloudformation_json`` applies ``BucketEncryption`` and ``Tags`` and ignores
    every other property: a template's bucket is unversioned, has no Object Lock (so
    ``GetObjectLockConfiguration`` fails and object retention cannot be set) and sends no event
    notifications, whatever ``VersioningConfiguration``, ``ObjectLockEnabled`` /
    ``ObjectLockConfiguration`` and ``NotificationConfiguration`` say. The bucket is created by moto's
    own code, then given those through the backend's API-level calls, in the shapes the API hands them:
    versioning; Object Lock (which enables versioning, as S3 does) with the rule's default retention;
    ``QueueConfigurations`` and ``TopicConfigurations`` (event, ``S3Key`` prefix/suffix rules, target
    ARN) and ``EventBridgeConfiguration``. As the API does, setting a queue notification sends the
    queue S3's ``s3:TestEvent`` message. ``LambdaConfigurations`` are left out: moto would invoke the
    function in Docker inside PutObject. ``update_from_cloudformation_json`` is not changed: locally a
    stack is created, never updated.
    """
    FakeBucket.create_from_cloudformation_json = classmethod(_create_bucket)  # type: ignore[method-assign,assignment,arg-type]


_key_response_get = S3Response._key_response_get
_NO_RETENTION = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchObjectLockConfiguration</Code>'
    "<Message>The specified object does not have a ObjectLock configuration</Message></Error>"
)


def _get_object_retention(self: S3Response, query: dict[str, Any], key_name: str) -> Any:
    if "retention" not in query or query.get("uploadId"):
        return _key_response_get(self, query, key_name)
    from moto.core.responses import ActionResult

    self._set_action("KEY", "GET", query)
    self._authenticate_and_authorize_s3_action(bucket_name=self.bucket_name, key_name=key_name)
    key, _ = self._get_key()
    headers: dict[str, str] = {}
    if key.version_id and key.version_id != "null":
        headers["x-amz-version-id"] = key.version_id
    if not key.lock_mode or not key.lock_until:
        return 404, {**headers, "Content-Type": "application/xml"}, _NO_RETENTION
    until = datetime.fromisoformat(str(key.lock_until).replace("Z", "+00:00"))
    self.data["Action"] = "GetObjectRetention"
    status, answer_headers, body = self.serialized(
        ActionResult({"Retention": {"Mode": key.lock_mode, "RetainUntilDate": until}})
    )
    answer_headers.update(headers)
    return status, answer_headers, body


@_fix(
    "s3-get-object-retention",
    "fix",
    replaces=(Target(S3Response, "_key_response_get", ("4f47613e77da",)),),
    relies_on=(Target(S3Response, "_get_key", ("c2258ba42eb0",)),),
)
def _object_retention() -> None:
    """moto has no GetObjectRetention: ``GET /<key>?retention`` is answered as GetObject (HTTP 500).

    ``S3Response._key_response_get`` dispatches ``acl``, ``tagging``, ``legal-hold`` and
    ``attributes`` and sends every other GET of a key to ``get_object``, so GetObjectRetention gets the
    object's bytes where S3 answers XML, and botocore reports HTTP 500; PutObjectRetention and
    HeadObject's ``x-amz-object-lock-*`` headers work. The retention moto keeps on the version
    (``lock_mode``, ``lock_until``) is answered as S3 does: ``Retention`` with ``Mode`` and
    ``RetainUntilDate``, or 404 ``NoSuchObjectLockConfiguration`` for a version without one.
    """
    S3Response._key_response_get = _get_object_retention  # type: ignore[method-assign]


_s3_event = s3_notifications._get_s3_event
_sequencer = itertools.count(1)


def _s3_event_with_version(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
    event = _s3_event(event_name, bucket, key, notification_id)
    version = getattr(key, "version_id", None)
    # S3's eventTime: UTC, milliseconds, "Z" ("1970-01-01T00:00:00.000Z" in the S3 User Guide's examples).
    now = datetime.now(UTC)
    event_time = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    for record in event["Records"]:
        record["eventTime"] = event_time
        target = record["s3"]["object"]
        if version and version != "null":
            target["versionId"] = version
        target["sequencer"] = f"{next(_sequencer):016X}"
    return event


@_fix(
    "s3-notification-fields",
    "fix",
    replaces=(Target(s3_notifications, "_get_s3_event", ("19e8d7b8527a", "569b3d2a5a12")),),
    relies_on=(Target(s3_notifications, "send_event", ("216c06e334e2",)),),
)
def _notification_version_id() -> None:
    """moto's S3 event notifications leave out the object's ``versionId`` and ``sequencer``, and
    before 5.2.5 write ``eventTime`` in the server's local time without a zone.

    ``notifications._get_s3_event`` builds ``s3.object`` from the key's name, size and ETag only. S3
    adds the version the event is about (``versionId``, for a versioned bucket) and ``sequencer``
    (a hexadecimal string ordering the events of one key), so a consumer of a versioned bucket's
    notifications (the archive lock sets Object Lock retention on exactly that version) found no
    version to act on. Both are added to every record moto sends (SQS, SNS, Lambda); the sequencer
    increases across the process, which orders events of one key as S3's does. ``eventTime`` is
    written as S3 writes it (UTC, milliseconds, ``Z``): moto 5.1.22 to 5.2.4 wrote
    ``datetime.now()`` without a zone, which the archive lock rightly refuses to date a lock from.
    """
    s3_notifications._get_s3_event = _s3_event_with_version


_create_key_from_cloudformation: Callable[..., KmsKey] = KmsKey.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _create_key(
    cls: type[KmsKey],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> KmsKey:
    properties = dict(cloudformation_json.get("Properties") or {})
    policy = properties.get("KeyPolicy")
    if isinstance(policy, dict):
        properties["KeyPolicy"] = json.dumps(without_no_value(policy))
    resolved = {**cloudformation_json, "Properties": properties}
    return _create_key_from_cloudformation(cls, resource_name, resolved, account_id, region_name, **kwargs)


@_fix(
    "kms-key-policy-as-json",
    "fix",
    replaces=(Target(KmsKey, "create_from_cloudformation_json", ("bc288823bc56",)),),
)
def _key_policy_as_json() -> None:
    """moto's CloudFormation stores a KMS key's ``KeyPolicy`` as the template's map, not JSON text.

    ``Key.create_from_cloudformation_json`` passes ``Properties.KeyPolicy`` to ``create_key`` as given;
    a template's policy is a map, where the KMS API (and moto's own DescribeKey / GetKeyPolicy code)
    holds JSON text, so describing the stack's key fails. The policy is handed over as JSON.
    """
    KmsKey.create_from_cloudformation_json = classmethod(_create_key)  # type: ignore[method-assign,assignment,arg-type]


# --- DynamoDB ---------------------------------------------------------------------------------------
_transact_write_items = DynamoDBBackend.transact_write_items


def _deepcopy_except_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """moto's ``copy.deepcopy`` in its DynamoDB backend, except that a ``Table`` "copy" is the table
    itself: moto's rollback then puts back the same table, and the touched items are restored instead."""
    if isinstance(value, Table):
        return value
    return copy.deepcopy(value, memo)


def _touched_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Any]:
    """(table name, key, attributes before or ``None``) for every item the transaction may write."""
    saved: list[Any] = []
    for request in transact_items:
        for operation_type, operation in request.items():
            try:
                table_name = operation["TableName"]
                table = backend.get_table(table_name)
                if operation_type == "Put":
                    attributes = operation["Item"]
                    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attributes[table.range_key_attr]
                else:
                    key = operation["Key"]
                current = backend.get_item(table_name, key)
            except (KeyError, TypeError, JsonRESTError):
                continue  # an invalid request: moto's own code rejects it before writing anything
            saved.append((table_name, key, current.to_json()["Attributes"] if current else None))
    return saved


def _transact_with_item_rollback(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    saved = _touched_items(self, transact_items) if len(transact_items) <= 100 else []
    try:
        _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, attributes in reversed(saved):
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise


@_fix(
    "dynamodb-transaction-rollback",
    "fix",
    replaces=(
        Target(DynamoDBBackend, "transact_write_items", ("da88455ff466", "be67fe3f263f")),
        Target(dynamodb_models, "copy", ("module copy",)),
    ),
)
def _transaction_rollback() -> None:
    """moto's TransactWriteItems copies the whole table per item, fails beside concurrent writes, and
    a cancelled one undoes other requests' writes.

    ``DynamoDBBackend.transact_write_items`` snapshots each table it touches with ``copy.deepcopy`` once
    per *item* (100 copies of the whole table for a 100-item transaction, ~15 s on a 2,000-item table).
    The copy iterates the table's items while other server threads write to it: "RuntimeError:
    dictionary changed size during iteration", an HTTP 500 (the billing ledger claims contacts in
    100-item transactions from a thread pool; without this fix a 10,000-contact bench_pipeline run got
    such 500s and did not finish). And a cancelled transaction puts the snapshot back in place of the
    table, losing every write other requests made to it meanwhile: a concurrent batch's claims, i.e. a
    contact billed twice. moto's own code still checks conditions, writes and reports
    ``CancellationReasons``; only the snapshot changes: the items the transaction may write are saved
    before it and put back if it fails. (Streams of the table are not rolled back; the stack has none.)
    """
    dynamodb_models.copy = SimpleNamespace(deepcopy=_deepcopy_except_tables)  # type: ignore[assignment,attr-defined]
    DynamoDBBackend.transact_write_items = _transact_with_item_rollback  # type: ignore[method-assign]


@functools.lru_cache(maxsize=256)
def _parsed_condition(expr: str | None, names: str, values: str) -> comparisons.Op | comparisons.Func:
    return comparisons.get_filter_expression(expr, json.loads(names), json.loads(values))


def _cached_filter_expression(
    expr: str | None, names: dict[str, str] | None, values: dict[str, dict[str, str]] | None
) -> comparisons.Op | comparisons.Func:
    return _parsed_condition(expr, json.dumps(names, sort_keys=True), json.dumps(values, sort_keys=True))


@_fix(
    "dynamodb-condition-parse-cache",
    "speed",
    replaces=(
        Target(dynamodb_models, "get_filter_expression", ("0e77a7b798b7", "b69ff1860860")),
        Target(table_models, "get_filter_expression", ("0e77a7b798b7", "b69ff1860860")),
    ),
)
def _condition_parse_cache() -> None:
    """moto parses a transaction item's ``ConditionExpression`` again for each check.

    ``transact_write_items`` parses it for the item's check and ``put_item`` parses it again for its
    own, for every item of every transaction; the billing ledger sends the same few conditions in
    every claim, and those parses are worth ~9 % of the pipeline's time in ``bench_pipeline``. The
    parsed ``Op`` trees are immutable once built, so the model-level parses share one cache.
    """
    dynamodb_models.get_filter_expression = _cached_filter_expression  # type: ignore[attr-defined]
    table_models.get_filter_expression = _cached_filter_expression  # type: ignore[attr-defined]


# --- Lambda ------------------------------------------------------------------------------------------
_create_function_from_cloudformation: Callable[..., MotoLambdaFunction] = (
    MotoLambdaFunction.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
)


def _create_function(
    cls: type[MotoLambdaFunction],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> MotoLambdaFunction:
    function = _create_function_from_cloudformation(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    )
    properties = cloudformation_json.get("Properties") or {}
    if properties.get("Architectures"):
        function.architectures = list(properties["Architectures"])
    function.dead_letter_config = _dead_letter_config(properties.get("DeadLetterConfig"))  # type: ignore[attr-defined]
    return function


@_fix(
    "lambda-template-properties",
    "fix",
    replaces=(
        Target(MotoLambdaFunction, "create_from_cloudformation_json", ("c7f570872bf2", "2e5aaa1ceb01")),
    ),
)
def _lambda_template_properties() -> None:
    """moto's CloudFormation creates every Lambda function as ``x86_64`` and without its dead-letter
    target, whatever the template says.

    ``LambdaFunction.create_from_cloudformation_json`` copies a fixed list of optional properties
    (description, memory, timeout, environment, ...) into the function's spec; ``Architectures`` and
    ``DeadLetterConfig`` are not among them, so GetFunction / ListFunctions report moto's default
    ``x86_64`` for the template's ``arm64`` functions, and the settlement export's failed asynchronous
    invocations had no dead-letter queue to go to. The function is created by moto's own code, then given
    the template's architectures (through the model's validating setter) and dead-letter target (kept as
    ``lambda-dead-letter-config`` keeps it for the API).
    """
    MotoLambdaFunction.create_from_cloudformation_json = classmethod(_create_function)  # type: ignore[method-assign,assignment,arg-type]


def _dead_letter_config(value: Any) -> dict[str, str] | None:
    """A ``DeadLetterConfig`` as Lambda keeps it: ``{"TargetArn": ...}``, or None (an empty one clears it)."""
    target = value.get("TargetArn") if isinstance(value, dict) else None
    return {"TargetArn": str(target)} if target else None


_function_init = MotoLambdaFunction.__init__
_function_configuration = MotoLambdaFunction.get_configuration
_function_update = MotoLambdaFunction.update_configuration


def _init_with_dead_letter(
    self: MotoLambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any
) -> None:
    _function_init(self, account_id, spec, *args, **kwargs)
    self.dead_letter_config = _dead_letter_config(spec.get("DeadLetterConfig"))  # type: ignore[attr-defined]


def _configuration_with_dead_letter(self: MotoLambdaFunction, *args: Any, **kwargs: Any) -> dict[str, Any]:
    configuration = _function_configuration(self, *args, **kwargs)
    dead_letter = getattr(self, "dead_letter_config", None)
    if dead_letter:
        configuration["DeadLetterConfig"] = dict(dead_letter)
    return configuration


def _update_with_dead_letter(self: MotoLambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
    if "DeadLetterConfig" in config_updates:
        self.dead_letter_config = _dead_letter_config(config_updates["DeadLetterConfig"])  # type: ignore[attr-defined]
    return _function_update(self, config_updates)


@_fix(
    "lambda-dead-letter-config",
    "fix",
    replaces=(
        Target(MotoLambdaFunction, "__init__", ("b43006f8274e", "94f0f96ffbd7", "8aa90a7ec756")),
        Target(MotoLambdaFunction, "get_configuration", ("a1da526bae4f", "e1e6544fc8af")),
        Target(MotoLambdaFunction, "update_configuration", ("6c48f1844b6c",)),
    ),
)
def _lambda_dead_letter_config() -> None:
    """moto drops a function's ``DeadLetterConfig``: CreateFunction and UpdateFunctionConfiguration
    accept it, GetFunctionConfiguration never answers it.

    ``LambdaFunction.__init__`` keeps a fixed set of the spec's fields and ``get_configuration`` answers
    those; ``DeadLetterConfig`` is not among them. Lambda answers it, and the embedded AWS's
    asynchronous invocations (``firehose.local_aws.lambda_api``) read it to send an event whose
    attempts all failed to the function's dead-letter queue or topic. Kept on the function as Lambda
    keeps it (``{"TargetArn": ...}``; an update with an empty one clears it) and answered beside
    moto's own fields.
    """
    MotoLambdaFunction.__init__ = _init_with_dead_letter  # type: ignore[method-assign]
    MotoLambdaFunction.get_configuration = _configuration_with_dead_letter  # type: ignore[method-assign]
    MotoLambdaFunction.update_configuration = _update_with_dead_letter  # type: ignore[method-assign]


# --- SQS event source mappings ------------------------------------------------------------------------
_create_event_source_mapping = LambdaBackend.create_event_source_mapping


def _create_mapping_run_by_poller(self: LambdaBackend, spec: dict[str, Any]) -> Any:
    mapping = _create_event_source_mapping(self, spec)
    for queue in sqs_backends[self.account_id][self.region_name].queues.values():
        if queue.lambda_event_source_mappings.get(mapping.function_arn) is mapping:
            del queue.lambda_event_source_mappings[mapping.function_arn]
    return mapping


@_fix(
    "sqs-event-source-mappings-polled",
    "fix",
    replaces=(Target(LambdaBackend, "create_event_source_mapping", ("546742796bc9",)),),
    relies_on=(Target(SqsQueue, "add_message", ("5350424bf2d5", "34d288bc18d7")),),
)
def _sqs_mappings_polled() -> None:
    """moto runs an SQS event source mapping inside SendMessage, in Docker, and fails messages with it.

    ``create_event_source_mapping`` registers an SQS mapping on its queue, and ``Queue.add_message``
    then, within every SendMessage (and every S3 notification to the queue), receives a batch for each
    mapping (counting a receive towards the redrive policy's ``maxReceiveCount``) and invokes the
    function in a Docker container: without Docker every invocation fails, so each message sent is
    pushed towards the dead-letter queue before its sender gets an answer, and the sender waits for
    the function. Lambda polls the queue instead. The mapping is created and answered by moto as
    before (Create/List/Get/Update/DeleteEventSourceMapping, with ``FunctionResponseTypes``,
    ``MaximumBatchingWindowInSeconds`` and ``Enabled`` as given), but not registered on its queue; the
    server's poller (``firehose.local_aws.event_sources``) runs it as Lambda does.
    """
    LambdaBackend.create_event_source_mapping = _create_mapping_run_by_poller  # type: ignore[method-assign]


# Fixes kept beside the API they belong to register themselves on import: imported here, so FIXES is
# complete wherever this module is (check_moto in a fresh interpreter checks every fix install() applies).
from firehose.local_aws import firehose_api  # noqa: E402, F401
