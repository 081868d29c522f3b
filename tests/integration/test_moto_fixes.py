"""Each change the embedded AWS makes to moto (``firehose.local_aws.moto_fixes``), tested by what it
changes: every test here fails when the fix it ``covers`` is removed, and every fix is covered."""

from __future__ import annotations

import base64
import gc
import json
import re
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import pytest
from moto.awslambda.models import LambdaBackend
from moto.dynamodb import comparisons
from moto.dynamodb.models import dynamodb_backends
from moto.kinesis.models import Record, Shard, kinesis_backends

from firehose.local_aws import moto_fixes
from firehose.local_aws.server import ACCOUNT_ID, EmbeddedAws
from tests.support.pipeline_support import handler_zip, lambda_role, put_records

pytestmark = pytest.mark.integration

Test = TypeVar("Test", bound=Callable[..., None])
COVERED: dict[str, list[str]] = {}


def covers(fix: str) -> Callable[[Test], Test]:
    """Marks a test as the one that fails without ``fix``."""

    def mark(test: Test) -> Test:
        COVERED.setdefault(fix, []).append(test.__name__)
        return test

    return mark


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with EmbeddedAws() as embedded:
        yield embedded


# --- Kinesis -----------------------------------------------------------------------------------------


@covers("kinesis-records-untracked")
def test_records_a_trim_removes_are_freed(aws: EmbeddedAws) -> None:
    # GIVEN a one-shard stream holding 10 records, and a weak reference to the oldest
    aws.client("kinesis").create_stream(StreamName="untracked", ShardCount=1)
    put_records(aws, "untracked", (b"record" for _ in range(10)))
    stream = kinesis_backends[ACCOUNT_ID][aws.region].streams["untracked"]
    shard = next(iter(stream.shards.values()))
    oldest = weakref.ref(next(iter(shard.records.values())))

    # WHEN every record but the newest is trimmed
    removed = aws.trim_kinesis(stream.arn, {shard.shard_id: next(reversed(shard.records))})
    gc.collect()

    # THEN the trimmed records are gone from memory, not only from the shard
    assert removed == 9
    assert oldest() is None


class _PutLandsMidRead(OrderedDict[int, Record]):
    """A shard's records where another request's put lands while a read is under way, as it can: the
    server answers each request on a thread of its own."""

    def __init__(self, shard: Shard, records: dict[int, Record]) -> None:
        super().__init__(records)
        self._shard = shard
        self._landed = False

    def _land(self) -> None:
        if not self._landed:
            self._landed = True
            self._shard.put_record("late", base64.b64encode(b"late").decode(), "")

    def __getitem__(self, key: int) -> Record:
        self._land()
        return super().__getitem__(key)

    def get(self, key: int, default: Any = None) -> Any:
        self._land()
        return super().get(key, default)


def _shard(records: int) -> Shard:
    shard = Shard(0, 0, 2**128 - 1)
    for index in range(records):
        shard.put_record(f"key-{index}", base64.b64encode(b"x").decode(), "")
    return shard


@covers("kinesis-shard-reads")
def test_a_put_landing_during_get_records_does_not_break_the_read() -> None:
    # GIVEN a shard of 5 records, where a put lands while GetRecords reads it
    shard = _shard(5)
    shard.records = _PutLandsMidRead(shard, shard.records)

    # WHEN the shard is read from its start
    records, last, _ = shard.get_records("0", 10)

    # THEN the read answers the records it found (moto's own: "OrderedDict mutated during iteration")
    assert [record.sequence_number for record in records][:5] == [1, 2, 3, 4, 5]
    assert last == records[-1].sequence_number


class _NoScan(OrderedDict[int, Record]):
    """A shard's records that refuse to be listed whole."""

    def items(self) -> Any:
        raise AssertionError("the whole shard was scanned")

    def keys(self) -> Any:
        raise AssertionError("the whole shard was scanned")

    def values(self) -> Any:
        raise AssertionError("the whole shard was scanned")


