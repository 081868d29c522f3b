"""CKV_CTR_4: every bucket policy denies object puts under another KMS key (or another encryption).

checkov has no such check. An object put with SSE-S3 or another key escapes the billing key's policy and the
vendor's decrypt pinning (issue 13, item 3): the policy must deny s3:PutObject whose
s3:x-amz-server-side-encryption-aws-kms-key-id is not the billing key, and whose
s3:x-amz-server-side-encryption is not aws:kms.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

sys.path.insert(0, str(Path(__file__).parent))
from _policy import actions, as_list, matches, statements

_NOT_EQUALS = ("StringNotEquals", "StringNotEqualsIfExists")


def _denies_puts_unless(statement: dict[str, Any], key: str) -> bool:
    if statement.get("Effect") != "Deny" or statement.get("Principal") not in ("*", {"AWS": "*"}):
        return False
    if not any(matches(action, "s3:putobject") for action in actions(statement)):
        return False
    condition = statement.get("Condition") or {}
    if not isinstance(condition, dict):
        return False
    return any(isinstance(condition.get(op), dict) and condition[op].get(key) for op in _NOT_EQUALS)


def _names_objects(statement: dict[str, Any]) -> bool:
    for resource in as_list(statement.get("Resource")):
        text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
        text = text[0] if isinstance(text, list) and text else text
        if isinstance(text, str) and text.endswith("/*"):
            return True
    return False


class S3PolicyDeniesOtherKmsKeys(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the S3 bucket policy denies puts under another KMS key or another encryption",
            id="CKV_CTR_4",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=["AWS::S3::BucketPolicy"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        found = [
            s for s in statements((conf.get("Properties") or {}).get("PolicyDocument")) if _names_objects(s)
        ]
        key_pinned = any(
            _denies_puts_unless(s, "s3:x-amz-server-side-encryption-aws-kms-key-id") for s in found
        )
        kms_only = any(_denies_puts_unless(s, "s3:x-amz-server-side-encryption") for s in found)
        return CheckResult.PASSED if key_pinned and kms_only else CheckResult.FAILED


check = S3PolicyDeniesOtherKmsKeys()
