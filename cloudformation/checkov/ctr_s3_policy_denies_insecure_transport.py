"""CKV_CTR_2: every bucket policy denies requests that do not use TLS, for the bucket and its objects.

checkov has this check for Terraform only; DESIGN §5 requires it on every bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Any) -> Iterator[dict[str, Any]]:
    """Statements of a policy document; both branches of a ``Fn::If`` statement."""
    if not isinstance(document, dict):
        return
    for statement in _as_list(document.get("Statement") or []):
        if isinstance(statement, dict) and "Fn::If" in statement:
            branches = statement["Fn::If"]
            if isinstance(branches, list):
                yield from (branch for branch in branches[1:] if isinstance(branch, dict))
        elif isinstance(statement, dict):
            yield statement


def _is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    return isinstance(principal, dict) and _as_list(principal.get("AWS")) == ["*"]


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    if statement.get("Effect") != "Deny" or not _is_everyone(statement.get("Principal")):
        return False
    if "s3:*" not in _as_list(statement.get("Action")):
        return False
    condition = statement.get("Condition") or {}
    secure = (condition.get("Bool") or {}).get("aws:SecureTransport") if isinstance(condition, dict) else None
    if str(secure).lower() != "false":
        return False
    resources = _as_list(statement.get("Resource"))
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
        if any(_denies_insecure_transport(s) for s in _statements(properties.get("PolicyDocument"))):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = S3PolicyDeniesInsecureTransport()
