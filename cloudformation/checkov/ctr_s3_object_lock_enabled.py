"""CKV_CTR_6: every bucket has S3 Object Lock enabled (it can only be turned on when a bucket is created).

checkov's own Object Lock check (S3BucketObjectLock) exists for Terraform only. The raw archive is
the record of truth and the settled files the vendor's bill (issue 13, item 2): their versions are locked
one by one (docs/operations.md, "Object Lock"), which needs ``ObjectLockEnabled: true`` and
``ObjectLockConfiguration.ObjectLockEnabled: Enabled`` on the bucket. A bucket that cannot or need not
have it (a server access log target; a scratch copy) says why in a skip.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class S3ObjectLockEnabled(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the S3 bucket has Object Lock enabled",
            id="CKV_CTR_6",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = conf.get("Properties") or {}
        if properties.get("ObjectLockEnabled") not in (True, "true", "True"):
            return CheckResult.FAILED
        configuration = properties.get("ObjectLockConfiguration") or {}
        if not isinstance(configuration, dict) or configuration.get("ObjectLockEnabled") != "Enabled":
            return CheckResult.FAILED
        return CheckResult.PASSED


check = S3ObjectLockEnabled()
