"""Embedded AWS: a moto server on 127.0.0.1 at a free port, reached only over HTTP with boto3.

moto's CloudFormation skips resource types it does not model. The ``CloudFormationModel`` subclasses
below teach it the types ``cloudformation/template.yaml`` uses beyond moto's own (Firehose delivery
streams, Glue databases and tables, Athena work groups and named queries, S3 bucket and SQS queue
policies); each creates the resource in moto's own backend, so the APIs describe exactly what the
template declared.
Written against moto 5.2.5 (pinned in pyproject.toml): moto builds its model map from
``CloudFormationModel.__subclasses__()`` behind an ``lru_cache``, which is cleared after registration.

Two ways to run it, same HTTP API:

* ``EmbeddedAws()`` serves from a thread of this process (tests: fast to start, and a test may change
  moto's process-wide settings, e.g. IAM enforcement);
* ``EmbeddedAws(isolated=True)`` serves from a child process (``ctr-billing demo`` / ``serve`` and the
  benchmark): this module is imported there, so the models and patches below are registered in the
  process that serves, and the caller's process holds only its clients. Its memory is then the
  pipeline's own, while everything the embedded AWS stores (objects, items, records) is counted in the
  child (``peak_rss_mb``). The child ignores Ctrl-C and serves until its stdin closes, i.e. until
  ``stop()`` or the caller's exit, so ``serve`` can still drain after Ctrl-C and no server is orphaned.

The one call that reaches into moto's backends on the caller's behalf, forgetting consumed Kinesis
records (``trim_kinesis``), is a control route of the server (``POST /_ctr-billing/kinesis/trim``),
so it works across the process boundary and the same way in both modes.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
import botocore.utils
import moto
from botocore.config import Config
from moto import backends as moto_backends
from moto.athena.models import athena_backends
from moto.cloudformation import parsing as cfn_parsing
from moto.core import responses as moto_core_responses
from moto.core.common_models import CloudFormationModel
from moto.firehose.models import firehose_backends
from moto.glue.models import glue_backends
from moto.kinesis.models import Record, Shard, kinesis_backends
from moto.kinesis.models import Stream as KinesisStream
from moto.kinesis.responses import KinesisResponse
from moto.kms.models import Key as KmsKey
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeBucket, s3_backends
from moto.server import ThreadedMotoServer
from moto.sqs.models import sqs_backends
from moto.utilities.aws_headers import gen_amzn_requestid_long

from firehose.local_aws import dynamodb_fixes as embedded_dynamodb
from firehose.runtime.processes import peak_rss_mb

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

MOTO_VERSION = "5.2.5"  # the models and patches below are written against this version (pinned)
if moto.__version__ != MOTO_VERSION:  # pragma: no cover - guards an unpinned install
    raise ImportError(
        f"firehose.local_aws.embedded is written against moto {MOTO_VERSION}, found {moto.__version__}; "
        "install the version pinned in pyproject.toml"
    )

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
# moto accepts any credentials; these are never real ones.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "cloudformation" / "template.yaml"
DEFAULT_STACK_NAME = "ctr-billing"


# --- CloudFormation models for the types moto skips ------------------------------------------------


def _without_no_value(value: Any) -> Any:
    """moto resolves ``AWS::NoValue`` to None and keeps it in lists; CloudFormation removes it."""
    if isinstance(value, dict):
        return {key: _without_no_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_no_value(item) for item in value if item is not None]
    return value


def _properties(cloudformation_json: Mapping[str, Any]) -> dict[str, Any]:
    return dict(_without_no_value(cloudformation_json.get("Properties") or {}))


def _stringify_parameters(config: Any) -> Any:
    """Firehose ProcessorParameter values are strings in the API; YAML may give numbers."""
    if isinstance(config, dict):
        if set(config) == {"ParameterName", "ParameterValue"}:
            return {"ParameterName": config["ParameterName"], "ParameterValue": str(config["ParameterValue"])}
        return {key: _stringify_parameters(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_stringify_parameters(item) for item in config]
    return config


class _ModelDefaults:
    """What every project model shares: created synchronously; an update keeps the resource unless
    the model says otherwise. A mixin, because moto finds models among the *direct* subclasses of
    ``CloudFormationModel``."""

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        return original_resource

    def is_created(self) -> bool:
        return True


class FirehoseDeliveryStreamModel(_ModelDefaults, CloudFormationModel):
    """``AWS::KinesisFirehose::DeliveryStream``: created in moto's Firehose backend (Ref = name)."""

    def __init__(self, name: str, arn: str) -> None:
        self.name = name
        self.arn = arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DeliveryStreamName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::KinesisFirehose::DeliveryStream"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Arn":
            return self.arn
        raise NotImplementedError(f"{attribute_name} is not an attribute of a delivery stream")

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> FirehoseDeliveryStreamModel:
        properties = _stringify_parameters(_properties(cloudformation_json))
        name = properties.get("DeliveryStreamName") or resource_name[:64]
        backend = firehose_backends[account_id][region_name]
        arn = backend.create_delivery_stream(
            region=region_name,
            delivery_stream_name=name,
            delivery_stream_type=properties.get("DeliveryStreamType", "DirectPut"),
            kinesis_stream_source_configuration=properties.get("KinesisStreamSourceConfiguration"),
            delivery_stream_encryption_configuration_input=properties.get(
                "DeliveryStreamEncryptionConfigurationInput"
            ),
            s3_destination_configuration=properties.get("S3DestinationConfiguration"),
            extended_s3_destination_configuration=properties.get("ExtendedS3DestinationConfiguration"),
            redshift_destination_configuration=properties.get("RedshiftDestinationConfiguration"),
            elasticsearch_destination_configuration=properties.get("ElasticsearchDestinationConfiguration"),
            splunk_destination_configuration=properties.get("SplunkDestinationConfiguration"),
            http_endpoint_destination_configuration=properties.get("HttpEndpointDestinationConfiguration"),
            snowflake_destination_configuration=properties.get("SnowflakeDestinationConfiguration"),
            iceberg_destination_configuration=properties.get("IcebergDestinationConfiguration"),
            tags=properties.get("Tags") or [],
        )
        return cls(name, arn)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FirehoseDeliveryStreamModel:
        cls.delete_from_cloudformation_json(
            original_resource.name, cloudformation_json, account_id, region_name
        )
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        backend = firehose_backends[account_id][region_name]
        if resource_name in backend.delivery_streams:
            backend.delete_delivery_stream(resource_name)