@covers("kinesis-shard-reads")
def test_reads_and_puts_touch_only_the_records_they_need() -> None:
    # GIVEN a shard of 1,000 records that refuses to be listed whole
    shard = _shard(1000)
    shard.records = _NoScan(shard.records)

    # WHEN 10 records are read from the middle, the range is asked for and one more record is put
    records, last, behind = shard.get_records("500", 10)
    lowest, highest = shard.get_min_sequence_number(), shard.get_max_sequence_number()
    number = shard.put_record("key", base64.b64encode(b"y").decode(), "")

    # THEN each answers as moto's own would, by sequence number
    assert [record.sequence_number for record in records] == list(range(501, 511))
    assert (last, lowest, highest, number) == (510, 1, 1000, "1001")
    assert behind >= 0


@covers("kinesis-get-records-json")
def test_get_records_answers_without_moto_s_record_serialization(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a one-shard stream holding 3 records, and moto's per-record serialization out of reach
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName="serialized", ShardCount=1)
    put = [
        kinesis.put_record(StreamName="serialized", Data=f"r{index}".encode(), PartitionKey=f"p{index}")
        for index in range(3)
    ]
    iterator = kinesis.get_shard_iterator(
        StreamName="serialized", ShardId=put[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]

    def not_serialized(record: Record) -> dict[str, Any]:
        raise AssertionError("a record went through moto's serializer")

    monkeypatch.setattr(Record, "to_json", not_serialized)

    # WHEN they are read
    records = kinesis.get_records(ShardIterator=iterator, Limit=10)["Records"]

    # THEN GetRecords answers them with every field Kinesis sends
    assert [(r["Data"], r["PartitionKey"], r["SequenceNumber"]) for r in records] == [
        (f"r{index}".encode(), f"p{index}", put[index]["SequenceNumber"]) for index in range(3)
    ]
    assert all(record["ApproximateArrivalTimestamp"].tzinfo is not None for record in records)


def _deploy(aws: EmbeddedAws, name: str, resources: dict[str, Any]) -> dict[str, str]:
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources}))
    cloudformation.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1})
    summaries = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {summary["LogicalResourceId"]: summary["PhysicalResourceId"] for summary in summaries}


KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AccountRoot",
            "Effect": "Allow",
            "Principal": {"AWS": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"}},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}


@pytest.fixture(scope="module")
def encrypted_stream(aws: EmbeddedAws) -> dict[str, str]:
    """A stack of a KMS key (policy as a map, as in the template) and an on-demand stream encrypted with it."""
    return _deploy(
        aws,
        "fixes-encrypted-stream",
        {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {"EnableKeyRotation": True, "KeyPolicy": KEY_POLICY},
            },
            "Stream": {
                "Type": "AWS::Kinesis::Stream",
                "Properties": {
                    "Name": "fixes-on-demand",
                    "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
                    "StreamEncryption": {"EncryptionType": "KMS", "KeyId": {"Ref": "Key"}},
                },
            },
        },
    )


@covers("kinesis-stream-from-template")
def test_a_template_s_on_demand_encrypted_stream_is_created_as_declared(
    aws: EmbeddedAws, encrypted_stream: dict[str, str]
) -> None:
    # GIVEN the stack's stream WHEN it is described
    stream = aws.client("kinesis").describe_stream(StreamName=encrypted_stream["Stream"])["StreamDescription"]
    key = aws.client("kms").describe_key(KeyId=encrypted_stream["Key"])["KeyMetadata"]

    # THEN it has the API's four shards for on-demand, and SSE-KMS with the stack's key
    assert len(stream["Shards"]) == 4
    assert stream["EncryptionType"] == "KMS"
    assert stream["KeyId"] in (key["KeyId"], key["Arn"])


