"""Build the Lambda zip and a packaged template, like ``aws cloudformation package``.

One zip serves every function in ``cloudformation/template.yaml``: the ``transform`` and ``lookup``
packages, the named queries (``cloudformation/queries/``, which the settlement export reads), and the
runtime dependencies (``[project].dependencies``: aws-lambda-powertools, tzdata) installed for the Lambda
platform the template declares - manylinux wheels for its architecture and Python version, never this
machine's. boto3 is left out: the Lambda runtime provides it.

``build_lambda_zip`` is deterministic (sorted entries, fixed timestamps), so the same sources give the
same bytes and the same content-addressed S3 key.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firehose.deploy.template import TEMPLATE_PATH, Template, dumps_template, load_template, resources_of_type
from transform.settlement.queries import QUERIES_DIR

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DISTRIBUTION = "connect-ctr-billing"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
LAMBDA_ZIP_NAME = "lambda.zip"
SOURCE_PACKAGES = ("transform", "lookup")
# Provided by the Lambda Python runtime; a second copy in the zip would shadow the runtime's.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
CODE_PARAMETERS = ("LambdaCodeBucket", "LambdaCodeKey")
# Files of the dependencies no function imports or reads, left out of the zip: Powertools' swagger-ui
# bundle (1.5 MB of JavaScript and CSS for the event handler's OpenAPI page, which no function serves),
# source maps, and type stubs (read by type checkers, never by the runtime).
UNUSED_SUFFIXES = (".js", ".css", ".map", ".pyi")

_ARCHITECTURE_WHEEL_SUFFIX = {"x86_64": "x86_64", "arm64": "aarch64"}
_PYTHON_RUNTIME = re.compile(r"python(3\.[0-9]+)")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class PackagingError(RuntimeError):
    """The zip or the packaged template could not be built; the message says why."""


@dataclass(frozen=True, slots=True)
class LambdaPlatform:
    """What the template's functions run on: ``arm64``/``x86_64`` and a ``3.x`` Python."""

    architecture: str
    python_version: str

    @property
    def pip_platforms(self) -> tuple[str, ...]:
        """Wheel platform tags the Lambda runtime (Amazon Linux 2023, glibc 2.34) can load."""
        suffix = _ARCHITECTURE_WHEEL_SUFFIX[self.architecture]
        return (f"manylinux2014_{suffix}", f"manylinux_2_28_{suffix}")


def lambda_platform(template: dict[str, Any]) -> LambdaPlatform:
    """The one platform of every function built from the packaged code (LambdaCodeBucket/Key)."""
    platforms: dict[LambdaPlatform, list[str]] = {}
    for logical_id, resource in resources_of_type(template, "AWS::Lambda::Function"):
        properties = resource.get("Properties", {})
        if properties.get("Code", {}).get("S3Bucket") != {"Ref": CODE_PARAMETERS[0]}:
            continue  # inline or separately packaged code
        runtime = str(properties.get("Runtime", ""))
        match = _PYTHON_RUNTIME.fullmatch(runtime)
        if match is None:
            raise PackagingError(f"{logical_id}: Runtime {runtime!r} is not a python3.x runtime")
        architectures = properties.get("Architectures", ["x86_64"])
        if architectures not in (["x86_64"], ["arm64"]):
            raise PackagingError(
                f"{logical_id}: Architectures must be [x86_64] or [arm64], got {architectures}"
            )
        platform = LambdaPlatform(architectures[0], match.group(1))
        platforms.setdefault(platform, []).append(logical_id)
    if not platforms:
        raise PackagingError(f"no Lambda function takes its code from {CODE_PARAMETERS[0]}")
    if len(platforms) > 1:
        described = "; ".join(
            f"{p.architecture}/python{p.python_version}: {', '.join(ids)}" for p, ids in platforms.items()
        )
        raise PackagingError(f"functions sharing the Lambda zip declare different platforms ({described})")
    return next(iter(platforms))


def runtime_requirements() -> list[str]:
    """The Lambda's runtime dependencies: ``[project].dependencies`` of pyproject.toml."""
    if PYPROJECT.is_file():
        project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
        return [str(requirement) for requirement in project["dependencies"]]
    requirements = importlib.metadata.requires(DISTRIBUTION) or []
    return [requirement for requirement in requirements if "extra ==" not in requirement]


