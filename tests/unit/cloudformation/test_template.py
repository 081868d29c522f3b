"""cloudformation/template.yaml against DESIGN §4-§6 and the code it deploys.

Names, keys and env vars are read from the template and the code; only the spec's own values (the
bucket layout of DESIGN §6) are written here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from firehose.deploy.template import lambda_environment, resource_properties, resources_of_type
from lookup.directory import AGENT_ID_ATTRIBUTE, EXTENSION_ATTRIBUTE, EXTENSION_INDEX
from lookup.settings import LookupSettings
from transform.core.columns import COLUMNS, LAKE_TABLE, PARTITION_KEYS
from transform.core.rules import Outcome
from transform.core.settings import OutputFormat, TransformSettings
from transform.stages.ledger_dynamodb import KEY_ATTRIBUTE, TTL_ATTRIBUTE

Template = dict[str, Any]

KEY_ARN = {"Fn::GetAtt": ["BillingKey", "Arn"]}
BUCKETS = ("RawBucket", "VendorBucket", "LakeBucket", "AthenaResultsBucket", "AccessLogsBucket")
ERROR_PREFIX = "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
# DESIGN §6: delivery stream -> (bucket, data prefix).
LAYOUT = {
    "RawDeliveryStream": ("RawBucket", "ctr/!{timestamp:yyyy/MM/dd/HH}/"),
    "VendorDeliveryStream": ("VendorBucket", "billing/!{timestamp:yyyy/MM/dd/HH}/"),
    "LakeDeliveryStream": (
        "LakeBucket",
        f"{LAKE_TABLE}/year=!{{partitionKeyFromLambda:year}}/month=!{{partitionKeyFromLambda:month}}"
        "/day=!{partitionKeyFromLambda:day}/",
    ),
}
# The only actions allowed `Resource: "*"` in an identity policy: X-Ray's PutTraceSegments and
# PutTelemetryRecords have no resource-level permissions.
WILDCARD_RESOURCE_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
# In a KMS key policy, "Resource": "*" means "this key" (the only allowed form).
KEY_POLICY_RESOURCES = ("BillingKey",)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a policy document, both branches of a conditional (Fn::If) one."""
    for statement in _as_list(document.get("Statement", [])):
        if "Fn::If" in statement:
            _, when_true, when_false = statement["Fn::If"]
            yield from (branch for branch in (when_true, when_false) if branch != {"Ref": "AWS::NoValue"})
        else:
            yield statement


