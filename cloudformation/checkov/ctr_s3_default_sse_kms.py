"""CKV_CTR_1: every bucket defaults to SSE-KMS with a named (customer-managed) key and a bucket key.

checkov's CKV_AWS_19 accepts SSE-S3 (AES256); DESIGN §5 requires the project's KMS key on every bucket.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class S3DefaultSseKms(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the S3 bucket defaults to SSE-KMS with a customer-managed key and a bucket key",
            id="CKV_CTR_1",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = conf.get("Properties") or {}
        encryption = properties.get("BucketEncryption") or {}
        rules = encryption.get("ServerSideEncryptionConfiguration") or []
        if not isinstance(rules, list) or not rules:
            return CheckResult.FAILED
        for rule in rules:
            if not isinstance(rule, dict):
                return CheckResult.FAILED
            default = rule.get("ServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
                return CheckResult.FAILED
            if not default.get("KMSMasterKeyID"):
                return CheckResult.FAILED  # without a key ID S3 uses the AWS-managed aws/s3 key
            if rule.get("BucketKeyEnabled") not in (True, "true", "True"):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = S3DefaultSseKms()
