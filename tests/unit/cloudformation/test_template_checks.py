"""The checkov custom policies in cloudformation/checkov catch what they are for, and the template passes
checkov and cfn-lint as CloudFormation receives it: rendered (``make template-checks`` checks the same).

checkov lives in its own venv (``make template-checks`` installs it into .venv-tools); set CHECKOV to
another binary to use that one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from firehose.deploy.template import TEMPLATE_PATH, load_template, rendered_template, resources_of_type

ROOT = TEMPLATE_PATH.parent.parent
POLICIES = ROOT / "cloudformation" / "checkov"
SSE_KMS_CHECK = "CKV_CTR_1"
TLS_ONLY_CHECK = "CKV_CTR_2"
GRANT_CHECK = "CKV_CTR_3"
OTHER_KEY_CHECK = "CKV_CTR_4"
PREFIX_CHECK = "CKV_CTR_5"
OBJECT_LOCK_CHECK = "CKV_CTR_6"
BYPASS_CHECK = "CKV_CTR_7"

# Issue 13: a key policy with an unconditioned kms:Create* and a bucket policy without a key pin (the one
# above), a Firehose role writing a whole bucket, a bucket without Object Lock and a role that may bypass
# governance retention.
BAD_HARDENING_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  GrantsToAnyoneKey:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy:
        Statement:
          - Effect: Allow
            Principal: { AWS: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" }
            Action: [kms:Create*, kms:Describe*]
            Resource: "*"
  GrantsForServicesKey:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy:
        Statement:
          - Effect: Allow
            Principal: { AWS: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" }
            Action: kms:CreateGrant
            Resource: "*"
            Condition: { Bool: { kms:GrantIsForAWSResource: "true" } }
  WholeBucketDeliveryRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: { Service: firehose.amazonaws.com }
            Action: sts:AssumeRole
      Policies:
        - PolicyName: write
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [s3:PutObject, s3:GetObject]
                Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket/*"
  UnlockedBucket:
    Type: AWS::S3::Bucket
  LockedBucket:
    Type: AWS::S3::Bucket
    Properties:
      ObjectLockEnabled: true
      ObjectLockConfiguration: { ObjectLockEnabled: Enabled }
  BypassesGovernanceRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: { Service: lambda.amazonaws.com }
            Action: sts:AssumeRole
      Policies:
        - PolicyName: clean-up
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: [s3:DeleteObjectVersion, s3:Bypass*]
                Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket/*"
  PrefixDeliveryRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: { Service: firehose.amazonaws.com }
            Action: sts:AssumeRole
      Policies:
        - PolicyName: write
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: s3:PutObject
                Resource: !Sub "arn:${AWS::Partition}:s3:::some-bucket/data/*"
"""

BAD_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  S3ManagedKeyBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault: { SSEAlgorithm: AES256 }
  AwsManagedKmsBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault: { SSEAlgorithm: aws:kms }
            BucketKeyEnabled: true
  UnencryptedDefaultBucket:
    Type: AWS::S3::Bucket
  AllowsPlainHttpPolicy:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: !Ref UnencryptedDefaultBucket
      PolicyDocument:
        Statement:
          - Effect: Deny
            Principal: "*"
            Action: s3:*
            Resource: !Sub "${UnencryptedDefaultBucket.Arn}/*"
            Condition: { Bool: { aws:SecureTransport: "true" } }
  ObjectsOnlyPolicy:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: !Ref S3ManagedKeyBucket
      PolicyDocument:
        Statement:
          - Effect: Deny
            Principal: "*"
            Action: s3:*
            Resource: !Sub "${S3ManagedKeyBucket.Arn}/*"
            Condition: { Bool: { aws:SecureTransport: "false" } }
