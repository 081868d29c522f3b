"""CKV_CTR_3: a key policy allows kms:CreateGrant only for AWS services (kms:GrantIsForAWSResource true).

checkov has no such check. Without the condition, anyone whose IAM policy allows CreateGrant can grant
themselves Decrypt and bypass the key policy's kms:ViaService pinning (issue 13, item 1). Wildcards that
cover CreateGrant (kms:Create*, kms:*, *) count as CreateGrant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

sys.path.insert(0, str(Path(__file__).parent))
from _policy import actions, matches, statements


def _grant_is_for_aws_resource(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    if not isinstance(condition, dict):
        return False
    value = (condition.get("Bool") or {}).get("kms:GrantIsForAWSResource")
    return str(value).lower() == "true"


class KmsCreateGrantForAwsResource(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure the KMS key policy allows kms:CreateGrant only with kms:GrantIsForAWSResource true",
            id="CKV_CTR_3",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::KMS::Key"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        policy = (conf.get("Properties") or {}).get("KeyPolicy")
        for statement in statements(policy):
            if statement.get("Effect") != "Allow":
                continue
            covers_grants = any(matches(action, "kms:creategrant") for action in actions(statement))
            if covers_grants and not _grant_is_for_aws_resource(statement):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = KmsCreateGrantForAwsResource()