class GlueDatabaseModel(_ModelDefaults, CloudFormationModel):
    """``AWS::Glue::Database`` (Ref = database name)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Glue::Database"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> GlueDatabaseModel:
        database_input = dict(_properties(cloudformation_json).get("DatabaseInput") or {})
        name = database_input.get("Name") or resource_name.lower().replace("-", "_")
        database_input["Name"] = name
        glue_backends[account_id][region_name].create_database(name, database_input)
        return cls(name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> GlueDatabaseModel:
        database_input = dict(_properties(cloudformation_json).get("DatabaseInput") or {})
        database_input.setdefault("Name", original_resource.name)
        glue_backends[account_id][region_name].update_database(original_resource.name, database_input)
        return original_resource  # type: ignore[no-any-return]

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        backend = glue_backends[account_id][region_name]
        if resource_name in backend.databases:
            backend.delete_database(resource_name)


class GlueTableModel(_ModelDefaults, CloudFormationModel):
    """``AWS::Glue::Table`` (Ref = table name)."""

    def __init__(self, database_name: str, name: str) -> None:
        self.database_name = database_name
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Glue::Table"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> GlueTableModel:
        properties = _properties(cloudformation_json)
        table_input = dict(properties.get("TableInput") or {})
        name = table_input.get("Name") or resource_name.lower().replace("-", "_")
        table_input["Name"] = name
        database = properties["DatabaseName"]
        glue_backends[account_id][region_name].create_table(database, name, table_input)
        return cls(database, name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> GlueTableModel:
        properties = _properties(cloudformation_json)
        table_input = dict(properties.get("TableInput") or {})
        table_input.setdefault("Name", original_resource.name)
        backend = glue_backends[account_id][region_name]
        backend.get_table(original_resource.database_name, original_resource.name).update(table_input)
        return original_resource  # type: ignore[no-any-return]

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        database = _properties(cloudformation_json).get("DatabaseName")
        backend = glue_backends[account_id][region_name]
        if database in backend.databases and resource_name in backend.databases[database].tables:
            backend.delete_table(database, resource_name)


class AthenaWorkGroupModel(_ModelDefaults, CloudFormationModel):
    """``AWS::Athena::WorkGroup`` (Ref = name). CloudFormation's ``WorkGroupConfiguration`` is the API's
    ``Configuration``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Athena::WorkGroup"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> AthenaWorkGroupModel:
        properties = _properties(cloudformation_json)
        name = properties.get("Name") or resource_name
        athena_backends[account_id][region_name].create_work_group(
            name=name,
            configuration=dict(properties.get("WorkGroupConfiguration") or {}),
            description=properties.get("Description", ""),
            tags=properties.get("Tags") or [],
        )
        return cls(name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        athena_backends[account_id][region_name].work_groups.pop(resource_name, None)


class AthenaNamedQueryModel(_ModelDefaults, CloudFormationModel):
    """``AWS::Athena::NamedQuery`` (Ref = the named query's id)."""

    def __init__(self, query_id: str) -> None:
        self.query_id = query_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Athena::NamedQuery"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "NamedQueryId"

    @property
    def physical_resource_id(self) -> str:
        return self.query_id

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "NamedQueryId":
            return self.query_id
        raise NotImplementedError(f"{attribute_name} is not an attribute of a named query")

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> AthenaNamedQueryModel:
        properties = _properties(cloudformation_json)
        query_id = athena_backends[account_id][region_name].create_named_query(
            name=properties.get("Name") or resource_name,
            description=properties.get("Description", ""),
            database=properties["Database"],
            query_string=properties["QueryString"],
            workgroup=properties.get("WorkGroup", "primary"),
        )
        return cls(query_id)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        athena_backends[account_id][region_name].named_queries.pop(resource_name, None)


class _AttachedPolicy(_ModelDefaults):
    """What the policy types share: no name and no attributes of their own; an update applies the new
    document again (it replaces the old one), and the document may be given as JSON text or a map."""

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        return cls.create_from_cloudformation_json(  # type: ignore[attr-defined]
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @staticmethod
    def policy_text(properties: Mapping[str, Any]) -> str:
        document = properties["PolicyDocument"]
        return document if isinstance(document, str) else json.dumps(document)


class S3BucketPolicyModel(_AttachedPolicy, CloudFormationModel):
    """``AWS::S3::BucketPolicy``: stored on the bucket (moto ignores policy conditions when enforcing)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @property
    def physical_resource_id(self) -> str:
        return self.bucket

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> S3BucketPolicyModel:
        properties = _properties(cloudformation_json)
        bucket = properties["Bucket"]
        s3_backends[account_id]["global"].put_bucket_policy(bucket, cls.policy_text(properties).encode())
        return cls(bucket)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        bucket = _properties(cloudformation_json).get("Bucket")
        backend = s3_backends[account_id]["global"]
        if bucket in backend.buckets:
            backend.delete_bucket_policy(bucket)


def _queue_names(urls: list[Any]) -> list[str]:
    """Queue names from the queue URLs a ``Ref`` to an ``AWS::SQS::Queue`` gives."""
    return [str(url).rstrip("/").rsplit("/", 1)[-1] for url in urls]


class SqsQueuePolicyModel(_AttachedPolicy, CloudFormationModel):
    """``AWS::SQS::QueuePolicy``: set as each queue's ``Policy`` attribute (``Queues`` are queue URLs)."""

    def __init__(self, queue_names: list[str]) -> None:
        self.queue_names = queue_names

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @property
    def physical_resource_id(self) -> str:
        return ",".join(self.queue_names)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> SqsQueuePolicyModel:
        properties = _properties(cloudformation_json)
        policy = cls.policy_text(properties)
        names = _queue_names(properties["Queues"])
        for name in names:
            sqs_backends[account_id][region_name].set_queue_attributes(name, {"Policy": policy})
        return cls(names)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        backend = sqs_backends[account_id][region_name]
        for name in _queue_names(_properties(cloudformation_json).get("Queues", [])):
            if name in backend.queues:
                backend.set_queue_attributes(name, {"Policy": ""})


MODELS: tuple[type[CloudFormationModel], ...] = (
    FirehoseDeliveryStreamModel,
    GlueDatabaseModel,
    GlueTableModel,
    AthenaWorkGroupModel,
    AthenaNamedQueryModel,
    S3BucketPolicyModel,
    SqsQueuePolicyModel,
)


def register_models() -> None:
    """Make moto's CloudFormation see ``MODELS`` (its model map is cached on first use)."""
    cfn_parsing.get_model_list.cache_clear()
    cfn_parsing.get_model_map.cache_clear()
    cfn_parsing.get_name_type_map.cache_clear()
    missing = [model.cloudformation_type() for model in MODELS if model not in cfn_parsing.get_model_list()]
    if missing:  # pragma: no cover - only if moto changes how it finds models
        raise RuntimeError(f"moto did not pick up the CloudFormation models for {', '.join(missing)}")


# --- Kinesis shard reads in O(batch) ---------------------------------------------------------------
# moto 5.2.5 finds a shard's last sequence number by listing every record (so each put costs O(records
# in shard)) and serves GetRecords by scanning the shard from its first record. Sequence numbers in a
# moto shard are consecutive integers, so both are answered by index instead. Same results, same
# iterator format; this also makes reads safe while another server thread appends to the shard.


def _untracked_record(cls: type[Record], *args: Any, **kwargs: Any) -> Record:
    # moto keeps every model instance in a class-wide list (for its dashboard); a Kinesis record must
    # be freed once the shard forgets it, or memory grows with every record ever put.
    return object.__new__(cls)


Record.__new__ = staticmethod(_untracked_record)  # type: ignore[assignment,method-assign]


def _max_sequence_number(self: Shard) -> int:
    return next(reversed(self.records)) if self.records else 0


def _min_sequence_number(self: Shard) -> int:
    return next(iter(self.records)) if self.records else 0


def _get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Record], int, int]:
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


