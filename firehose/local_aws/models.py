"""CloudFormation models for the resource types of ``cloudformation/template.yaml`` that moto skips.

moto's CloudFormation skips (with a warning) every type it does not model. Each ``CloudFormationModel``
subclass below teaches it one that the template uses: Firehose delivery streams, Glue databases and
tables, Athena work groups and named queries, S3 bucket and SQS queue policies. Each creates the resource
in moto's own backend, so the service APIs describe exactly what the template declared.

This is moto's extension point, not a change to its behaviour: moto builds its model map from
``CloudFormationModel.__subclasses__()`` behind an ``lru_cache``, which ``register_models()`` clears.
Changes to moto's own behaviour live in ``firehose.local_aws.moto_fixes``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from moto.athena.models import athena_backends
from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.firehose.models import firehose_backends
from moto.glue.models import glue_backends
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends


def without_no_value(value: Any) -> Any:
    """moto resolves ``AWS::NoValue`` to None and keeps it in lists; CloudFormation removes it."""
    if isinstance(value, dict):
        return {key: without_no_value(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_no_value(item) for item in value if item is not None]
    return value


def resolved_properties(cloudformation_json: Mapping[str, Any]) -> dict[str, Any]:
    return dict(without_no_value(cloudformation_json.get("Properties") or {}))


def _stringify_parameters(config: Any) -> Any:
    """Firehose ProcessorParameter values are strings in the API; YAML may give numbers."""
    if isinstance(config, dict):
        if set(config) == {"ParameterName", "ParameterValue"}:
            return {"ParameterName": config["ParameterName"], "ParameterValue": str(config["ParameterValue"])}
        return {key: _stringify_parameters(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_stringify_parameters(item) for item in config]
    return config


def _configurations(create: Callable[..., Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """Every ``*_configuration`` (and ``*_configuration_input``) argument the backend's create call
    takes, from the CloudFormation property of that name (``extended_s3_destination_configuration`` <-
    ``ExtendedS3DestinationConfiguration``). moto's releases differ in the destinations they take (5.2.3
    added Iceberg) and require each as an argument; ``None`` is how they say "not this destination"."""
    return {
        parameter: properties.get("".join(part.capitalize() for part in parameter.split("_")))
        for parameter in inspect.signature(create).parameters
        if parameter.endswith(("_configuration", "_configuration_input"))
    }


class _ModelDefaults:
    """What every project model shares: its CloudFormation type, name property and ``Fn::GetAtt``
    attributes declared as class attributes (moto asks for them through the methods below); created
    synchronously; an update keeps the resource unless the model says otherwise. A mixin, because moto
    finds models among the *direct* subclasses of ``CloudFormationModel``."""

    CFN_TYPE: ClassVar[str]
    # The property that names the resource ("" when the template cannot name it).
    NAME_PROPERTY: ClassVar[str] = ""
    ATTRIBUTES: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def cloudformation_type(cls) -> str:
        return cls.CFN_TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return cls.NAME_PROPERTY

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

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

    CFN_TYPE = "AWS::KinesisFirehose::DeliveryStream"
    NAME_PROPERTY = "DeliveryStreamName"
    ATTRIBUTES = frozenset({"Arn"})

    def __init__(self, name: str, arn: str) -> None:
        self.name = name
        self.arn = arn

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
        properties = _stringify_parameters(resolved_properties(cloudformation_json))
        name = properties.get("DeliveryStreamName") or resource_name[:64]
        backend = firehose_backends[account_id][region_name]
        arn = backend.create_delivery_stream(
            region=region_name,
            delivery_stream_name=name,
            delivery_stream_type=properties.get("DeliveryStreamType", "DirectPut"),
            tags=properties.get("Tags") or [],
            **_configurations(backend.create_delivery_stream, properties),
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

    CFN_TYPE = "AWS::Glue::Database"

    def __init__(self, name: str) -> None:
        self.name = name

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
        database_input = dict(resolved_properties(cloudformation_json).get("DatabaseInput") or {})
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
        database_input = dict(resolved_properties(cloudformation_json).get("DatabaseInput") or {})
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

    CFN_TYPE = "AWS::Glue::Table"

    def __init__(self, database_name: str, name: str) -> None:
        self.database_name = database_name
        self.name = name

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
        properties = resolved_properties(cloudformation_json)
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
        properties = resolved_properties(cloudformation_json)
        table_input = dict(properties.get("TableInput") or {})
        table_input.setdefault("Name", original_resource.name)
        backend = glue_backends[account_id][region_name]
        backend.get_table(original_resource.database_name, original_resource.name).update(table_input)
        return original_resource  # type: ignore[no-any-return]

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        database = resolved_properties(cloudformation_json).get("DatabaseName")
        backend = glue_backends[account_id][region_name]
        if database in backend.databases and resource_name in backend.databases[database].tables:
            backend.delete_table(database, resource_name)


class AthenaWorkGroupModel(_ModelDefaults, CloudFormationModel):
    """``AWS::Athena::WorkGroup`` (Ref = name). CloudFormation's ``WorkGroupConfiguration`` is the API's
    ``Configuration``."""

    CFN_TYPE = "AWS::Athena::WorkGroup"
    NAME_PROPERTY = "Name"

    def __init__(self, name: str) -> None:
        self.name = name

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
        properties = resolved_properties(cloudformation_json)
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

    CFN_TYPE = "AWS::Athena::NamedQuery"
    NAME_PROPERTY = "Name"
    ATTRIBUTES = frozenset({"NamedQueryId"})

    def __init__(self, query_id: str) -> None:
        self.query_id = query_id

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
        properties = resolved_properties(cloudformation_json)
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

    CFN_TYPE = "AWS::S3::BucketPolicy"

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

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
        properties = resolved_properties(cloudformation_json)
        bucket = properties["Bucket"]
        s3_backends[account_id]["global"].put_bucket_policy(bucket, cls.policy_text(properties).encode())
        return cls(bucket)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        bucket = resolved_properties(cloudformation_json).get("Bucket")
        backend = s3_backends[account_id]["global"]
        if bucket in backend.buckets:
            backend.delete_bucket_policy(bucket)


def _queue_names(urls: list[Any]) -> list[str]:
    """Queue names from the queue URLs a ``Ref`` to an ``AWS::SQS::Queue`` gives."""
    return [str(url).rstrip("/").rsplit("/", 1)[-1] for url in urls]


class SqsQueuePolicyModel(_AttachedPolicy, CloudFormationModel):
    """``AWS::SQS::QueuePolicy``: set as each queue's ``Policy`` attribute (``Queues`` are queue URLs)."""

    CFN_TYPE = "AWS::SQS::QueuePolicy"

    def __init__(self, queue_names: list[str]) -> None:
        self.queue_names = queue_names

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
        properties = resolved_properties(cloudformation_json)
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
        for name in _queue_names(resolved_properties(cloudformation_json).get("Queues", [])):
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
