"""``ctr-billing package``: build the Lambda zip, upload it, write a packaged template.

Like ``aws cloudformation package``: the packaged template is the rendered one (named queries, contact
flows and outcome metric names filled in from their sources; ``firehose.deploy.template``) with
``LambdaCodeBucket``/``LambdaCodeKey`` defaulting to the uploaded zip, so
``aws cloudformation deploy --template-file packaged.yaml`` needs no code parameters. Without
``--bucket`` only the zip is built; with ``--template-only`` only the rendered template is written (what
``make template-checks`` lints).
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from firehose.cli.errors import CommandError
from firehose.deploy.packaging import (
    PackagingError,
    build_lambda_zip,
    lambda_platform,
    packaged_template,
    upload_lambda_zip,
)
from firehose.deploy.template import TEMPLATE_PATH, TemplateError, load_template, rendered_template

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "package",
        help="build the Lambda zip and a packaged CloudFormation template",
        description=re.sub(r"``([^`]+)``", r"\1", __doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bucket", help="S3 bucket to upload the zip to (omit to build the zip only)")
    parser.add_argument("--prefix", default="", help="S3 key prefix for the zip (default: none)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("build/packaged.yaml"),
        help="packaged template to write (default: build/packaged.yaml)",
    )
    parser.add_argument(
        "--build-dir", type=Path, default=Path("build"), help="where lambda.zip is built (default: build)"
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=TEMPLATE_PATH,
        help=f"template to package (default: {TEMPLATE_PATH.name})",
    )
    parser.add_argument(
        "--template-only",
        action="store_true",
        help="write the rendered template to --output and nothing else: no zip, no upload",
    )
    parser.add_argument("--region", help="AWS region of the bucket (default: your AWS configuration)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (e.g. the embedded AWS); default: AWS")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.template.is_file():
        raise CommandError(f"template not found: {args.template}")
    try:
        if args.template_only:
            _write(args.output, rendered_template(args.template))
            print(f"wrote {args.output}")
            return 0
        template = load_template(args.template)
        platform = lambda_platform(template)
        zip_path = build_lambda_zip(args.build_dir, args.template)
    except (PackagingError, TemplateError) as error:
        raise CommandError(str(error)) from None
    size_mb = zip_path.stat().st_size / 1_000_000
    print(f"built {zip_path} ({size_mb:.1f} MB, {platform.architecture}, python{platform.python_version})")
    if not args.bucket:
        print("no --bucket given: the zip was not uploaded and no packaged template was written")
        return 0

    import boto3
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    s3: S3Client = boto3.client("s3", region_name=args.region, endpoint_url=args.endpoint_url)
    try:
        key = upload_lambda_zip(s3, zip_path, args.bucket, args.prefix)
    except (Boto3Error, BotoCoreError, ClientError) as error:
        raise CommandError(f"could not upload {zip_path.name} to s3://{args.bucket}: {error}") from None
    print(f"uploaded s3://{args.bucket}/{key}")

    _write(args.output, packaged_template(template, args.bucket, key))
    print(f"wrote {args.output}; deploy it with:")
    print(f"  {deploy_command(args.output, args.bucket, args.prefix)}")
    return 0


def _write(output: Path, text: str) -> None:
    """Written whole or not at all (a temporary file renamed); a folder or full disk is a one-line error."""
    from firehose.offline.transform import open_output

    try:
        with open_output(str(output), "w") as handle:
            handle.write(text)
    except OSError as error:
        raise CommandError(f"{output}: {error.strerror or error}") from None


def deploy_command(template: Path, bucket: str, prefix: str) -> str:
    """The ``aws cloudformation deploy`` command for a packaged template.

    The template is over the 51,200 bytes ``deploy`` sends inline, so the CLI refuses it without
    ``--s3-bucket``: it is uploaded next to the zip, under the same prefix.
    """
    words = [
        "aws", "cloudformation", "deploy",
        "--template-file", str(template),
        "--stack-name", "ctr-billing",
        "--capabilities", "CAPABILITY_IAM",
        "--s3-bucket", bucket,
    ]  # fmt: skip
    if prefix.strip("/"):
        words += ["--s3-prefix", prefix.strip("/")]
    return shlex.join(words)
