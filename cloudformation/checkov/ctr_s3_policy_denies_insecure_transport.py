"""CKV_CTR_2: every bucket policy denies requests that do not use TLS, for the bucket and its objects.

checkov has this check for Terraform only; DESIGN §5 requires it on every bucket.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

sys.path.insert(0, str(Path(__file__).parent))
from _policy import as_list, statements


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and as_list(principal.get("AWS")) == ["*"]


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    if statement.get("Effect") != "Deny" or not _is_everyone(statement.get("Principal")):
        return False
    if "s3:*" not in as_list(statement.get("Action")):
        return False
    condition = statement.get("Condition") or {}
    secure = (condition.get("Bool") or {}).get("aws:SecureTransport") if isinstance(condition, dict) else None
    if str(secure).lower() != "false":
        return False
    resources = as_list(statement.get("Resource"))
    # The bucket itself and its objects: one plain ARN and one ending in /*.
    return len(resources) >= 2 and any(_names_objects(resource) for resource in resources)


def _names_objects(resource: Any) -> bool:
    if isinstance(resource, str):
        return resource.endswith("/*")
    if isinstance(resource, dict):
        sub = resource.get("Fn::Sub")
        text = sub[0] if isinstance(sub, list) and sub else sub
        return isinstance(text, str) and text.endswith("/*")
    return False


class S3PolicyDeniesInsecureTransport(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the S3 bucket policy denies requests without TLS (aws:SecureTransport false)",
            id="CKV_CTR_2",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::BucketPolicy"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = conf.get("Properties") or {}
        if any(_denies_insecure_transport(s) for s in statements(properties.get("PolicyDocument"))):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = S3PolicyDeniesInsecureTransport()
