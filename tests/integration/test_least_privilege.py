"""Least privilege, tested: the template's roles on the embedded AWS with moto's IAM enforcement on.

The stack is deployed from ``cloudformation/template.yaml`` through moto's CloudFormation; every role is
assumed through STS and its requests are signed with the session's credentials, so moto evaluates the
role's own (deployed, intrinsics resolved) policies. moto enforces identity policies only: the vendor's
access, which the template grants in the vendor bucket's *resource* policy, is enforced by giving the
vendor role exactly the bucket-policy statements that name it. Conditions (the vendor's ``s3:prefix``
listing) are not evaluated by moto, and moto authorizes DynamoDB, Kinesis and KMS calls against ``*``
rather than a resource ARN; those are asserted on the deployed policies instead.
"""

from __future__ import annotations

import ast
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin

from firehose.deploy.template import load_template, resources_of_type
from firehose.local_aws.server import ACCOUNT_ID, EmbeddedAws
from firehose.local_aws.stack import DeployedStack, deploy_stack, lambda_zip

pytestmark = pytest.mark.integration

VENDOR_ROLE = "billing-vendor-reader"
DELIVERY_ROLES = {
    "RawDeliveryRole": "RawBucket",
    "VendorDeliveryRole": "VendorBucket",
    "LakeDeliveryRole": "LakeBucket",
}
TRANSFORM_ROLES = ("TransformCsvRole", "TransformJsonRole")
# One object per bucket and prefix, as the pipeline writes them.
SEEDED = {
    "raw-data": ("RawBucket", "ctr/2026/11/02/14/ctr-billing-raw-1-2026-11-02-14-00-00-a.gz"),
    "raw-errors": ("RawBucket", "errors/processing-failed/2026/11/02/ctr-billing-raw-1-a"),
    "vendor-billing": (
        "VendorBucket",
        "billing/2026/11/02/14/ctr-billing-vendor-1-2026-11-02-14-00-00-a.csv",
    ),
    "vendor-settled": ("VendorBucket", "settled/2026-11-02/billing-2026-11-02.csv"),
    "vendor-errors": ("VendorBucket", "errors/processing-failed/2026/11/02/ctr-billing-vendor-1-a"),
    "lake-rows": ("LakeBucket", "billing_rows/year=2026/month=11/day=02/ctr-billing-lake-1-a.parquet"),
}


@contextmanager
def iam_enforced() -> Iterator[None]:
    """moto's IAM enforcement on for the in-process server (process-wide; restored afterwards)."""
    previous = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
        ActionAuthenticatorMixin.request_count = 0


