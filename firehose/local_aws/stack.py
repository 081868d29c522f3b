"""Deploying ``cloudformation/template.yaml`` on the embedded AWS through its CloudFormation API."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError, WaiterError
from moto.cloudformation import parsing as cfn_parsing

from firehose.deploy.packaging import build_lambda_zip
from firehose.deploy.template import TEMPLATE_PATH, load_template, rendered_template
from firehose.local_aws.server import EmbeddedAws

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

DEFAULT_STACK_NAME = "ctr-billing"
# The Lambda deployment zip the stack's functions point at (``LambdaCodeBucket`` / ``LambdaCodeKey``).
lambda_zip = build_lambda_zip


@dataclass(frozen=True, slots=True)
class DeployedStack:
    name: str
    outputs: dict[str, str]
    # logical id -> physical id, for every resource the stack created
    resources: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    # resource types of the template that moto (with the project's models) does not create locally
    skipped_types: tuple[str, ...] = ()


class StackDeployError(RuntimeError):
    pass


def deploy_stack(
    aws: EmbeddedAws,
    lambda_zip: Path,
    *,
    template_path: Path = TEMPLATE_PATH,
    stack_name: str = DEFAULT_STACK_NAME,
    parameters: Mapping[str, str] | None = None,
    code_bucket: str = "ctr-billing-lambda-code",
    timeout_seconds: float = 120.0,
) -> DeployedStack:
    """Upload the Lambda zip into the embedded S3 and create the stack from the template through the
    CloudFormation API (``LambdaCodeBucket`` / ``LambdaCodeKey`` point at the upload)."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=code_bucket)
    code_key = f"lambda/{lambda_zip.name}"
    s3.upload_file(str(lambda_zip), code_bucket, code_key)
    values = {"LambdaCodeBucket": code_bucket, "LambdaCodeKey": code_key, **(parameters or {})}
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=rendered_template(template_path),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in values.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    delay = 1  # moto creates the stack within CreateStack: the waiter's first look finds it complete
    try:
        cloudformation.get_waiter("stack_create_complete").wait(
            StackName=stack_name,
            WaiterConfig={"Delay": delay, "MaxAttempts": max(1, math.ceil(timeout_seconds / delay))},
        )
    except WaiterError:
        raise StackDeployError(_failure(cloudformation, stack_name)) from None
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    paginator = cloudformation.get_paginator("list_stack_resources")
    resources = {
        summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
        for page in paginator.paginate(StackName=stack_name)
        for summary in page["StackResourceSummaries"]
    }
    parameter_values = {
        parameter["ParameterKey"]: parameter.get("ParameterValue", "")
        for parameter in stack.get("Parameters", [])
    }
    return DeployedStack(stack_name, outputs, resources, parameter_values, skipped_types(template_path))


def _failure(cloudformation: CloudFormationClient, stack_name: str) -> str:
    """Why the stack is not complete: its status and reason, as CloudFormation describes them."""
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:  # e.g. the stack was deleted by a rollback
        return f"stack {stack_name} is gone: {error.response.get('Error', {}).get('Message', '')}"
    return f"stack {stack_name} ended in {stack['StackStatus']} {stack.get('StackStatusReason', '')}".strip()


def skipped_types(template_path: Path = TEMPLATE_PATH) -> tuple[str, ...]:
    """Resource types of the template that the embedded CloudFormation skips (no model)."""
    declared = {resource["Type"] for resource in load_template(template_path)["Resources"].values()}
    modelled = set(cfn_parsing.get_model_map())
    return tuple(
        sorted(kind for kind in declared if kind not in modelled and not kind.startswith("Custom::"))
    )
