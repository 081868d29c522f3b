"""CKV_CTR_5: a role Firehose assumes touches objects only under named prefixes, never a whole bucket.

checkov has no such check. A delivery role that may put anywhere in its bucket can overwrite another
writer's prefix (the vendor's settled/ files; issue 13, item 4): object actions must name a prefix
(``${Bucket.Arn}/billing/*``), not ``${Bucket.Arn}/*`` or ``*``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

sys.path.insert(0, str(Path(__file__).parent))
from _policy import actions, as_list, matches, statements

_OBJECT_ACTIONS = ("s3:putobject", "s3:getobject", "s3:deleteobject", "s3:abortmultipartupload")
# A whole bucket's objects: "*", "arn:aws:s3:::bucket/*", "${Bucket.Arn}/*", "arn:${AWS::Partition}:s3:::x/*".
_WHOLE_BUCKET = re.compile(r"^(\*|arn:(\$\{AWS::Partition\}|[^:]+):s3:::([^/]+/)?\*|\$\{[^}]+\}/\*)$")


def _assumed_by_firehose(conf: dict[str, Any]) -> bool:
    document = (conf.get("Properties") or {}).get("AssumeRolePolicyDocument")
    for statement in statements(document):
        principal = statement.get("Principal") or {}
        services = as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if "firehose.amazonaws.com" in services:
            return True
    return False


def _text(resource: Any) -> str | None:
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict):
        sub = resource.get("Fn::Sub")
        text = sub[0] if isinstance(sub, list) and sub else sub
        return text if isinstance(text, str) else None
    return None


class FirehoseRoleScopedToPrefixes(BaseResourceCheck):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(
            name="Ensure a Firehose delivery role's S3 object actions are scoped to prefixes",
            id="CKV_CTR_5",
            categories=[CheckCategories.IAM],
            supported_resources=["AWS::IAM::Role"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if not _assumed_by_firehose(conf):
            return CheckResult.UNKNOWN
        for policy in as_list((conf.get("Properties") or {}).get("Policies") or []):
            if not isinstance(policy, dict):
                continue
            for statement in statements(policy.get("PolicyDocument")):
                if statement.get("Effect") != "Allow":
                    continue
                acts = actions(statement)
                if not any(matches(a, wanted) for a in acts for wanted in _OBJECT_ACTIONS):
                    continue
                for resource in as_list(statement.get("Resource")):
                    text = _text(resource)
                    if text is not None and _WHOLE_BUCKET.match(text):
                        return CheckResult.FAILED
        return CheckResult.PASSED


check = FirehoseRoleScopedToPrefixes()