class Deployment:
    def __init__(self, aws: EmbeddedAws, stack: DeployedStack) -> None:
        self.aws = aws
        self.stack = stack
        self.credentials: dict[str, dict[str, str]] = {}
        # logical bucket id -> its bucket policy as deployed (before moto's workaround below)
        self.bucket_policies: dict[str, dict[str, Any]] = {}

    def bucket(self, logical_id: str) -> str:
        return self.stack.resources[logical_id]

    def role_name(self, logical_id: str) -> str:
        return VENDOR_ROLE if logical_id == "Vendor" else self.stack.resources[logical_id]

    def client(self, role: str, service: str) -> Any:
        """A client signed as an STS session of ``role`` (a logical ID, or ``Vendor``)."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.aws.endpoint,
            region_name=self.aws.region,
            config=Config(retries={"max_attempts": 1}),
            **self.credentials[role],
        )

    def role_policies(self, logical_id: str) -> list[dict[str, Any]]:
        """The deployed inline policies' statements of a role (intrinsics resolved by CloudFormation)."""
        iam = self.aws.client("iam")
        name = self.role_name(logical_id)
        statements: list[dict[str, Any]] = []
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            statements.extend(policy_document(document)["Statement"])
        return statements


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    """The stack deployed with a vendor role as ``VendorPrincipalArn``, objects seeded, roles assumed."""
    with EmbeddedAws() as aws, tempfile.TemporaryDirectory() as scratch:
        iam = aws.client("iam")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        vendor_arn = iam.create_role(RoleName=VENDOR_ROLE, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
        stack = deploy_stack(aws, lambda_zip(Path(scratch)), parameters={"VendorPrincipalArn": vendor_arn})
        deployed = Deployment(aws, stack)
        # The vendor's grants live in the vendor bucket's policy; moto enforces identity policies only.
        s3 = aws.client("s3")
        bucket_policy = json.loads(s3.get_bucket_policy(Bucket=deployed.bucket("VendorBucket"))["Policy"])
        vendor_statements = [
            {key: value for key, value in statement.items() if key != "Principal"}
            for statement in bucket_policy["Statement"]
            if isinstance(statement.get("Principal"), dict)
            and statement["Principal"].get("AWS") == vendor_arn
            and "Condition" not in statement  # moto treats an unevaluable condition as a deny
        ]
        assert vendor_statements, "the vendor bucket policy grants the vendor principal nothing"
        iam.put_role_policy(
            RoleName=VENDOR_ROLE,
            PolicyName="vendor-bucket-policy-grants",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": vendor_statements}),
        )
        for logical_id, _ in resources_of_type(load_template(), "AWS::S3::Bucket"):
            policy = s3.get_bucket_policy(Bucket=deployed.bucket(logical_id))["Policy"]
            deployed.bucket_policies[logical_id] = json.loads(policy)
        unevaluable_conditions_removed(s3, stack)
        for bucket, key in SEEDED.values():
            s3.put_object(Bucket=deployed.bucket(bucket), Key=key, Body=b"seeded")
        for logical_id, _ in resources_of_type(load_template(), "AWS::IAM::Role"):
            inline_policies_as_json(iam, stack.resources[logical_id])
        sts = aws.client("sts")
        for role in (*TRANSFORM_ROLES, *DELIVERY_ROLES, "Vendor"):
            arn = iam.get_role(RoleName=deployed.role_name(role))["Role"]["Arn"]
            session = sts.assume_role(RoleArn=arn, RoleSessionName="least-privilege")["Credentials"]
            deployed.credentials[role] = {
                "aws_access_key_id": session["AccessKeyId"],
                "aws_secret_access_key": session["SecretAccessKey"],
                "aws_session_token": session["SessionToken"],
            }
        yield deployed


@pytest.fixture
def enforced(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment with moto's IAM enforcement on for one test (administration needs it off)."""
    with iam_enforced():
        yield deployment


def policy_document(stored: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: JSON text, a parsed document, or (moto 5.2.5's
    CloudFormation) the Python ``repr`` of a parsed document."""
    if isinstance(stored, dict):
        return stored
    try:
        document: dict[str, Any] = json.loads(stored)
    except ValueError:
        document = ast.literal_eval(stored)
    return document


def inline_policies_as_json(iam: Any, role_name: str) -> None:
    """Re-put a role's inline policies unchanged, as JSON. moto 5.2.5's CloudFormation stores them as a
    Python ``repr``, which its IAM enforcement cannot evaluate."""
    for policy_name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        iam.put_role_policy(
            RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(policy_document(document))
        )


def unevaluable_conditions_removed(s3: Any, stack: DeployedStack) -> None:
    """moto's S3 evaluates bucket policies on object requests but cannot evaluate conditions such as
    ``aws:SecureTransport`` (it treats them as a deny for every request). Conditional statements are
    taken out of the deployed bucket policies here; ``test_every_bucket_denies_insecure_transport``
    asserts them on the template instead."""
    for logical_id, _ in resources_of_type(load_template(), "AWS::S3::Bucket"):
        bucket = stack.resources[logical_id]
        try:
            policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError:
            continue
        statements = [statement for statement in policy["Statement"] if "Condition" not in statement]
        if statements:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({**policy, "Statement": statements}))
        else:
            s3.delete_bucket_policy(Bucket=bucket)


def allowed(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"):
            return False
        raise
    return True


def can_read(deployment: Deployment, role: str, seeded: str) -> bool:
    bucket, key = SEEDED[seeded]
    return allowed(deployment.client(role, "s3").get_object, Bucket=deployment.bucket(bucket), Key=key)


def can_write(deployment: Deployment, role: str, bucket: str, key: str) -> bool:
    s3 = deployment.client(role, "s3")
    return allowed(s3.put_object, Bucket=deployment.bucket(bucket), Key=key, Body=b"x")


def can_list(deployment: Deployment, role: str, bucket: str) -> bool:
    return allowed(deployment.client(role, "s3").list_objects_v2, Bucket=deployment.bucket(bucket))


# --- enforced by moto -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [*TRANSFORM_ROLES, *DELIVERY_ROLES, "Vendor"])
def test_each_session_is_signed_as_its_role(enforced: Deployment, role: str) -> None:
    # GIVEN a role's STS session WHEN it asks who it is THEN it is that role (the checks below are real)
    identity = enforced.client(role, "sts").get_caller_identity()
    assert f":assumed-role/{enforced.role_name(role)}/" in identity["Arn"]


@pytest.mark.parametrize("role", TRANSFORM_ROLES)
def test_the_transforms_cannot_touch_any_bucket(enforced: Deployment, role: str) -> None:
    # GIVEN a transform Lambda's role WHEN it reads, lists or writes any bucket THEN it is denied
    for seeded in SEEDED:
        assert not can_read(enforced, role, seeded), seeded
    for bucket in ("RawBucket", "VendorBucket", "LakeBucket"):
        assert not can_list(enforced, role, bucket), bucket
        assert not can_write(enforced, role, bucket, "billing/2026/11/02/14/injected.csv"), bucket


@pytest.mark.parametrize("role", DELIVERY_ROLES)
def test_each_delivery_stream_writes_only_its_own_bucket(enforced: Deployment, role: str) -> None:
    # GIVEN a Firehose delivery role
    own = DELIVERY_ROLES[role]
    # WHEN it writes data and error objects THEN only its own bucket accepts them
    data = {"RawBucket": "ctr", "VendorBucket": "billing", "LakeBucket": "billing_rows"}
    for bucket in ("RawBucket", "VendorBucket", "LakeBucket"):
        for key in (f"{data[bucket]}/2026/11/02/14/delivered", "errors/processing-failed/2026/11/02/failed"):
            assert can_write(enforced, role, bucket, key) is (bucket == own), (bucket, key)
    # AND only under its data and error prefixes (issue 13: never the vendor's settled/ files)
    for key in ("settled/2026-11-02/billing-2026-11-02.csv", "elsewhere/x"):
        assert can_write(enforced, role, own, key) is False, key
    # AND it reads back nothing outside its own bucket's data and error prefixes (not the settled/ files)
    for seeded, (bucket, _) in SEEDED.items():
        assert can_read(enforced, role, seeded) is (bucket == own and seeded != "vendor-settled"), seeded


def test_the_vendor_reads_only_vendor_billing_objects(enforced: Deployment) -> None:
    # GIVEN the vendor principal named by VendorPrincipalArn
    readable = {seeded for seeded in SEEDED if can_read(enforced, "Vendor", seeded)}
    # THEN it reads streamed and settled billing files, and not the errors (raw CTRs), raw or lake objects
    assert readable == {"vendor-billing", "vendor-settled"}
    # AND it cannot write or list anywhere through object grants
    assert not can_write(enforced, "Vendor", "VendorBucket", "billing/2026/11/02/14/forged.csv")
    assert not can_list(enforced, "Vendor", "RawBucket")


# --- asserted on the deployed policies (moto does not scope these) --------------------------------


def resources_of(statement: dict[str, Any]) -> list[str]:
    resource = statement.get("Resource", [])
    return [resource] if isinstance(resource, str) else list(resource)


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def allows(statements: list[dict[str, Any]], service: str) -> dict[str, set[str]]:
    """action -> the resources it is allowed on, for one service's actions."""
    granted: dict[str, set[str]] = {}
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in actions_of(statement):
            if action.startswith(f"{service}:") or action == "*":
                granted.setdefault(action, set()).update(resources_of(statement))
    return granted


def table_arn(deployment: Deployment, logical_id: str) -> str:
    return f"arn:aws:dynamodb:{deployment.aws.region}:{ACCOUNT_ID}:table/{deployment.stack.resources[logical_id]}"


def test_no_role_has_wildcard_actions_or_unscoped_data_access(deployment: Deployment) -> None:
    # GIVEN every role the template declares
    for logical_id, _ in resources_of_type(load_template(), "AWS::IAM::Role"):
        statements = deployment.role_policies(logical_id)
        for statement in statements:
            for action in actions_of(statement):
                # THEN no action is a service wildcard
                assert not action.endswith(":*") and action != "*", (logical_id, action)
                # AND data services are never granted on every resource
                if action.split(":")[0] in ("s3", "dynamodb", "kinesis", "kms", "lambda", "glue"):
                    assert "*" not in resources_of(statement), (logical_id, action)


def test_dynamodb_access_is_scoped_to_the_directory_and_the_ledger(deployment: Deployment) -> None:
    # GIVEN the deployed tables
    ledger = table_arn(deployment, "BillingLedgerTable")
    directory = table_arn(deployment, "ProviderDirectoryTable")
    csv_grants = allows(deployment.role_policies("TransformCsvRole"), "dynamodb")
    json_grants = allows(deployment.role_policies("TransformJsonRole"), "dynamodb")
    lookup_grants = allows(deployment.role_policies("LookupRole"), "dynamodb")
    # THEN only the vendor transform reaches the ledger, with exactly the adapter's calls
    assert {action for action, arns in csv_grants.items() if ledger in arns} == {
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
    }
    assert all(ledger not in arns for arns in (*json_grants.values(), *lookup_grants.values()))
    # AND every role reads the directory (table and its indexes) without writing it
    for grants in (csv_grants, json_grants, lookup_grants):
        for action, arns in grants.items():
            assert arns <= {ledger, directory, f"{directory}/index/*"}, (action, arns)
            if directory in arns:
                assert action in ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")


def test_kinesis_and_kms_are_scoped_to_the_stream_and_the_key(deployment: Deployment) -> None:
    # GIVEN the deployed stream and key
    kinesis = deployment.aws.client("kinesis")
    stream_arn = kinesis.describe_stream_summary(
        StreamName=deployment.stack.resources["ContactTraceRecordsStream"]
    )["StreamDescriptionSummary"]["StreamARN"]
    key_id = deployment.stack.resources["BillingKey"]
    key_arn = next(
        key["KeyArn"] for key in deployment.aws.client("kms").list_keys()["Keys"] if key["KeyId"] == key_id
    )
    for logical_id, _ in resources_of_type(load_template(), "AWS::IAM::Role"):
        statements = deployment.role_policies(logical_id)
        kinesis_grants = allows(statements, "kinesis")
        # THEN only the delivery roles read the CTR stream, read-only
        if logical_id in DELIVERY_ROLES:
            assert set(kinesis_grants) <= {
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetShardIterator",
                "kinesis:GetRecords",
                "kinesis:ListShards",
            }
            assert kinesis_grants
        for action, arns in kinesis_grants.items():
            assert arns == {stream_arn}, (logical_id, action)
        # AND the KMS grants name the billing key only
        for action, arns in allows(statements, "kms").items():
            assert arns == {key_arn}, (logical_id, action)


def test_every_bucket_denies_insecure_transport() -> None:
    # GIVEN every bucket of the template and its bucket policy
    template = load_template()
    policies = {
        properties["Properties"]["Bucket"]["Ref"]: properties["Properties"]["PolicyDocument"]["Statement"]
        for _, properties in resources_of_type(template, "AWS::S3::BucketPolicy")
    }
    for logical_id, _ in resources_of_type(template, "AWS::S3::Bucket"):
        # THEN its policy denies every S3 action over plain HTTP
        denies = [
            statement
            for statement in policies[logical_id]
            if isinstance(statement, dict)
            and statement.get("Effect") == "Deny"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert denies, logical_id
        assert actions_of(denies[0]) == ["s3:*"]
        assert denies[0]["Principal"] == "*"


def test_the_vendor_lists_only_its_prefixes_and_decrypts_only_through_s3(deployment: Deployment) -> None:
    # GIVEN the deployed bucket policies and the template's key policy
    vendor_arn = deployment.aws.client("iam").get_role(RoleName=VENDOR_ROLE)["Role"]["Arn"]

    def vendor_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            statement
            for statement in document["Statement"]
            if isinstance(statement.get("Principal"), dict)
            and statement["Principal"].get("AWS") == vendor_arn
        ]

    vendor_bucket = deployment.bucket_policies["VendorBucket"]
    listing = [s for s in vendor_statements(vendor_bucket) if "s3:ListBucket" in actions_of(s)]
    # THEN the vendor may list the vendor bucket only under billing/ and settled/
    assert len(listing) == 1
    assert sorted(listing[0]["Condition"]["StringLike"]["s3:prefix"]) == ["billing/*", "settled/*"]
    # AND no other bucket's policy names the vendor
    for other in ("RawBucket", "LakeBucket", "AccessLogsBucket", "AthenaResultsBucket"):
        assert not vendor_statements(deployment.bucket_policies[other]), other
    # AND the key policy (as the template declares it) lets the vendor decrypt only via S3
    key_policy = load_template()["Resources"]["BillingKey"]["Properties"]["KeyPolicy"]
    vendor_grants = [  # the vendor's statement is conditional: !If [HasVendorPrincipal, statement, NoValue]
        statement["Fn::If"][1]
        for statement in key_policy["Statement"]
        if "Fn::If" in statement and statement["Fn::If"][0] == "HasVendorPrincipal"
    ]
    assert len(vendor_grants) == 1
    assert vendor_grants[0]["Principal"] == {"AWS": {"Ref": "VendorPrincipalArn"}}
    assert actions_of(vendor_grants[0]) == ["kms:Decrypt"]
    assert vendor_grants[0]["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "s3.${AWS::Region}.amazonaws.com"
    }