def build_lambda_zip(output_dir: Path, template_path: Path = TEMPLATE_PATH) -> Path:
    """Build ``output_dir/lambda.zip`` for the template's Lambda platform and return its path.

    Dependencies are installed once per (requirements, platform) under ``output_dir/.lambda-deps``
    and reused by later builds; the zip itself is rebuilt from the current sources every time.
    """
    platform = lambda_platform(load_template(template_path))
    output_dir.mkdir(parents=True, exist_ok=True)
    dependencies = _installed_dependencies(runtime_requirements(), platform, output_dir / ".lambda-deps")
    zip_path = output_dir / LAMBDA_ZIP_NAME
    # A name of this build's own: two builds into one folder (parallel test workers) must not share it.
    handle, partial_name = tempfile.mkstemp(prefix=f".{LAMBDA_ZIP_NAME}.", suffix=".partial", dir=output_dir)
    os.close(handle)
    partial = Path(partial_name)
    entries = sorted(
        [*_dependency_entries(dependencies), *_source_entries(), *_query_entries()],
        key=lambda entry: entry[0],
    )
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, path in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
        partial.replace(zip_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return zip_path


def _installed_dependencies(requirements: Sequence[str], platform: LambdaPlatform, cache_root: Path) -> Path:
    key = hashlib.sha256(
        json.dumps([sorted(requirements), platform.architecture, platform.python_version]).encode()
    ).hexdigest()[:16]
    target = cache_root / f"{platform.architecture}-py{platform.python_version}-{key}"
    if (target / ".complete").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache_root))
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--only-binary=:all:",
        *(argument for tag in platform.pip_platforms for argument in ("--platform", tag)),
        "--implementation",
        "cp",
        "--python-version",
        platform.python_version,
        "--target",
        str(staging),
        *requirements,
    ]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if completed.returncode != 0:
            detail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
            raise PackagingError(
                f"pip could not install the Lambda dependencies for {platform.pip_platforms[0]} "
                f"python{platform.python_version}: " + " | ".join(detail)
            )
        (staging / ".complete").write_text(" ".join(requirements) + "\n", encoding="utf-8")
        if (target / ".complete").is_file():
            return target  # a parallel build finished first; its copy may be in use, so it stays
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _is_runtime_provided(top_level: str) -> bool:
    name = top_level.split("-", 1)[0].lower()
    return name in RUNTIME_PROVIDED


def _dependency_entries(root: Path) -> Iterator[tuple[str, Path]]:
    for path in _files(root):
        relative = path.relative_to(root)
        top = relative.parts[0]
        if top in ("bin", ".complete") or _is_runtime_provided(top) or path.name.endswith(UNUSED_SUFFIXES):
            continue
        yield relative.as_posix(), path


def _source_entries() -> Iterator[tuple[str, Path]]:
    for package in SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise PackagingError(f"cannot find the {package!r} package to put in the Lambda zip")
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        for path in _files(package_dir):
            relative = path.relative_to(package_dir)
            if "tests" in relative.parts or relative.name.startswith(("test_", "conftest")):
                continue
            if path.suffix not in (".py", ".typed", ".json", ".csv"):
                continue
            yield f"{package}/{relative.as_posix()}", path


def _query_entries() -> Iterator[tuple[str, Path]]:
    # At their path in the repository: the code finds them relative to its package, in both places.
    root = QUERIES_DIR.parents[1]
    for path in sorted(QUERIES_DIR.glob("*.sql")):
        yield path.relative_to(root).as_posix(), path


def _files(root: Path) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(directory) / name


# ---- upload and packaged template -------------------------------------------------------------


def code_key(zip_path: Path, prefix: str = "") -> str:
    """Content-addressed S3 key: the same zip always lands at the same key."""
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()[:20]
    name = f"lambda-{digest}.zip"
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


def upload_lambda_zip(s3: S3Client, zip_path: Path, bucket: str, prefix: str = "") -> str:
    """Upload the zip (skipped when that exact content is already there); returns its key."""
    from botocore.exceptions import ClientError

    key = code_key(zip_path, prefix)
    try:
        existing = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    else:
        if existing["ContentLength"] == zip_path.stat().st_size:
            return key
    s3.upload_file(str(zip_path), bucket, key)
    return key


def packaged_template(template: Template, bucket: str, key: str) -> str:
    """The rendered template as YAML, with ``LambdaCodeBucket``/``LambdaCodeKey`` defaulting to the
    uploaded zip."""
    parameters = template.get("Parameters", {})
    missing = [name for name in CODE_PARAMETERS if name not in parameters]
    if missing:
        raise PackagingError(f"the template has no parameter {', '.join(missing)}")
    packaged = {
        **template,
        "Parameters": {
            **parameters,
            **{
                name: {**parameters[name], "Default": value}
                for name, value in zip(CODE_PARAMETERS, (bucket, key), strict=True)
            },
        },
    }
    return dumps_template(packaged)
