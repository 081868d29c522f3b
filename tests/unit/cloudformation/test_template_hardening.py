"""Issue 13, template findings: each test fails on the template before the fix (the rendered template)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import pytest

from firehose.deploy.template import load_template, resource_properties, resources_of_type

Template = dict[str, Any]
DELIVERY = {
    "RawDeliveryRole": ("RawBucket", "ctr"),
    "VendorDeliveryRole": ("VendorBucket", "billing"),
    "LakeDeliveryRole": ("LakeBucket", "billing_rows"),
}
LOCKED_BUCKETS = ("RawBucket", "VendorBucket", "LakeBucket")


@pytest.fixture(scope="module")
def cfn() -> Template:
    return load_template()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Any) -> Iterator[dict[str, Any]]:
    for statement in _as_list(document.get("Statement") or []):
        if "Fn::If" in statement:
            yield from (b for b in statement["Fn::If"][1:] if isinstance(b, dict))
        else:
            yield statement


def _key_statements(cfn: Template) -> dict[str, dict[str, Any]]:
    policy = resource_properties(cfn, "BillingKey")["KeyPolicy"]
    return {s["Sid"]: s for s in _statements(policy) if "Sid" in s}


def _actions(statement: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for action in _as_list(statement["Action"]):
        if isinstance(action, dict):
            for branch in action["Fn::If"][1:]:
                found.extend(_as_list(branch))
        else:
            found.append(action)
    return found


def test_only_aws_services_may_create_grants_on_the_key(cfn: Template) -> None:
    # GIVEN every Allow statement of the key policy whose actions cover kms:CreateGrant
    for sid, statement in _key_statements(cfn).items():
        covers = [a for a in _actions(statement) if fnmatch.fnmatchcase("kms:CreateGrant", a)]
        # THEN each is conditioned on kms:GrantIsForAWSResource
        if covers:
            assert statement["Condition"]["Bool"]["kms:GrantIsForAWSResource"] == "true", sid
    # AND administration names kms:CreateAlias rather than kms:Create*
    admin = _key_statements(cfn)["KeyAdministrationByAccount"]["Action"]
    assert "kms:Create*" not in admin and "kms:CreateAlias" in admin


def test_service_key_statements_are_pinned_by_encryption_context(cfn: Template) -> None:
    statements = _key_statements(cfn)
    alarms = statements["CloudWatchAlarmsPublishToTopic"]["Condition"]["StringEquals"]
    assert alarms["kms:EncryptionContext:aws:sns:topicArn"]["Fn::Sub"].endswith(":${ProjectName}-alarms")
    assert resource_properties(cfn, "AlarmTopic")["TopicName"] == {"Fn::Sub": "${ProjectName}-alarms"}
    notifications = statements["S3NotificationsToArchiveLockQueue"]["Condition"]["StringEquals"]
    assert notifications["kms:EncryptionContext:aws:sqs:arn"]["Fn::Sub"].endswith(
        ":${ProjectName}-archive-lock"
    )
    # AND no statement lets S3 log delivery use the key: it cannot deliver to an SSE-KMS bucket
    assert "S3ServerAccessLogDelivery" not in statements


@pytest.mark.parametrize("bucket", LOCKED_BUCKETS)
def test_firehose_buckets_have_object_lock_without_a_default_retention(cfn: Template, bucket: str) -> None:
    properties = resource_properties(cfn, bucket)
    assert properties["ObjectLockEnabled"] is True
    # No Rule: a default retention would make S3 demand a checksum header of every Firehose PutObject.
    assert properties["ObjectLockConfiguration"] == {"ObjectLockEnabled": "Enabled"}


def test_settled_files_are_locked_by_the_export_in_governance_mode(cfn: Template) -> None:
    environment = resource_properties(cfn, "SettlementExportFunction")["Environment"]["Variables"]
    assert environment["OBJECT_LOCK_MODE"] == "GOVERNANCE"
    assert environment["OBJECT_LOCK_RETENTION_DAYS"] == {"Ref": "ObjectLockRetentionDays"}
    assert cfn["Parameters"]["ObjectLockRetentionDays"]["Type"] == "Number"
    policy = resource_properties(cfn, "SettlementExportRole")["Policies"][0]["PolicyDocument"]
    (settled,) = [s for s in _statements(policy) if s["Sid"] == "WriteSettledFiles"]
    assert "s3:PutObjectRetention" in settled["Action"]


def _bucket_policy_statements(cfn: Template, bucket: str) -> dict[str | None, dict[str, Any]]:
    (policy,) = [
        p
        for _, p in resources_of_type(cfn, "AWS::S3::BucketPolicy")
        if p["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    return {s.get("Sid"): s for s in _statements(policy["Properties"]["PolicyDocument"])}


@pytest.mark.parametrize(
    "bucket",
    [b for b, _ in resources_of_type(load_template(), "AWS::S3::Bucket") if b != "AccessLogsBucket"],
)
def test_every_bucket_denies_puts_under_another_key(cfn: Template, bucket: str) -> None:
    statements = _bucket_policy_statements(cfn, bucket)
    key = statements["DenyOtherKmsKeys"]
    assert key["Effect"] == "Deny" and key["Action"] == "s3:PutObject"
    assert key["Condition"]["StringNotEqualsIfExists"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": {"Fn::GetAtt": ["BillingKey", "Arn"]}
    }
    other = statements["DenyOtherEncryption"]["Condition"]["StringNotEqualsIfExists"]
    assert other == {"s3:x-amz-server-side-encryption": "aws:kms"}


def test_the_access_log_bucket_takes_sse_s3_puts_only(cfn: Template) -> None:
    # GIVEN the bucket S3 delivers server access logs to, which cannot be SSE-KMS
    statements = _bucket_policy_statements(cfn, "AccessLogsBucket")
    # THEN a put naming any other encryption than its SSE-S3 default is denied
    other = statements["DenyOtherEncryption"]
    assert other["Effect"] == "Deny" and other["Action"] == "s3:PutObject"
    assert other["Condition"]["StringNotEqualsIfExists"] == {"s3:x-amz-server-side-encryption": "AES256"}
    assert "DenyOtherKmsKeys" not in statements


@pytest.mark.parametrize("role", DELIVERY)
def test_delivery_roles_touch_objects_only_under_their_prefixes(cfn: Template, role: str) -> None:
    bucket, data = DELIVERY[role]
    policy = resource_properties(cfn, role)["Policies"][0]["PolicyDocument"]
    object_resources = [
        resource
        for statement in _statements(policy)
        if any(a in ("s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload") for a in _actions(statement))
        for resource in _as_list(statement["Resource"])
    ]
    assert object_resources == [
        {"Fn::Sub": f"${{{bucket}.Arn}}/{data}/*"},
        {"Fn::Sub": f"${{{bucket}.Arn}}/errors/*"},
    ]


def test_lookups_reserve_concurrency_so_the_transforms_cannot_starve_them(cfn: Template) -> None:
    for function in ("AgentExtensionByAgentIdFunction", "AgentByExtensionFunction"):
        reserved = resource_properties(cfn, function)["ReservedConcurrentExecutions"]
        assert reserved == {
            "Fn::If": [
                "ReservesLookupConcurrency",
                {"Ref": "LookupReservedConcurrency"},
                {"Ref": "AWS::NoValue"},
            ]
        }
    assert cfn["Parameters"]["LookupReservedConcurrency"]["Default"] >= 1


def test_voicemail_trigger_sends_failed_batches_to_an_encrypted_queue(cfn: Template) -> None:
    mapping = resource_properties(cfn, "VoicemailProcessorStreamMapping")
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["VoicemailFailedBatchesQueue", "Arn"]
    }
    queue = cfn["Resources"]["VoicemailFailedBatchesQueue"]
    assert queue["Condition"] == "RepointVoicemailProcessor"
    assert queue["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["BillingKey", "Arn"]}
    policy = resource_properties(cfn, "VoicemailFailedBatchesPolicy")["PolicyDocument"]
    assert any(s.get("Sid") == "SendFailedBatches" for s in _statements(policy))


def test_log_groups_are_retained_with_the_stack(cfn: Template) -> None:
    for logical_id, resource in resources_of_type(cfn, "AWS::Logs::LogGroup"):
        assert resource["DeletionPolicy"] == "Retain", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id


def test_every_alarm_notifies_on_alarm_ok_and_insufficient_data(cfn: Template) -> None:
    for logical_id, resource in resources_of_type(cfn, "AWS::CloudWatch::Alarm"):
        properties = resource["Properties"]
        for actions in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            assert properties.get(actions) == [{"Ref": "AlarmTopic"}], (logical_id, actions)


def test_accepted_exceptions_are_recorded_with_reasons(cfn: Template) -> None:
    exceptions = {e["rule"].split()[0]: e for e in cfn["Metadata"]["AcceptedExceptions"]}
    assert set(exceptions) >= {
        "kinesis-firehose-delivery-stream-encrypted",
        "glue-data-catalog-encryption",
        "s3-bucket-default-lock-enabled",
        "iam-no-inline-policy-check",
        "s3-default-encryption-kms",
    }
    for rule, entry in exceptions.items():
        assert len(entry["reason"].split()) >= 20, rule