"""


def _checkov() -> str:
    for candidate in (os.environ.get("CHECKOV"), str(ROOT / ".venv-tools" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("checkov")
    if found is None:
        pytest.skip("checkov is not installed (make template-checks installs it into .venv-tools)")
    return found


def _scan(template: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [
            _checkov(),
            "--file",
            template.name,
            "--framework",
            "cloudformation",
            "--external-checks-dir",
            str(POLICIES),
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # From the template's own folder, away from the repo's .checkov.yaml (quiet mode drops the passed
        # checks), and with a relative path: checkov puts the file path into every resource as
        # `__file__`, and CKV_AWS_45 reads a 40-character absolute path such as
        # /check/work/main/cloudformation/template as an AWS secret key.
        cwd=template.parent,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert completed.stdout, completed.stderr[-2000:]
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def _results(report: dict[str, Any], outcome: str, check_id: str) -> set[str]:
    return {
        check["resource"].split(".", 1)[1]
        for check in report["results"][f"{outcome}_checks"]
        if check["check_id"] == check_id
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as CloudFormation receives it, written as ``ctr-billing package`` writes it."""
    path = tmp_path_factory.mktemp("rendered") / "template.yaml"
    path.write_text(rendered_template(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def template_report(rendered: Path) -> dict[str, Any]:
    return _scan(rendered)


def test_custom_policies_fail_buckets_and_policies_that_break_design_section_5(tmp_path: Path) -> None:
    # GIVEN buckets with SSE-S3, with the AWS-managed key, and with no encryption, and policies that
    # deny only TLS traffic or only object requests
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_TEMPLATE, encoding="utf-8")

    # WHEN checkov runs the custom policies
    report = _scan(bad)

    # THEN each of them fails
    assert _results(report, "failed", SSE_KMS_CHECK) == {
        "S3ManagedKeyBucket",
        "AwsManagedKmsBucket",
        "UnencryptedDefaultBucket",
    }
    assert _results(report, "failed", TLS_ONLY_CHECK) == {"AllowsPlainHttpPolicy", "ObjectsOnlyPolicy"}


def test_custom_policies_fail_the_issue_13_findings(tmp_path: Path) -> None:
    # GIVEN a key policy granting kms:Create* unconditioned, a Firehose role writing a whole bucket, and
    # bucket policies (BAD_TEMPLATE) that deny no other KMS key
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_HARDENING_TEMPLATE, encoding="utf-8")
    other = tmp_path / "other.yaml"
    other.write_text(BAD_TEMPLATE, encoding="utf-8")

    # WHEN checkov runs the custom policies
    report = _scan(bad)
    other_report = _scan(other)

    # THEN each fails what it is for, and passes the fixed shape
    assert _results(report, "failed", GRANT_CHECK) == {"GrantsToAnyoneKey"}
    assert _results(report, "passed", GRANT_CHECK) == {"GrantsForServicesKey"}
    assert _results(report, "failed", PREFIX_CHECK) == {"WholeBucketDeliveryRole"}
    assert _results(report, "passed", PREFIX_CHECK) == {"PrefixDeliveryRole"}
    assert _results(other_report, "failed", OTHER_KEY_CHECK) == {"AllowsPlainHttpPolicy", "ObjectsOnlyPolicy"}
    assert _results(report, "failed", OBJECT_LOCK_CHECK) == {"UnlockedBucket"}
    assert _results(report, "passed", OBJECT_LOCK_CHECK) == {"LockedBucket"}
    assert _results(report, "failed", BYPASS_CHECK) == {"BypassesGovernanceRole"}
    assert _results(report, "passed", BYPASS_CHECK) == {"WholeBucketDeliveryRole", "PrefixDeliveryRole"}


def test_template_passes_every_check_and_each_skip_has_a_reason(template_report: dict[str, Any]) -> None:
    # GIVEN the checkov report of the template
    template = load_template()
    buckets = {logical_id for logical_id, _ in resources_of_type(template, "AWS::S3::Bucket")}
    policies = {logical_id for logical_id, _ in resources_of_type(template, "AWS::S3::BucketPolicy")}

    # THEN nothing failed, and the custom policies ran on every bucket and bucket policy, the access-log
    # bucket's key checks skipped (S3 log delivery takes SSE-S3 targets only: an accepted exception)
    assert template_report["summary"]["failed"] == 0, template_report["results"]["failed_checks"]
    assert _results(template_report, "passed", SSE_KMS_CHECK) == buckets - {"AccessLogsBucket"}
    assert _results(template_report, "skipped", SSE_KMS_CHECK) == {"AccessLogsBucket"}
    assert _results(template_report, "passed", TLS_ONLY_CHECK) == policies
    assert _results(template_report, "passed", OTHER_KEY_CHECK) == policies - {"AccessLogsBucketPolicy"}
    assert _results(template_report, "skipped", OTHER_KEY_CHECK) == {"AccessLogsBucketPolicy"}
    assert _results(template_report, "passed", OBJECT_LOCK_CHECK) == {
        "RawBucket",
        "VendorBucket",
        "LakeBucket",
    }
    roles = {logical_id for logical_id, _ in resources_of_type(template, "AWS::IAM::Role")}
    policies_iam = {logical_id for logical_id, _ in resources_of_type(template, "AWS::IAM::Policy")}
    assert _results(template_report, "passed", BYPASS_CHECK) == roles | policies_iam
    assert _results(template_report, "passed", GRANT_CHECK) == {"BillingKey"}
    assert _results(template_report, "passed", PREFIX_CHECK) == {
        "RawDeliveryRole",
        "VendorDeliveryRole",
        "LakeDeliveryRole",
    }
    # AND every skip is declared in the resource's Metadata with a written reason
    for skipped in template_report["results"]["skipped_checks"]:
        logical_id = skipped["resource"].split(".", 1)[1]
        declared = template["Resources"][logical_id]["Metadata"]["checkov"]["skip"]
        (entry,) = [s for s in declared if s["id"] == skipped["check_id"]]
        assert len(entry["comment"].split()) >= 8, f"{logical_id} {entry['id']}: give the reason"


def test_cfn_lint_finds_nothing_in_the_rendered_template_and_refuses_the_source(rendered: Path) -> None:
    # GIVEN cfn-lint with the informational rules, as `make template-checks` runs it (.cfnlintrc)
    config = ManualArgs(include_checks=["I"])
    # WHEN it checks the rendered template THEN it finds nothing
    assert [str(match) for match in lint(rendered.read_text(encoding="utf-8"), config=config)] == []
    # AND the source, whose build-time functions CloudFormation does not know, does not pass for deployable
    source_findings = lint(TEMPLATE_PATH.read_text(encoding="utf-8"), config=config)
    assert any("Fn::Embed" in str(match) for match in source_findings)