# --- bucket policies: moto 5.2.5 enforces a bucket policy's Principal "*" statements but ignores their
# conditions, so the template's "deny unless aws:SecureTransport" would deny every request. Statements
# with a Condition are left out of local enforcement (GetBucketPolicy still returns the whole policy);
# unconditional statements are enforced as moto does.


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


# --- KMS keys: moto 5.2.5 stores a CloudFormation KeyPolicy as the template's dict, where its API code
# expects the JSON text the KMS API takes, so DescribeKey fails; the policy is handed over as JSON.
_create_key_from_cloudformation = KmsKey.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


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
        properties["KeyPolicy"] = json.dumps(_without_no_value(policy))
    resolved = {**cloudformation_json, "Properties": properties}
    key: KmsKey = _create_key_from_cloudformation(
        cls, resource_name, resolved, account_id, region_name, **kwargs
    )
    return key


KmsKey.create_from_cloudformation_json = classmethod(_create_key)  # type: ignore[method-assign,assignment,arg-type]
# --- Kinesis streams: moto 5.2.5's CloudFormation model ignores StreamModeDetails (an on-demand stream
# gets one shard instead of the API's four) and StreamEncryption. The stream is created through the
# backend's own API-level calls with both.


def _create_stream(
    cls: type[KinesisStream],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> KinesisStream:
    properties = _properties(cloudformation_json)
    backend = kinesis_backends[account_id][region_name]
    mode = properties.get("StreamModeDetails") or None
    shard_count = properties.get("ShardCount")
    stream: KinesisStream = backend.create_stream(
        properties.get("Name") or resource_name,
        int(shard_count) if shard_count is not None else None,  # type: ignore[arg-type]
        stream_mode=mode,
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


KinesisStream.create_from_cloudformation_json = classmethod(_create_stream)  # type: ignore[method-assign,assignment,arg-type]
FakeBucket.get_permission = _bucket_permission  # type: ignore[method-assign]


def _get_records_response(self: KinesisResponse) -> str:
    """GetRecords answered with the JSON Kinesis returns, built directly: moto's generic serializer
    costs about 0.1 ms per record, the largest cost of a local delivery stream's reads. Records keep the
    base64 text they were put with; the arrival time is epoch seconds, as the JSON protocol sends it."""
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


KinesisResponse.get_records = _get_records_response  # type: ignore[assignment,method-assign]
Shard.get_max_sequence_number = _max_sequence_number  # type: ignore[method-assign]
Shard.get_min_sequence_number = _min_sequence_number  # type: ignore[method-assign]
Shard.get_records = _get_records  # type: ignore[method-assign]

register_models()
embedded_dynamodb.install()


# --- request routing: moto 5.2.5 lists its package directory from disk twice per request and matches
# the host against every service's URL patterns; both answers are fixed for a running process, so they
# are computed once. Measured: about +25% DynamoDB requests/s (the billing ledger makes one call per contact).
_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _MOTO_MODULES
_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_BACKEND_BY_HOST: dict[str | None, Any] = {}


def _cached_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
    if host not in _BACKEND_BY_HOST:
        _BACKEND_BY_HOST[host] = _backend_for_host(self, host)
    return _BACKEND_BY_HOST[host]


DomainDispatcherApplication.get_backend_for_host = _cached_backend_for_host  # type: ignore[method-assign]
_METHOD_NAMES: dict[type, list[str]] = {}
_method_names_from_class = moto_core_responses.method_names_from_class  # type: ignore[attr-defined]


def _cached_method_names(clazz: object) -> list[str]:
    key = clazz if isinstance(clazz, type) else type(clazz)
    if key not in _METHOD_NAMES:
        _METHOD_NAMES[key] = _method_names_from_class(clazz)
    return _METHOD_NAMES[key]


moto_core_responses.method_names_from_class = _cached_method_names  # type: ignore[attr-defined]
_enrich_response = moto_core_responses.BaseResponse._enrich_response


def _enrich_response_without_scan(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    # moto runs a look-behind regex over every response body to stamp the request id into XML; on a
    # GetRecords answer (megabytes of JSON) that scan cost ~8 % of the server's time in bench_pipeline.
    # Only bodies that hold a <RequestId> element need it; the others get the same headers without it.
    if isinstance(body, str) and "<RequestId>" in body:
        return _enrich_response(headers, body)
    if "status" in headers:
        headers["status"] = str(headers["status"])
    gen_amzn_requestid_long(headers)
    return headers, body


moto_core_responses.BaseResponse._enrich_response = staticmethod(_enrich_response_without_scan)  # type: ignore[method-assign]


# --- control route: forgetting consumed Kinesis records, served by the process that holds them --------
TRIM_PATH = "/_ctr-billing/kinesis/trim"


def trim_shards(region: str, stream_arn: str, delivered: Mapping[str, int]) -> int:
    """Forget a stream's records up to the given sequence number per shard (in this process's moto
    backend); returns how many. The newest record of a shard is kept: moto numbers the next from it."""
    stream = kinesis_backends[ACCOUNT_ID][region].describe_stream(stream_arn=stream_arn, stream_name=None)
    removed = 0
    for shard in stream.shards.values():
        limit = delivered.get(shard.shard_id)
        if limit is None:
            continue
        records = shard.records
        while len(records) > 1 and (oldest := next(iter(records))) <= int(limit):
            del records[oldest]
            removed += 1
    return removed


_dispatch = DomainDispatcherApplication.__call__


def _dispatch_with_control(
    self: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any
) -> Any:
    if environ.get("PATH_INFO") != TRIM_PATH:
        return _dispatch(self, environ, start_response)
    status, answer = "200 OK", dict[str, Any]()
    try:
        if environ.get("REQUEST_METHOD") != "POST":
            raise ValueError("POST only")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        answer = {"removed": trim_shards(body.get("region", REGION), body["stream_arn"], body["delivered"])}
    except Exception as error:  # answered as a 400, like any bad request
        status, answer = "400 Bad Request", {"error": type(error).__name__}
    payload = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


DomainDispatcherApplication.__call__ = _dispatch_with_control  # type: ignore[method-assign]


# --- the server ------------------------------------------------------------------------------------


def _quiet_moto() -> None:
    # werkzeug logs one line per request: noise, and request paths carry object keys.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto warns for every resource type it skips; deploy_stack reports them instead.
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)


def _start_server() -> tuple[ThreadedMotoServer, str]:
    _quiet_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def serve_until_stdin_closes() -> None:
    """The isolated server's process: serve, print the endpoint as one line, stop when stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (serve drains first)
    server, endpoint = _start_server()
    print(endpoint, flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        server.stop()


class EmbeddedAwsError(RuntimeError):
    pass


class EmbeddedAws:
    """A moto server on 127.0.0.1 at a free port, in a thread of this process or (``isolated=True``) in
    a child process. moto's backends are process-wide, so an in-thread server is reset when it starts:
    one in-thread embedded AWS per process at a time."""

    def __init__(self, region: str = REGION, *, isolated: bool = False, start_timeout: float = 60.0) -> None:
        self.region = region
        self.isolated = isolated
        self._start_timeout = start_timeout
        self._server: ThreadedMotoServer | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self._session: boto3.session.Session | None = None
        self._session_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None or self._process is not None

    @property
    def pid(self) -> int:
        """The process that serves (this one unless isolated)."""
        return self._process.pid if self._process is not None else os.getpid()

    def start(self) -> EmbeddedAws:
        if self.isolated:
            self.endpoint = self._start_process()
        else:
            self._server, self.endpoint = _start_server()
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own server on 127.0.0.1
                pass
        except BaseException:
            self.stop()
            raise
        return self

    def _start_process(self) -> str:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        process = subprocess.Popen(  # this interpreter, a fixed module
            [
                sys.executable,
                "-c",
                "from firehose.local_aws.embedded import serve_until_stdin_closes as s; s()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
            chunk = os.read(process.stdout.fileno(), 256) if ready else b""
            if not chunk:
                self.stop()
                raise EmbeddedAwsError("the embedded AWS process did not start")
            line += chunk
        return line.decode().strip()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def peak_rss_mb(self) -> float | None:
        """Peak RSS of the process that serves, while it runs (Linux); None if unknown."""
        return peak_rss_mb(self.pid)

    def __enter__(self) -> EmbeddedAws:
        return self.start() if not self.running else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def trim_kinesis(self, stream_arn: str, delivered: Mapping[str, int]) -> int:
        """Forget a stream's records up to the given sequence number per shard; returns how many.

        A local stand-in for Kinesis retention that keeps the embedded AWS's memory flat: callers pass
        the positions every delivery stream reading the stream has delivered. Delivery streams start at
        LATEST as of their creation, so no delivery stream can ask for these records again. Sent to the
        server's control route (``TRIM_PATH``), so it works whichever process serves.
        """
        body = json.dumps(
            {"region": self.region, "stream_arn": stream_arn, "delivered": dict(delivered)}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
            f"{self.endpoint}{TRIM_PATH}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            removed: int = json.loads(response.read())["removed"]
        return removed

    @property
    def environment(self) -> dict[str, str]:
        """What points the AWS CLI, boto3 or a Lambda's own clients at this embedded AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self, service: str, *, max_attempts: int = 3) -> Any:
        # No client-side parameter validation: the runtime's calls are fixed shapes, and validating
        # every GetRecords/PutObject cost ~10 % of the pipeline's throughput (bench_pipeline).
        # One session for every client, so service models are loaded once; creating clients from one
        # session is not thread-safe (the clients are), hence the lock.
        with self._session_lock:
            if self._session is None:
                self._session = _fast_timestamp_session()
            return self._session.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.endpoint,
                region_name=self.region,
                config=Config(
                    retries={"max_attempts": max_attempts, "mode": "standard"}, parameter_validation=False
                ),
                **CREDENTIALS,
            )


def _utc_timestamp(value: Any) -> datetime:
    # botocore builds a dateutil tzlocal() for every timestamp it parses: on GetRecords (one
    # ApproximateArrivalTimestamp per record) that was ~40 % of the local Firehose's read time.
    # The instant is the same; only the zone it is expressed in differs (UTC).
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return botocore.utils.parse_timestamp(value)


def _fast_timestamp_session() -> boto3.session.Session:
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_utc_timestamp)
    return boto3.session.Session(botocore_session=core)


