"""The archive lock's wiring in the template: every raw ctr/ version is locked as it arrives.

RawBucket notifies ArchiveLockQueue of each object created under ctr/, ArchiveLockFunction reads the
queue through an event source mapping and sets the retention; failures end in an alarmed dead-letter
queue. Read from the rendered template, as CloudFormation deploys it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

import pytest

from firehose.deploy.template import load_template, resource_properties, resources_of_type

Template = dict[str, Any]
KEY_ARN = {"Fn::GetAtt": ["BillingKey", "Arn"]}
QUEUE_ARN = {"Fn::GetAtt": ["ArchiveLockQueue", "Arn"]}


@pytest.fixture(scope="module")
def cfn() -> Template:
    return load_template()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(cfn: Template, role: str) -> dict[str, dict[str, Any]]:
    return {
        statement["Sid"]: statement
        for policy in resource_properties(cfn, role)["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    }


def _all_identity_statements(cfn: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in resources_of_type(cfn, "AWS::IAM::Role"):
        for policy in resource["Properties"].get("Policies", []):
            for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                yield logical_id, statement
    for logical_id, resource in resources_of_type(cfn, "AWS::IAM::Policy"):
        for statement in _as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
            yield logical_id, statement


def test_the_raw_bucket_notifies_the_lock_queue_of_every_ctr_object(cfn: Template) -> None:
    # GIVEN the raw bucket
    raw = cfn["Resources"]["RawBucket"]
    # THEN every object created under ctr/ (and nothing else) is sent to the archive lock queue
    (notification,) = raw["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "ctr/"}]
    assert notification["Queue"] == QUEUE_ARN
    # AND the bucket is created only after the queue lets S3 send (S3 checks it when saving the configuration)
    assert raw["DependsOn"] == "ArchiveLockQueuePolicy"


def test_only_the_raw_bucket_of_this_stack_may_send_to_the_lock_queue(cfn: Template) -> None:
    # GIVEN the queue policy's statement for S3
    policy = resource_properties(cfn, "ArchiveLockQueuePolicy")["PolicyDocument"]
    (send,) = [s for s in policy["Statement"] if s.get("Sid") == "RawBucketNotifications"]
    # THEN it allows SendMessage alone, to the lock queue, from the bucket named as RawBucket is named
    assert send["Principal"] == {"Service": "s3.amazonaws.com"}
    assert send["Action"] == "sqs:SendMessage" and send["Resource"] == QUEUE_ARN
    arn_text, arn_names = send["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    name_text, name_names = resource_properties(cfn, "RawBucket")["BucketName"]["Fn::Sub"]
    assert arn_text == "arn:${AWS::Partition}:s3:::" + name_text and arn_names == name_names
    assert send["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_the_key_lets_s3_encrypt_notifications_for_the_lock_queue_only(cfn: Template) -> None:
    # GIVEN the key policy's statement for the S3 service principal
    statements = resource_properties(cfn, "BillingKey")["KeyPolicy"]["Statement"]
    (s3,) = [s for s in statements if s.get("Sid") == "S3NotificationsToArchiveLockQueue"]
    # THEN it grants the two actions S3 needs, pinned by the encryption context to the lock queue's ARN
    assert sorted(s3["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    pinned = s3["Condition"]["StringEquals"]["kms:EncryptionContext:aws:sqs:arn"]["Fn::Sub"]
    queue_name = resource_properties(cfn, "ArchiveLockQueue")["QueueName"]["Fn::Sub"]
    assert pinned.endswith(":${AWS::AccountId}:" + queue_name)


def test_the_lock_function_reads_the_queue_and_reports_failed_messages_alone(cfn: Template) -> None:
    # GIVEN the event source mapping and the queues
    mapping = resource_properties(cfn, "ArchiveLockEventSource")
    queue = resource_properties(cfn, "ArchiveLockQueue")
    function = resource_properties(cfn, "ArchiveLockFunction")
    # THEN the function reads the lock queue, failing single messages rather than whole batches
    assert mapping["EventSourceArn"] == QUEUE_ARN
    assert mapping["FunctionName"] == {"Ref": "ArchiveLockFunction"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert function["Handler"] == "transform.retention.handler.lambda_handler"
    # AND a message is not redelivered while an invocation may still hold it (6x the timeout, as advised)
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    # AND a message that keeps failing moves to an encrypted dead-letter queue that raises an alarm
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["ArchiveLockDeadLetterQueue", "Arn"]
    }
    for name in ("ArchiveLockQueue", "ArchiveLockDeadLetterQueue"):
        assert resource_properties(cfn, name)["KmsMasterKeyId"] == KEY_ARN
    watched = [
        alarm["Properties"]
        for _, alarm in resources_of_type(cfn, "AWS::CloudWatch::Alarm")
        if alarm["Properties"].get("Dimensions")
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ArchiveLockDeadLetterQueue", "QueueName"]}}]
    ]
    assert [alarm["MetricName"] for alarm in watched] == ["ApproximateNumberOfMessagesVisible"]


def test_the_lock_function_may_set_retention_on_raw_ctr_versions_and_nothing_else(cfn: Template) -> None:
    # GIVEN the lock function's role
    statements = _role_statements(cfn, "ArchiveLockRole")
    # THEN its S3 rights are reading and setting retention under ctr/ of the raw bucket: no put, no delete
    s3_actions = sorted(
        action for s in statements.values() for action in _as_list(s["Action"]) if action.startswith("s3:")
    )
    assert s3_actions == ["s3:GetObjectRetention", "s3:PutObjectRetention"]
    assert statements["LockRawCtrVersions"]["Resource"] == {"Fn::Sub": "${RawBucket.Arn}/ctr/*"}
    # AND its queue rights are those of a consumer of the lock queue alone
    assert statements["ReadNotifications"]["Resource"] == QUEUE_ARN
    assert not any(a.startswith("sqs:Send") for s in statements.values() for a in _as_list(s["Action"]))


def test_both_lockers_read_one_retention_policy(cfn: Template) -> None:
    # GIVEN the two functions that lock object versions
    variables = [
        resource_properties(cfn, name)["Environment"]["Variables"]
        for name in ("ArchiveLockFunction", "SettlementExportFunction")
    ]
    # THEN they lock in the same mode for the same parameter's days
    for environment in variables:
        assert environment["OBJECT_LOCK_MODE"] == "GOVERNANCE"
        assert environment["OBJECT_LOCK_RETENTION_DAYS"] == {"Ref": "ObjectLockRetentionDays"}


def test_no_role_of_the_stack_may_bypass_governance_retention(cfn: Template) -> None:
    # GIVEN every identity policy statement of the stack
    for logical_id, statement in _all_identity_statements(cfn):
        if statement.get("Effect") != "Allow":
            continue
        # THEN none covers s3:BypassGovernanceRetention (GOVERNANCE locks hold against the stack's own roles)
        actions = _as_list(statement.get("Action", []))
        assert not any(fnmatch.fnmatchcase("s3:BypassGovernanceRetention", a) for a in actions), logical_id