@covers("kms-key-policy-as-json")
def test_a_template_s_key_policy_map_is_stored_as_the_json_the_api_returns(
    aws: EmbeddedAws, encrypted_stream: dict[str, str]
) -> None:
    # GIVEN the stack's key, whose policy the template gives as a map
    kms = aws.client("kms")

    # WHEN the key and its policy are asked for
    metadata = kms.describe_key(KeyId=encrypted_stream["Key"])["KeyMetadata"]
    policy = kms.get_key_policy(KeyId=encrypted_stream["Key"], PolicyName="default")["Policy"]

    # THEN the key is described, and its policy is JSON text holding the template's statement
    assert metadata["KeyState"] == "Enabled"
    statement = json.loads(policy)["Statement"][0]
    assert (statement["Sid"], statement["Principal"]) == (
        "AccountRoot",
        {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
    )


# --- S3 ----------------------------------------------------------------------------------------------


@covers("s3-conditional-bucket-policy")
def test_a_tls_only_bucket_policy_lets_requests_in_and_its_plain_denies_still_apply(aws: EmbeddedAws) -> None:
    # GIVEN a bucket whose policy denies insecure transport (a conditional statement, as every bucket of
    # the template has) and denies deleting objects (an unconditional one)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="fixes-tls-only")
    arn = "arn:aws:s3:::fixes-tls-only"
    statements = [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "NoDeletes",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteObject",
            "Resource": f"{arn}/*",
        },
    ]
    s3.put_bucket_policy(
        Bucket="fixes-tls-only", Policy=json.dumps({"Version": "2012-10-17", "Statement": statements})
    )

    # WHEN an object is written and read, then deleted
    s3.put_object(Bucket="fixes-tls-only", Key="probe", Body=b"probe")
    body = s3.get_object(Bucket="fixes-tls-only", Key="probe")["Body"].read()
    with pytest.raises(s3.exceptions.ClientError) as denied:
        s3.delete_object(Bucket="fixes-tls-only", Key="probe")

    # THEN writing and reading work, deleting is denied, and the policy is kept whole
    assert body == b"probe"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert len(json.loads(s3.get_bucket_policy(Bucket="fixes-tls-only")["Policy"])["Statement"]) == 2