# --- deploying the stack ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployedStack:
    name: str
    outputs: dict[str, str]
    # logical id -> physical id, for every resource the stack created
    resources: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    # resource types of the template that moto (with MODELS) does not create locally
    skipped_types: tuple[str, ...] = ()


class StackDeployError(RuntimeError):
    pass


def deploy_stack(
    aws: EmbeddedAws,
    lambda_zip: Path,
    *,
    template_path: Path = TEMPLATE_PATH,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    code_bucket: str = "ctr-billing-lambda-code",
    timeout_seconds: float = 120.0,
) -> DeployedStack:
    """Upload the Lambda zip into the embedded S3 and create the stack from the template through the
    CloudFormation API (``LambdaCodeBucket`` / ``LambdaCodeKey`` point at the upload)."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=code_bucket)
    code_key = f"lambda/{lambda_zip.name}"
    s3.upload_file(str(lambda_zip), code_bucket, code_key)
    values = {"LambdaCodeBucket": code_bucket, "LambdaCodeKey": code_key, **(parameters or {})}
    cloudformation: CloudFormationClient = aws.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=template_path.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + timeout_seconds
    while True:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            reason = stack.get("StackStatusReason", "")
            raise StackDeployError(f"stack {stack_name} ended in {status} {reason}".strip())
        time.sleep(0.2)
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    paginator = cloudformation.get_paginator("list_stack_resources")
    resources = {
        summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
        for page in paginator.paginate(StackName=stack_name)
        for summary in page["StackResourceSummaries"]
    }
    parameter_values = {
        parameter["ParameterKey"]: parameter.get("ParameterValue", "")
        for parameter in stack.get("Parameters", [])
    }
    return DeployedStack(stack_name, outputs, resources, parameter_values, skipped_types(template_path))


def skipped_types(template_path: Path = TEMPLATE_PATH) -> tuple[str, ...]:
    """Resource types of the template that the embedded CloudFormation skips (no model)."""
    from firehose.deploy.template import load_template

    declared = {resource["Type"] for resource in load_template(template_path)["Resources"].values()}
    modelled = set(cfn_parsing.get_model_map())
    return tuple(
        sorted(kind for kind in declared if kind not in modelled and not kind.startswith("Custom::"))
    )


def lambda_zip(output_dir: Path) -> Path:
    """The Lambda deployment zip: ``firehose.deploy.packaging.build_lambda_zip`` when the packaging module is
    present, else the Lambda sources (``transform/``, ``lookup/``) zipped as they are."""
    try:
        from firehose.deploy.packaging import build_lambda_zip  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _zip_sources(output_dir)
    path: Path = build_lambda_zip(output_dir)
    return path


def _zip_sources(output_dir: Path) -> Path:
    import zipfile

    root = Path(__file__).resolve().parents[2]
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "ctr-billing-lambda.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in ("transform", "lookup"):
            for source in sorted((root / package).rglob("*.py")):
                archive.write(source, source.relative_to(root).as_posix())
    return path
