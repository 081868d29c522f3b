"""CKV_CTR_7: no role or policy of the stack may bypass S3 Object Lock governance retention.

checkov has no such check. Raw CTR versions and settled files are locked in GOVERNANCE mode, which holds
against every identity without ``s3:BypassGovernanceRetention`` (docs/operations.md, "Object Lock"): a
stack role allowed it (directly or through ``s3:*``, ``s3:Bypass*``, ``*``) could delete the record of
truth. Only an operator, outside the stack, is given it, at clean-up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

sys.path.insert(0, str(Path(__file__).parent))
from _policy import actions, as_list, matches, statements

_BYPASS = "s3:BypassGovernanceRetention"


def _documents(conf: dict[str, Any]) -> list[Any]:
    properties = conf.get("Properties") or {}
    documents = [policy.get("PolicyDocument") for policy in as_list(properties.get("Policies") or [])]
    documents.append(properties.get("PolicyDocument"))
    return [document for document in documents if isinstance(document, dict)]


class IamNoGovernanceBypass(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure no IAM statement allows s3:BypassGovernanceRetention",
            id="CKV_CTR_7",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        for document in _documents(conf):
            for statement in statements(document):
                if statement.get("Effect") == "Allow" and any(
                    matches(a, _BYPASS) for a in actions(statement)
                ):
                    return CheckResult.FAILED
        return CheckResult.PASSED


check = IamNoGovernanceBypass()