@covers("s3-bucket-from-template")
def test_a_template_s_bucket_has_the_template_s_versioning_object_lock_and_notifications(
    aws: EmbeddedAws,
) -> None:
    # GIVEN a template's queue, and a bucket declaring versioning, Object Lock with a default retention
    # and a notification of that queue for csv objects under ctr/
    name = f"fixes-lock-{uuid.uuid4().hex[:8]}"
    bucket = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": name,
            "VersioningConfiguration": {"Status": "Enabled"},
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}},
            },
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Event": "s3:ObjectCreated:*",
                        "Queue": {"Fn::GetAtt": ["Queue", "Arn"]},
                        "Filter": {
                            "S3Key": {
                                "Rules": [
                                    {"Name": "prefix", "Value": "ctr/"},
                                    {"Name": "suffix", "Value": ".csv"},
                                ]
                            }
                        },
                    }
                ]
            },
        },
    }

    # WHEN it is deployed through CloudFormation and the bucket described through the S3 API
    resources = _deploy(
        aws, name, {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}, "Bucket": bucket}
    )
    s3 = aws.client("s3")
    versioning = s3.get_bucket_versioning(Bucket=resources["Bucket"])
    lock = s3.get_object_lock_configuration(Bucket=resources["Bucket"])["ObjectLockConfiguration"]
    notifications = s3.get_bucket_notification_configuration(Bucket=resources["Bucket"])

    # THEN it is as the template says (moto's own: unversioned, no Object Lock, no notifications)
    assert versioning["Status"] == "Enabled"
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert (lock["Rule"]["DefaultRetention"]["Mode"], lock["Rule"]["DefaultRetention"]["Years"]) == (
        "COMPLIANCE",
        1,
    )
    [queue] = notifications["QueueConfigurations"]
    assert queue["QueueArn"] == f"arn:aws:sqs:{aws.region}:{ACCOUNT_ID}:{name}"
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    rules = {rule["Name"]: rule["Value"] for rule in queue["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "ctr/", "suffix": ".csv"}

    # AND objects put afterwards are notified as the filter says: S3's test event first, then the
    # matching object only (its key URL-encoded, as S3 does; moto encodes "/" too)
    for key in ("ctr/2026/contact.csv", "ctr/2026/contact.json", "other/contact.csv"):
        s3.put_object(Bucket=name, Key=key, Body=b"{}", ChecksumAlgorithm="SHA256")
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    bodies = [
        json.loads(message["Body"])
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert [body.get("Event") for body in bodies if "Records" not in body] == ["s3:TestEvent"]
    notified = [unquote_plus(r["s3"]["object"]["key"]) for b in bodies for r in b.get("Records", [])]
    assert notified == ["ctr/2026/contact.csv"]


@covers("s3-get-object-retention")
def test_an_object_version_s_retention_is_answered(aws: EmbeddedAws) -> None:
    # GIVEN an Object Lock bucket holding two versions of an object, the newest put under retention
    s3 = aws.client("s3", max_attempts=1)
    bucket = f"fixes-retention-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    unlocked = s3.put_object(Bucket=bucket, Key="raw.gz", Body=b"first")["VersionId"]
    locked = s3.put_object(Bucket=bucket, Key="raw.gz", Body=b"second")["VersionId"]
    until = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3.put_object_retention(
        Bucket=bucket,
        Key="raw.gz",
        VersionId=locked,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )

    # WHEN each version's retention is asked for
    retention = s3.get_object_retention(Bucket=bucket, Key="raw.gz", VersionId=locked)["Retention"]
    with pytest.raises(s3.exceptions.ClientError) as missing:
        s3.get_object_retention(Bucket=bucket, Key="raw.gz", VersionId=unlocked)

    # THEN the locked one answers its mode and date, the other S3's 404 (moto's own: HTTP 500 for both),
    # and GetObject still answers the object
    assert (retention["Mode"], retention["RetainUntilDate"]) == ("GOVERNANCE", until)
    assert missing.value.response["Error"]["Code"] == "NoSuchObjectLockConfiguration"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.get_object(Bucket=bucket, Key="raw.gz", VersionId=unlocked)["Body"].read() == b"first"


@covers("s3-notification-fields")
def test_a_versioned_bucket_s_notification_names_the_object_version(aws: EmbeddedAws) -> None:
    # GIVEN a versioned bucket notifying a queue of new objects
    s3, sqs = aws.client("s3"), aws.client("sqs")
    name = f"fixes-notify-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": f"arn:aws:sqs:{aws.region}:{ACCOUNT_ID}:{name}",
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        },
    )

    # WHEN the same key is put twice
    versions = [s3.put_object(Bucket=name, Key="raw.gz", Body=body)["VersionId"] for body in (b"1", b"2")]

    # THEN each notification names the version it is about, with increasing sequencers
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    objects = [
        record["s3"]["object"]
        for message in received
        for record in json.loads(message["Body"]).get("Records", [])
    ]
    assert [target["versionId"] for target in objects] == versions
    assert int(objects[0]["sequencer"], 16) < int(objects[1]["sequencer"], 16)
    # AND dates it as S3 does: UTC, milliseconds, "Z"
    times = [
        record["eventTime"]
        for message in received
        for record in json.loads(message["Body"]).get("Records", [])
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", time) for time in times), times


# --- DynamoDB ----------------------------------------------------------------------------------------


def _claim(table: str, contact: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": table,
            "Item": {"contactId": {"S": contact}},
            "ConditionExpression": "attribute_not_exists(contactId)",
        }
    }


@covers("dynamodb-transaction-rollback")
def test_a_cancelled_transaction_keeps_what_other_requests_wrote_meanwhile(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table holding one claim, and another request's write that lands while a transaction runs
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="fixes-claims",
        KeySchema=[{"AttributeName": "contactId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "contactId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="fixes-claims", Item={"contactId": {"S": "claimed"}})
    backend = dynamodb_backends[ACCOUNT_ID][aws.region]
    get_item = backend.get_item
    landed: list[str] = []

    def get_item_while_another_request_writes(table_name: str, keys: dict[str, Any], *args: Any) -> Any:
        if keys.get("contactId") == {"S": "claimed"} and not landed:
            landed.append("concurrent")
            backend.put_item("fixes-claims", {"contactId": {"S": "concurrent"}})
        return get_item(table_name, keys, *args)

    monkeypatch.setattr(backend, "get_item", get_item_while_another_request_writes)

    # WHEN a transaction claiming a new contact and the claimed one is cancelled
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[_claim("fixes-claims", "new"), _claim("fixes-claims", "claimed")]
        )

    # THEN its own write is undone, and the other request's write is still there
    monkeypatch.undo()
    stored = {item["contactId"]["S"] for item in dynamodb.scan(TableName="fixes-claims")["Items"]}
    assert landed == ["concurrent"]
    assert stored == {"claimed", "concurrent"}


@covers("dynamodb-condition-parse-cache")
def test_a_condition_repeated_across_transactions_is_parsed_by_the_models_once(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table, and moto's condition parser counting its parses
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="fixes-parsed",
        KeySchema=[{"AttributeName": "contactId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "contactId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    parse = comparisons.ConditionExpressionParser.parse
    parses: list[int] = []

    def counted_parse(self: Any) -> Any:
        parses.append(1)
        return parse(self)

    monkeypatch.setattr(comparisons.ConditionExpressionParser, "parse", counted_parse)
    # A condition no earlier request used: the first transaction finds it in no cache.
    alias = f"#key{uuid.uuid4().hex}"
    counts = []

    # WHEN two transactions claim a contact each with that condition
    for contact in ("first", "second"):
        claim = _claim("fixes-parsed", contact)
        claim["Put"]["ConditionExpression"] = f"attribute_not_exists({alias})"
        claim["Put"]["ExpressionAttributeNames"] = {alias: "contactId"}
        before = len(parses)
        dynamodb.transact_write_items(TransactItems=[claim])
        counts.append(len(parses) - before)

    # THEN the first is parsed once more than the second: moto's models parse it once, for its check and
    # the put's, and not at all the second time (moto's own: twice each time); the rest is the request's
    # validation
    assert counts[0] - counts[1] == 1


# --- every fix is covered ----------------------------------------------------------------------------


def test_every_fix_is_covered_by_a_test_here() -> None:
    # GIVEN the fixes the embedded AWS installs WHEN they are compared with the tests' marks
    fixes = {fix.name for fix in moto_fixes.FIXES}
    # THEN each fix has a test that fails without it, and no test covers a fix that is gone
    assert fixes == set(COVERED)


# --- Lambda ------------------------------------------------------------------------------------------


@covers("lambda-template-properties")
def test_a_template_s_function_reports_the_template_s_architecture_and_dead_letter_target(
    aws: EmbeddedAws,
) -> None:
    # GIVEN a template declaring an arm64 function (the project's functions all are)
    name = f"arch-{uuid.uuid4().hex[:8]}"
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        },
    }
    function = {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": name,
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Architectures": ["arm64"],
            "DeadLetterConfig": {"TargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{name}-dead-letters"},
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
        },
    }
    template = {"Resources": {"Role": role, "Function": function}}

    # WHEN it is deployed through CloudFormation and the function described through the Lambda API
    aws.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    configuration = aws.client("lambda").get_function_configuration(FunctionName=name)

    # THEN it is arm64 with its dead-letter queue, as the template says (moto's: x86_64, none)
    assert configuration["Architectures"] == ["arm64"]
    assert configuration["DeadLetterConfig"] == {
        "TargetArn": f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{name}-dead-letters"
    }


@covers("lambda-dead-letter-config")
def test_a_function_s_dead_letter_target_is_kept_answered_and_cleared(
    aws: EmbeddedAws, tmp_path: Path
) -> None:
    # GIVEN a function created with a dead-letter queue through the Lambda API
    name = f"fixes-dlq-{uuid.uuid4().hex[:8]}"
    awslambda = aws.client("lambda")
    target = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:{name}"
    awslambda.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=lambda_role(aws.client("iam"), name),
        Handler="index.handler",
        Code={"ZipFile": handler_zip(tmp_path)},
        DeadLetterConfig={"TargetArn": target},
    )
    # WHEN its configuration is read, then the target cleared with an empty one
    created = awslambda.get_function_configuration(FunctionName=name)
    awslambda.update_function_configuration(FunctionName=name, DeadLetterConfig={"TargetArn": ""})
    cleared = awslambda.get_function_configuration(FunctionName=name)
    # THEN it is answered as Lambda answers it, and gone once cleared (moto: never answered)
    assert created["DeadLetterConfig"] == {"TargetArn": target}
    assert "DeadLetterConfig" not in cleared


# --- SQS event source mappings -----------------------------------------------------------------------


@covers("sqs-event-source-mappings-polled")
def test_send_message_does_not_run_a_queue_s_mapping_and_the_mapping_is_still_answered(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN a queue with an event source mapping to a function, and moto's Docker-based run of a
    # mapping recording its calls
    name = f"fixes-esm-{uuid.uuid4().hex[:8]}"
    sqs, awslambda = aws.client("sqs"), aws.client("lambda")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = awslambda.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=lambda_role(aws.client("iam"), name),
        Handler="tests.support.lambda_handlers.sqs_handler",
        Code={"ZipFile": handler_zip(tmp_path)},
    )["FunctionArn"]
    mapping = awslambda.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=function,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    docker_runs: list[str] = []

    def send_sqs_batch(self: LambdaBackend, function_arn: str, messages: Any, queue_arn: str) -> bool:
        docker_runs.append(function_arn)
        return False

    monkeypatch.setattr(LambdaBackend, "send_sqs_batch", send_sqs_batch)

    # WHEN a message is sent to the queue
    sqs.send_message(QueueUrl=url, MessageBody="probe")

    # THEN moto did not run the mapping within SendMessage (Lambda polls the queue instead), and the
    # Lambda API still answers the mapping as created
    assert docker_runs == []
    answered = awslambda.get_event_source_mapping(UUID=mapping["UUID"])
    assert (answered["EventSourceArn"], answered["State"], answered["BatchSize"]) == (arn, "Enabled", 10)
    assert answered["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert answered["MaximumBatchingWindowInSeconds"] == 1
    listed = awslambda.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [mapping["UUID"]]


# --- Firehose ----------------------------------------------------------------------------------------


@covers("firehose-kinesis-source-refuses-puts")
def test_direct_puts_to_a_kinesis_sourced_delivery_stream_are_refused(aws: EmbeddedAws) -> None:
    # GIVEN a delivery stream reading a Kinesis stream, writing to a bucket
    name = f"src-{uuid.uuid4().hex[:8]}"
    kinesis, firehose, s3 = aws.client("kinesis"), aws.client("firehose"), aws.client("s3")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    s3.create_bucket(Bucket=name)
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": stream_arn, "RoleARN": role},
        ExtendedS3DestinationConfiguration={"BucketARN": f"arn:aws:s3:::{name}", "RoleARN": role},
    )
    # WHEN a record is put into it directly, alone and in a batch
    # THEN AWS's refusal, and nothing reaches the bucket (moto would write the raw record there)
    for put in (
        lambda: firehose.put_record(DeliveryStreamName=name, Record={"Data": b'{"ContactId": "x"}'}),
        lambda: firehose.put_record_batch(DeliveryStreamName=name, Records=[{"Data": b"{}"}]),
    ):
        with pytest.raises(firehose.exceptions.InvalidArgumentException) as refused:
            put()
        assert refused.value.response["Error"]["Code"] == "InvalidArgumentException"
    assert s3.list_objects_v2(Bucket=name).get("KeyCount", 0) == 0