def _policy_documents(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """(logical ID, policy document) for every role policy, managed policy, key policy and bucket policy."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            yield logical_id, properties["AssumeRolePolicyDocument"]
            for policy in properties.get("Policies", []):
                yield logical_id, policy["PolicyDocument"]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy"):
            yield logical_id, properties["PolicyDocument"]
        elif resource["Type"] == "AWS::KMS::Key":
            yield logical_id, properties["KeyPolicy"]


def _bucket_policy_of(template: Template, bucket: str) -> dict[str, Any]:
    policies = [
        properties
        for _, resource in resources_of_type(template, "AWS::S3::BucketPolicy")
        if (properties := resource["Properties"])["Bucket"] == {"Ref": bucket}
    ]
    assert len(policies) == 1, f"{bucket} must have exactly one bucket policy"
    return policies[0]["PolicyDocument"]


# ---- resolving the few intrinsics the Lambda environments use ------------------------------------


def _resolve(value: Any, parameters: Mapping[str, str], conditions: Mapping[str, bool]) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return parameters.get(argument, f"physical-{argument}")
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return _resolve(when_true if conditions[condition] else when_false, parameters, conditions)
        if function == "Fn::Sub":
            return re.sub(
                r"\$\{([^}!]+)\}", lambda m: parameters.get(m.group(1), f"physical-{m.group(1)}"), argument
            )
    return value


def _evaluate(value: Any, names: Mapping[str, str]) -> Any:
    """Ref, Fn::Sub (both forms), Fn::Select and Fn::Split over ``names`` (parameters, pseudo parameters)."""
    if not (isinstance(value, dict) and len(value) == 1):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return names[argument]
    if function == "Fn::Select":
        return _evaluate(argument[1], names)[int(argument[0])]
    if function == "Fn::Split":
        return str(_evaluate(argument[1], names)).split(argument[0])
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        scope = {**names, **{name: _evaluate(v, names) for name, v in variables.items()}}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: str(scope[m.group(1)]), text)
    raise AssertionError(f"{function} is not evaluated here")


def _environment(template: Template, function: str, parameters: Mapping[str, str]) -> dict[str, str]:
    conditions = {"CreateProviderDirectory": not parameters.get("ProviderDirectoryTableName")}
    merged = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()} | dict(
        parameters
    )
    return {
        name: str(_resolve(value, merged, conditions))
        for name, value in lambda_environment(template, function).items()
    }


# ---- outputs -------------------------------------------------------------------------------------


def test_seed_and_contract_outputs_point_at_their_resources(cfn_template: Template) -> None:
    # GIVEN the outputs a typical Connect CTR deployment documents, and the contract's others
    outputs = cfn_template["Outputs"]

    # THEN each names the resource it stands for
    assert outputs["ContactTraceRecordsBucket"]["Value"] == {"Ref": "RawBucket"}
    assert outputs["ContactTraceRecordsCSVBucket"]["Value"] == {"Ref": "VendorBucket"}
    assert outputs["ContactTraceRecordsStream"]["Value"] == {"Ref": "ContactTraceRecordsStream"}
    assert outputs["ProcessCTRLambda"]["Value"] == {"Ref": "TransformCsvFunction"}
    assert outputs["LakeBucket"]["Value"] == {"Ref": "LakeBucket"}
    assert outputs["AthenaWorkGroup"]["Value"] == {"Ref": "AthenaWorkGroup"}
    assert outputs["AgentExtensionByAgentIdFunctionArn"]["Value"] == {
        "Fn::GetAtt": ["AgentExtensionByAgentIdFunction", "Arn"]
    }
    assert outputs["AgentByExtensionFunctionArn"]["Value"] == {
        "Fn::GetAtt": ["AgentByExtensionFunction", "Arn"]
    }
    for stream in LAYOUT:
        assert outputs[stream]["Value"] == {"Ref": stream}
    assert {"GlueTable", "ProviderDirectoryTable", "BillingLedgerTable"} <= outputs.keys()


# ---- buckets -------------------------------------------------------------------------------------


def test_exactly_the_designed_buckets_exist(cfn_template: Template) -> None:
    assert {logical_id for logical_id, _ in resources_of_type(cfn_template, "AWS::S3::Bucket")} == set(
        BUCKETS
    )


@pytest.mark.parametrize("bucket", BUCKETS)
def test_every_bucket_is_private_versioned_encrypted_logged_and_expiring(
    cfn_template: Template, bucket: str
) -> None:
    # GIVEN a bucket of the stack
    properties = resource_properties(cfn_template, bucket)

    # THEN public access is blocked four ways and ACLs are off
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    # AND versioning is on
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    # AND objects default to SSE-KMS with the project's key and a bucket key, except in the access-log
    # bucket: S3 server access logging delivers to SSE-S3 targets only (an accepted exception)
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    if bucket == "AccessLogsBucket":
        assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    else:
        assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}
        assert rule["BucketKeyEnabled"] is True
    # AND every rule of the lifecycle is enabled; stale versions and uploads are cleaned up
    rules = properties["LifecycleConfiguration"]["Rules"]
    assert rules
    assert all(rule["Status"] == "Enabled" for rule in rules)
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules)


def _days(value: Any, parameters: Mapping[str, Any]) -> int:
    return int(parameters[value["Ref"]]) if isinstance(value, dict) else int(value)


@pytest.mark.parametrize("bucket", BUCKETS)
@pytest.mark.parametrize("bound", ["MinValue", "Default"])
def test_every_lifecycle_rule_expires_objects_only_after_their_transitions(
    cfn_template: Template, bucket: str, bound: str
) -> None:
    # GIVEN every day-count parameter at its lowest accepted value (or its default)
    parameters = {
        name: spec[bound]
        for name, spec in cfn_template["Parameters"].items()
        if spec["Type"] == "Number" and bound in spec
    }
    assert bound != "MinValue" or "RetentionDays" in parameters, "RetentionDays needs a MinValue"

    # WHEN reading the bucket's lifecycle rules
    rules = resource_properties(cfn_template, bucket)["LifecycleConfiguration"]["Rules"]

    # THEN S3 accepts each: a rule's objects (and noncurrent versions) move before they expire
    for rule in rules:
        for transitions, expiration, days in (
            ("Transitions", rule.get("ExpirationInDays"), "TransitionInDays"),
            (
                "NoncurrentVersionTransitions",
                rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays"),
                "TransitionInDays",
            ),
        ):
            for transition in rule.get(transitions, []):
                if expiration is not None:
                    assert _days(transition[days], parameters) < _days(expiration, parameters), rule["Id"]


@pytest.mark.parametrize("bucket", [b for b in BUCKETS if b != "AccessLogsBucket"])
def test_every_data_bucket_logs_access_to_the_log_bucket_under_its_own_prefix(
    cfn_template: Template, bucket: str
) -> None:
    logging = resource_properties(cfn_template, bucket)["LoggingConfiguration"]
    assert logging["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    prefixes = [
        resource_properties(cfn_template, other)["LoggingConfiguration"]["LogFilePrefix"]
        for other in BUCKETS
        if other not in ("AccessLogsBucket", bucket)
    ]
    assert logging["LogFilePrefix"].endswith("/")
    assert not any(p.startswith(logging["LogFilePrefix"]) for p in prefixes)


def test_log_bucket_accepts_only_s3_log_delivery_from_this_account_for_the_stack_buckets(
    cfn_template: Template,
) -> None:
    statements = list(_statements(_bucket_policy_of(cfn_template, "AccessLogsBucket")))
    (delivery,) = [s for s in statements if s["Effect"] == "Allow"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Action"] == "s3:PutObject"
    assert delivery["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    sources = delivery["Condition"]["ArnLike"]["aws:SourceArn"]
    assert sorted(s["Fn::GetAtt"][0] for s in sources) == sorted(
        b for b in BUCKETS if b != "AccessLogsBucket"
    )


@pytest.mark.parametrize("bucket", BUCKETS)
def test_every_bucket_policy_denies_requests_without_tls(cfn_template: Template, bucket: str) -> None:
    statements = list(_statements(_bucket_policy_of(cfn_template, bucket)))
    denials = [
        s
        for s in statements
        if s["Effect"] == "Deny"
        and s["Principal"] == "*"
        and s["Action"] == "s3:*"
        and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denials) == 1
    assert denials[0]["Resource"] == [
        {"Fn::GetAtt": [bucket, "Arn"]},
        {"Fn::Sub": f"${{{bucket}.Arn}}/*"},
    ]


@pytest.mark.parametrize(
    "logical_id", [*BUCKETS, "BillingKey", "ProviderDirectoryTable", "BillingLedgerTable"]
)
def test_billing_data_survives_stack_deletion_and_replacement(
    cfn_template: Template, logical_id: str
) -> None:
    resource = cfn_template["Resources"][logical_id]
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"


# ---- vendor access and the DESIGN §6 layout --------------------------------------------------------


def _vendor_readable_prefixes(template: Template) -> set[str]:
    """Object-key prefixes the vendor principal may read or list in the vendor bucket."""
    prefixes: set[str] = set()
    for statement in _statements(_bucket_policy_of(template, "VendorBucket")):
        if statement["Effect"] != "Allow":
            continue
        assert statement["Principal"] == {"AWS": {"Ref": "VendorPrincipalArn"}}
        for resource in _as_list(statement["Resource"]):
            if "Fn::Sub" in resource:
                prefix = resource["Fn::Sub"].removeprefix("${VendorBucket.Arn}/")
                assert prefix.endswith("/*"), f"vendor object grant must be a whole prefix: {prefix}"
                prefixes.add(prefix.removesuffix("*"))
        for pattern in _as_list(statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])):
            prefixes.add(pattern.removesuffix("*"))
    return prefixes


def test_vendor_reads_and_lists_only_billing_and_settled(cfn_template: Template) -> None:
    # GIVEN the vendor bucket's policy
    allowed = [
        s for s in _statements(_bucket_policy_of(cfn_template, "VendorBucket")) if s["Effect"] == "Allow"
    ]

    # THEN the vendor gets read-only actions, and only under billing/ and settled/
    assert sorted(action for s in allowed for action in _as_list(s["Action"])) == [
        "s3:GetObject",
        "s3:ListBucket",
    ]
    assert _vendor_readable_prefixes(cfn_template) == {"billing/", "settled/"}
    (listing,) = [s for s in allowed if s["Action"] == "s3:ListBucket"]
    assert listing["Resource"] == {"Fn::GetAtt": ["VendorBucket", "Arn"]}


def test_no_error_prefix_falls_under_a_prefix_the_vendor_may_read(cfn_template: Template) -> None:
    # GIVEN what the vendor may read, and where each delivery stream into the vendor bucket writes
    readable = _vendor_readable_prefixes(cfn_template)
    for _, stream in resources_of_type(cfn_template, "AWS::KinesisFirehose::DeliveryStream"):
        destination = stream["Properties"]["ExtendedS3DestinationConfiguration"]
        if destination["BucketARN"] != {"Fn::GetAtt": ["VendorBucket", "Arn"]}:
            continue
        # THEN raw CTRs in error output are out of the vendor's reach, and the CSV data is within it
        assert not any(destination["ErrorOutputPrefix"].startswith(prefix) for prefix in readable)
        assert any(destination["Prefix"].startswith(prefix) for prefix in readable)


@pytest.mark.parametrize("stream", sorted(LAYOUT))
def test_delivery_streams_write_the_design_layout_encrypted_and_logged(
    cfn_template: Template, stream: str
) -> None:
    # GIVEN a delivery stream
    properties = resource_properties(cfn_template, stream)
    bucket, data_prefix = LAYOUT[stream]
    destination = properties["ExtendedS3DestinationConfiguration"]

    # THEN it reads the CTR stream
    assert properties["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert properties["KinesisStreamSourceConfiguration"]["KinesisStreamARN"] == {
        "Fn::GetAtt": ["ContactTraceRecordsStream", "Arn"]
    }
    # AND writes data and errors under the DESIGN §6 prefixes, apart
    assert destination["BucketARN"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert destination["Prefix"] == data_prefix
    assert destination["ErrorOutputPrefix"] == ERROR_PREFIX
    assert not ERROR_PREFIX.startswith(data_prefix.split("!")[0])
    # AND encrypts with the project's key and logs to CloudWatch
    assert destination["EncryptionConfiguration"] == {"KMSEncryptionConfig": {"AWSKMSKeyARN": KEY_ARN}}
    assert destination["CloudWatchLoggingOptions"]["Enabled"] is True


def test_raw_archive_is_gzip_json_lines_without_a_lambda(cfn_template: Template) -> None:
    destination = resource_properties(cfn_template, "RawDeliveryStream")["ExtendedS3DestinationConfiguration"]
    assert destination["CompressionFormat"] == "GZIP"
    assert [p["Type"] for p in destination["ProcessingConfiguration"]["Processors"]] == [
        "AppendDelimiterToRecord"
    ]


@pytest.mark.parametrize(
    ("stream", "function"),
    [("VendorDeliveryStream", "TransformCsvFunction"), ("LakeDeliveryStream", "TransformJsonFunction")],
)
def test_transforming_streams_call_their_lambda(cfn_template: Template, stream: str, function: str) -> None:
    destination = resource_properties(cfn_template, stream)["ExtendedS3DestinationConfiguration"]
    (processor,) = destination["ProcessingConfiguration"]["Processors"]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert processor["Type"] == "Lambda"
    assert parameters["LambdaArn"] == {"Fn::GetAtt": [function, "Arn"]}
    assert int(parameters["NumberOfRetries"]) >= 1


def test_lake_stream_partitions_by_the_lambda_keys_and_converts_to_parquet_from_glue(
    cfn_template: Template,
) -> None:
    destination = resource_properties(cfn_template, "LakeDeliveryStream")[
        "ExtendedS3DestinationConfiguration"
    ]
    assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
    for key in PARTITION_KEYS:
        assert f"{key}=!{{partitionKeyFromLambda:{key}}}/" in destination["Prefix"]
    conversion = destination["DataFormatConversionConfiguration"]
    assert conversion["Enabled"] is True
    assert "OpenXJsonSerDe" in conversion["InputFormatConfiguration"]["Deserializer"]
    assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
    assert conversion["SchemaConfiguration"]["DatabaseName"] == {"Ref": "GlueDatabase"}
    assert conversion["SchemaConfiguration"]["TableName"] == {"Ref": "BillingRowsTable"}
    # Firehose requires at least 64 MiB buffers with dynamic partitioning and format conversion.
    assert destination["BufferingHints"]["SizeInMBs"] >= 64


# ---- Glue ------------------------------------------------------------------------------------------


def test_glue_table_columns_are_the_transform_columns_with_their_types(cfn_template: Template) -> None:
    # GIVEN the Glue table of the data lake
    table = resource_properties(cfn_template, "BillingRowsTable")["TableInput"]

    # THEN its name and columns are the registry's, in order, with matching types and descriptions
    assert table["Name"] == LAKE_TABLE
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == [
        (column.name, column.type.glue_type) for column in COLUMNS
    ]
    assert [c.get("Comment") for c in table["StorageDescriptor"]["Columns"]] == [
        c.description for c in COLUMNS
    ]
    # AND it is partitioned by the Lambda's partition keys, as strings, projected
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        (key, "string") for key in PARTITION_KEYS
    ]
    assert table["Parameters"]["projection.enabled"] == "true"
    template_location = table["Parameters"]["storage.location.template"]["Fn::Sub"]
    assert template_location == (
        f"s3://${{LakeBucket}}/{LAKE_TABLE}/" + "/".join(f"{key}=${{!{key}}}" for key in PARTITION_KEYS) + "/"
    )
    for key in PARTITION_KEYS:
        assert f"projection.{key}.type" in table["Parameters"]


def test_athena_workgroup_enforces_encrypted_results(cfn_template: Template) -> None:
    configuration = resource_properties(cfn_template, "AthenaWorkGroup")["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["ResultConfiguration"]["EncryptionConfiguration"] == {
        "EncryptionOption": "SSE_KMS",
        "KmsKey": KEY_ARN,
    }
    assert configuration["ResultConfiguration"]["OutputLocation"]["Fn::Sub"].startswith(
        "s3://${AthenaResultsBucket}/"
    )


# ---- IAM -------------------------------------------------------------------------------------------


def test_no_statement_allows_every_action(cfn_template: Template) -> None:
    for logical_id, document in _policy_documents(cfn_template):
        for statement in _statements(document):
            actions = _as_list(statement.get("Action", []))
            assert "*" not in actions, f"{logical_id} {statement.get('Sid')}: Action '*'"
            if statement["Effect"] == "Allow":
                assert not any(a.endswith(":*") for a in actions if a != "kms:*"), (
                    f"{logical_id}: service-wide"
                )


def test_wildcard_resources_only_where_aws_requires_them(cfn_template: Template) -> None:
    # GIVEN every Allow statement on Resource "*"
    found = {}
    for logical_id, document in _policy_documents(cfn_template):
        for statement in _statements(document):
            if statement["Effect"] == "Allow" and "*" in _as_list(statement.get("Resource", [])):
                found[(logical_id, statement.get("Sid"))] = set(_as_list(statement["Action"]))

    # THEN outside the key policy (where "*" means the key itself) they are X-Ray's unscoped actions only
    identity = {where: actions for where, actions in found.items() if where[0] not in KEY_POLICY_RESOURCES}
    assert identity, "the Lambda roles' X-Ray statements are expected here"
    for where, actions in identity.items():
        assert actions <= WILDCARD_RESOURCE_ACTIONS, where
    assert {
        ("TransformCsvRole", "XRayTraces"),
        ("TransformJsonRole", "XRayTraces"),
        ("LookupRole", "XRayTraces"),
    } <= set(identity)


def test_no_allow_statement_grants_everyone_except_connect_pinned_by_conditions(
    cfn_template: Template,
) -> None:
    # GIVEN every Allow statement with a principal
    open_to_everyone = []
    for logical_id, document in _policy_documents(cfn_template):
        for statement in _statements(document):
            if statement["Effect"] == "Allow" and "Principal" in statement:
                principal = statement["Principal"]
                if principal == "*" or (isinstance(principal, dict) and principal.get("AWS") == "*"):
                    open_to_everyone.append((logical_id, statement))

    # THEN the only "*" principal is the key's grant to Amazon Connect's service-linked role (its name has
    # a random suffix), pinned to this account, to Kinesis and this stack's stream, and to one action
    assert [(logical_id, s["Sid"]) for logical_id, s in open_to_everyone] == [
        ("BillingKey", "ConnectWritesCtrStream")
    ]
    statement = open_to_everyone[0][1]
    assert statement["Action"] == "kms:GenerateDataKey"
    equals = statement["Condition"]["StringEquals"]
    assert equals["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
    assert equals["kms:ViaService"] == {"Fn::Sub": "kinesis.${AWS::Region}.amazonaws.com"}
    stream_name = resource_properties(cfn_template, "ContactTraceRecordsStream")["Name"]["Fn::Sub"]
    assert equals["kms:EncryptionContext:aws:kinesis:arn"]["Fn::Sub"].endswith(f":stream/{stream_name}")
    assert statement["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"].endswith(
        ":role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect*"
    )


def test_key_is_rotated_and_used_by_services_only_through_this_pipeline(cfn_template: Template) -> None:
    properties = resource_properties(cfn_template, "BillingKey")
    assert properties["EnableKeyRotation"] is True
    statements = {s["Sid"]: s for s in _statements(properties["KeyPolicy"])}
    # account principals get crypto only via the pipeline's services, never directly
    usage = statements["UseThroughPipelineServices"]
    assert usage["Condition"]["StringEquals"]["kms:CallerAccount"] == {"Ref": "AWS::AccountId"}
    services = {s["Fn::Sub"].split(".")[0] for s in usage["Condition"]["StringEquals"]["kms:ViaService"]}
    assert services == {"kinesis", "s3", "dynamodb", "lambda", "sns", "sqs"}
    administration = statements["KeyAdministrationByAccount"]
    assert not {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:*"} & set(administration["Action"])
    # the vendor may only decrypt, and only through S3
    vendor = statements["VendorReadsBillingObjects"]
    assert vendor["Action"] == "kms:Decrypt"
    assert vendor["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "s3.${AWS::Region}.amazonaws.com"
    }


@pytest.mark.parametrize("project_name", ["ctr-billing", "p" * 32])
def test_the_vendor_decrypts_objects_of_the_vendor_bucket_only(
    cfn_template: Template, project_name: str
) -> None:
    # GIVEN a stack of that project name (the longest its pattern allows, too)
    names = {
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/billing/8f3e6a10-4b1c-11f1-9d2e-0a1b2c3d4e5f",
        "ProjectName": project_name,
    }
    assert re.fullmatch(cfn_template["Parameters"]["ProjectName"]["AllowedPattern"], project_name)

    # WHEN the vendor bucket's name and the vendor's decrypt condition are evaluated
    bucket_name = _evaluate(resource_properties(cfn_template, "VendorBucket")["BucketName"], names)
    statements = {
        s["Sid"]: s for s in _statements(resource_properties(cfn_template, "BillingKey")["KeyPolicy"])
    }
    condition = statements["VendorReadsBillingObjects"]["Condition"]

    # THEN the bucket name is unique to the stack and valid for S3
    assert bucket_name == f"{project_name}-vendor-0a1b2c3d4e5f"
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket_name)
    # AND S3 may decrypt for the vendor only objects whose encryption context is that bucket: with S3
    # Bucket Keys (on for every bucket) the context is the bucket's ARN, so raw CTRs and the lake stay shut
    assert set(condition) == {"StringEquals"}
    assert _evaluate(condition["StringEquals"]["kms:EncryptionContext:aws:s3:arn"], names) == (
        f"arn:aws:s3:::{bucket_name}"
    )
    encryption = resource_properties(cfn_template, "VendorBucket")["BucketEncryption"]
    assert encryption["ServerSideEncryptionConfiguration"][0]["BucketKeyEnabled"] is True


# ---- encryption everywhere (DESIGN §5) ---------------------------------------------------------------


def test_stream_tables_topic_and_log_groups_use_the_project_key(cfn_template: Template) -> None:
    assert resource_properties(cfn_template, "ContactTraceRecordsStream")["StreamEncryption"] == {
        "EncryptionType": "KMS",
        "KeyId": KEY_ARN,
    }
    for logical_id, table in resources_of_type(cfn_template, "AWS::DynamoDB::Table"):
        properties = table["Properties"]
        assert properties["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": KEY_ARN,
        }
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, (
            logical_id
        )
    for _, topic in resources_of_type(cfn_template, "AWS::SNS::Topic"):
        assert topic["Properties"]["KmsMasterKeyId"] == KEY_ARN
    log_groups = list(resources_of_type(cfn_template, "AWS::Logs::LogGroup"))
    assert log_groups
    for _, group in log_groups:
        assert group["Properties"]["KmsKeyId"] == KEY_ARN
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_function_encrypts_its_environment_traces_and_logs_to_its_own_group(
    cfn_template: Template,
) -> None:
    functions = list(resources_of_type(cfn_template, "AWS::Lambda::Function"))
    assert {logical_id for logical_id, _ in functions} >= {
        "TransformCsvFunction",
        "TransformJsonFunction",
        "AgentExtensionByAgentIdFunction",
        "AgentByExtensionFunction",
    }
    for logical_id, function in functions:
        properties = function["Properties"]
        assert properties["KmsKeyArn"] == KEY_ARN, logical_id
        assert properties["TracingConfig"] == {"Mode": "PassThrough"}, logical_id
        group = properties["LoggingConfig"]["LogGroup"]["Ref"]
        assert cfn_template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"


# ---- DynamoDB shapes the code relies on ------------------------------------------------------------


def test_provider_directory_has_the_voicemail_solution_shape(cfn_template: Template) -> None:
    resource = cfn_template["Resources"]["ProviderDirectoryTable"]
    assert resource["Condition"] == "CreateProviderDirectory"
    properties = resource["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": AGENT_ID_ATTRIBUTE, "KeyType": "HASH"}]
    (index,) = properties["GlobalSecondaryIndexes"]
    assert index["IndexName"] == EXTENSION_INDEX
    assert index["KeySchema"] == [{"AttributeName": EXTENSION_ATTRIBUTE, "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert types == {AGENT_ID_ATTRIBUTE: "S", EXTENSION_ATTRIBUTE: "S"}
    assert cfn_template["Conditions"]["CreateProviderDirectory"] == {
        "Fn::Equals": [{"Ref": "ProviderDirectoryTableName"}, ""]
    }


def test_billing_ledger_is_keyed_and_expires_as_the_ledger_code_writes_it(cfn_template: Template) -> None:
    properties = resource_properties(cfn_template, "BillingLedgerTable")
    assert properties["KeySchema"] == [{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


# ---- the Lambda environments are what the code reads ------------------------------------------------

SETTINGS_PARAMETERS = {
    "BillableChannels": "VOICE,CHAT",
    "MinBillableSeconds": "7",
    "BillingTimezone": "America/New_York",
    "CsvColumns": "contact_id,call_type,duration_seconds",
    "ExtensionAttribute": "providerExt",
    "LedgerRetentionDays": "45",
}


@pytest.mark.parametrize(
    ("function", "output_format", "has_ledger"),
    [("TransformCsvFunction", OutputFormat.CSV, True), ("TransformJsonFunction", OutputFormat.JSON, False)],
)
def test_transform_environment_configures_every_setting(
    cfn_template: Template, function: str, output_format: OutputFormat, has_ledger: bool
) -> None:
    # GIVEN the function's environment with distinctive parameter values and an existing directory
    environment = _environment(
        cfn_template, function, {**SETTINGS_PARAMETERS, "ProviderDirectoryTableName": "voicemail-users"}
    )

    # WHEN the transform reads its settings at cold start
    settings = TransformSettings.from_environ(environment)

    # THEN every parameter reached the setting it is for
    assert settings.output_format is output_format
    assert settings.billable_channels == frozenset({"VOICE", "CHAT"})
    assert settings.min_billable_seconds == 7
    assert settings.billing_timezone_name == "America/New_York"
    assert settings.csv_columns == ("contact_id", "call_type", "duration_seconds")
    assert settings.extension_attribute == "providerExt"
    assert settings.directory_table == "voicemail-users"
    assert (settings.ledger_table == "physical-BillingLedgerTable") is has_ledger
    assert has_ledger or settings.ledger_table is None
    assert (settings.ledger_retention_days == 45) is has_ledger


def test_transform_defaults_are_valid_settings(cfn_template: Template) -> None:
    # GIVEN every parameter at its default (the stack creates the directory)
    environment = _environment(cfn_template, "TransformCsvFunction", {})

    # WHEN the transform reads them THEN the cold start succeeds with the created directory table
    settings = TransformSettings.from_environ(environment)
    assert settings.directory_table == "physical-ProviderDirectoryTable"
    assert settings.billing_timezone is None  # UTC
    # AND the ledger remembers billed contacts as long as the code does by default
    assert settings.ledger_retention_days == TransformSettings().ledger_retention_days


@pytest.mark.parametrize("function", ["AgentExtensionByAgentIdFunction", "AgentByExtensionFunction"])
def test_lookup_environment_names_the_directory(cfn_template: Template, function: str) -> None:
    settings = LookupSettings.from_environ(_environment(cfn_template, function, {}))
    assert settings.directory_table == "physical-ProviderDirectoryTable"


def test_handlers_are_the_contract_names(cfn_template: Template) -> None:
    handlers = {
        logical_id: function["Properties"]["Handler"]
        for logical_id, function in resources_of_type(cfn_template, "AWS::Lambda::Function")
    }
    assert (
        handlers["TransformCsvFunction"]
        == handlers["TransformJsonFunction"]
        == "transform.handler.lambda_handler"
    )
    assert handlers["AgentExtensionByAgentIdFunction"] == "lookup.handler.get_agent_extension_by_agent_id"
    assert handlers["AgentByExtensionFunction"] == "lookup.handler.get_agent_by_extension"


# ---- optional integrations ---------------------------------------------------------------------------


def test_connect_integration_exists_only_with_an_instance_and_is_scoped_to_it(cfn_template: Template) -> None:
    resources = cfn_template["Resources"]
    connect = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] in ("AWS::Connect::InstanceStorageConfig", "AWS::Connect::IntegrationAssociation")
        or (
            resource["Type"] == "AWS::Lambda::Permission"
            and resource["Properties"]["Principal"] == "connect.amazonaws.com"
        )
    }
    assert len(connect) == 5
    assert all(resources[logical_id]["Condition"] == "HasConnectInstance" for logical_id in connect)
    storage = resource_properties(cfn_template, "ConnectCtrStorageConfig")
    assert storage["ResourceType"] == "CONTACT_TRACE_RECORDS"
    assert storage["KinesisStreamConfig"]["StreamArn"] == {"Fn::GetAtt": ["ContactTraceRecordsStream", "Arn"]}
    for logical_id in connect:
        if resources[logical_id]["Type"] == "AWS::Lambda::Permission":
            assert resources[logical_id]["Properties"]["SourceArn"] == {"Ref": "ConnectInstanceArn"}


# The trigger the voicemail solution's stack gives KvsProcessRecording
# (KvsProcessRecordingEventSourceMappingKinesisDataStream in amazon-connect/voicemail-for-amazon-connect
# deployment/aws-connect-vm.template) and the Kinesis actions of its role (KvsProcessRecordingIamRole in
# source/aws-connect-vm-serverless/serverless.yml).
VOICEMAIL_TRIGGER = {"StartingPosition": "TRIM_HORIZON", "BatchSize": 10, "MaximumBatchingWindowInSeconds": 1}
VOICEMAIL_ROLE_KINESIS_ACTIONS = {
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:DescribeStream",
    "kinesis:ListStreams",
}


def test_voicemail_processor_is_repointed_at_this_stream_only_when_named(cfn_template: Template) -> None:
    # GIVEN the trigger and the role policy the stack adds for the voicemail solution's CTR reader
    mapping = cfn_template["Resources"]["VoicemailProcessorStreamMapping"]
    policy = cfn_template["Resources"]["VoicemailProcessorStreamPolicy"]
    # THEN the trigger reads this stack's stream with the voicemail stack's own settings
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["ContactTraceRecordsStream", "Arn"]}
    assert VOICEMAIL_TRIGGER.items() <= mapping["Properties"].items()
    # AND the role may read the stream as the original role could, and decrypt with the stack's key
    assert policy["Condition"] == "HasVoicemailProcessorRole"
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    resources = {str(s["Resource"]) for s in statements}
    assert resources == {str({"Fn::GetAtt": ["ContactTraceRecordsStream", "Arn"]}), str(KEY_ARN)}
    (read,) = [s for s in statements if s["Resource"] == {"Fn::GetAtt": ["ContactTraceRecordsStream", "Arn"]}]
    assert set(read["Action"]) >= VOICEMAIL_ROLE_KINESIS_ACTIONS


def test_voicemail_trigger_is_created_after_its_role_policy(cfn_template: Template) -> None:
    # GIVEN Lambda checks the function role's stream permissions when it creates the mapping
    mapping = cfn_template["Resources"]["VoicemailProcessorStreamMapping"]
    # THEN the mapping waits for the policy granting them
    assert "VoicemailProcessorStreamPolicy" in _as_list(mapping.get("DependsOn", []))
    # AND exists only when the policy does (a DependsOn on a resource not created fails the deploy)
    policy_condition = cfn_template["Resources"]["VoicemailProcessorStreamPolicy"]["Condition"]
    mapping_condition = cfn_template["Conditions"][mapping["Condition"]]
    assert {"Condition": policy_condition} in mapping_condition["Fn::And"]
    assert {"Condition": "HasVoicemailProcessorFunction"} in mapping_condition["Fn::And"]


def test_lookup_may_describe_only_the_instances_agents(cfn_template: Template) -> None:
    # GIVEN the extension lookup reads the provider's full name with DescribeUser
    resource = cfn_template["Resources"]["LookupDescribesProvidersPolicy"]
    # THEN its role may, for agents of the stack's Connect instance only, when there is one
    assert resource["Condition"] == "HasConnectInstance"
    assert resource["Properties"]["Roles"] == [{"Ref": "LookupRole"}]
    (statement,) = resource["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "connect:DescribeUser"
    assert statement["Resource"] == {"Fn::Sub": "${ConnectInstanceArn}/agent/*"}


@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("extensionNumber", True),
        ("provider_ext-2", True),
        ("provider.ext", False),
        ("ext nr", False),
        ("", False),
    ],
)
def test_extension_attribute_is_a_valid_contact_attribute_key(
    cfn_template: Template, key: str, accepted: bool
) -> None:
    # Contact-attribute keys: letters, digits, "-" and "_" (UpdateContactAttributes, Connect API Reference).
    pattern = cfn_template["Parameters"]["ExtensionAttribute"]["AllowedPattern"]
    assert (re.fullmatch(pattern, key) is not None) is accepted


# ---- alarms ------------------------------------------------------------------------------------------


def test_failed_records_alarm_watches_the_metrics_the_csv_transform_emits(cfn_template: Template) -> None:
    # GIVEN the alarm on records the transform marks ProcessingFailed
    alarm = resource_properties(cfn_template, "FailedRecordsAlarm")
    stats = [query["MetricStat"]["Metric"] for query in alarm["Metrics"] if "MetricStat" in query]
    service = lambda_environment(cfn_template, "TransformCsvFunction")["POWERTOOLS_SERVICE_NAME"]
    namespace = lambda_environment(cfn_template, "TransformCsvFunction")["POWERTOOLS_METRICS_NAMESPACE"]

    # THEN it sums the outcome metrics that mean ProcessingFailed, in the namespace and service the
    # function publishes under
    assert {metric["MetricName"] for metric in stats} == {Outcome.MALFORMED.value, Outcome.INVALID.value}
    for metric in stats:
        assert metric["Namespace"] == namespace
        assert metric["Dimensions"] == [{"Name": "service", "Value": service}]


def test_every_alarm_notifies_the_encrypted_topic(cfn_template: Template) -> None:
    alarms = list(resources_of_type(cfn_template, "AWS::CloudWatch::Alarm"))
    assert len(alarms) >= 9
    for logical_id, alarm in alarms:
        assert {"Ref": "AlarmTopic"} in alarm["Properties"]["AlarmActions"], logical_id


def test_every_lambda_function_has_an_errors_alarm(cfn_template: Template) -> None:
    # GIVEN every Lambda function the template deploys
    functions = {logical_id for logical_id, _ in resources_of_type(cfn_template, "AWS::Lambda::Function")}
    # WHEN the functions whose Errors metric some alarm watches are collected
    watched: set[str] = set()
    for _, alarm in resources_of_type(cfn_template, "AWS::CloudWatch::Alarm"):
        properties = alarm["Properties"]
        metrics = [properties] + [
            query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query
        ]
        for metric in metrics:
            if metric.get("Namespace") == "AWS/Lambda" and metric.get("MetricName") == "Errors":
                watched |= {
                    dimension["Value"]["Ref"]
                    for dimension in metric["Dimensions"]
                    if dimension["Name"] == "FunctionName"
                }
    # THEN none is left unwatched
    assert functions - watched == set()
