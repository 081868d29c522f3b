"""The Lambda zip and the packaged template (``ctr-billing package``).

The zip is built once per session (pip reaches PyPI or its cache; dependencies are cached under the
build directory), for the platform cloudformation/template.yaml declares.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import boto3
import pytest

from firehose.cli.commands.package import deploy_command
from firehose.cli.main import main
from firehose.deploy.packaging import (
    RUNTIME_PROVIDED,
    SOURCE_PACKAGES,
    LambdaPlatform,
    PackagingError,
    build_lambda_zip,
    code_key,
    lambda_platform,
    packaged_template,
)
from firehose.deploy.template import load_template, loads_template, resources_of_type
from transform.settlement.queries import QUERIES_DIR, named_queries

# ELF e_machine of each Lambda architecture.
ELF_MACHINE = {"arm64": 183, "x86_64": 62}
# `aws cloudformation deploy` sends a template inline only up to this many bytes; above it the CLI
# refuses to run without --s3-bucket (awscli/customizations/cloudformation/deploy.py).
INLINE_TEMPLATE_LIMIT = 51_200
README = Path(__file__).resolve().parents[3] / "README.md"


# boto3 and the packages it imports, as the Lambda Python runtime provides them.
LAMBDA_RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lambda-build")


@pytest.fixture(scope="session")
def lambda_zip(build_dir: Path) -> Path:
    return build_lambda_zip(build_dir)


@pytest.fixture(scope="session")
def zip_names(lambda_zip: Path) -> list[str]:
    with zipfile.ZipFile(lambda_zip) as archive:
        return archive.namelist()


@pytest.fixture(scope="session")
def template_platform() -> LambdaPlatform:
    return lambda_platform(load_template())


def _handlers(template: dict[str, Any]) -> set[str]:
    return {
        function["Properties"]["Handler"]
        for _, function in resources_of_type(template, "AWS::Lambda::Function")
    }


def test_zip_holds_the_handlers_and_runtime_dependencies_only(zip_names: list[str]) -> None:
    # GIVEN the zip built for the template
    top_levels = {name.split("/")[0] for name in zip_names}

    # THEN every handler's module is in it
    for handler in _handlers(load_template()):
        module = handler.rsplit(".", 1)[0]
        assert f"{module.replace('.', '/')}.py" in zip_names, handler
    # AND the named queries the settlement export reads are, at their path in the repository
    queries = QUERIES_DIR.relative_to(QUERIES_DIR.parents[1]).as_posix()
    assert {f"{queries}/{name}.sql" for name in named_queries()} <= set(zip_names)
    # AND the runtime dependencies are, but not what Lambda provides (boto3) nor the local tooling
    assert {"aws_lambda_powertools", "tzdata", *SOURCE_PACKAGES} <= top_levels
    assert not {name for name in top_levels if name.split("-")[0].lower() in RUNTIME_PROVIDED}
    assert not {"firehose", "tests", "pyarrow", "moto", "duckdb", "bin"} & top_levels
    # AND no tests, bytecode or caches
    for name in zip_names:
        parts = name.split("/")
        assert "tests" not in parts and not parts[-1].startswith(("test_", "conftest")), name
        assert "__pycache__" not in parts and not name.endswith(".pyc"), name


def test_zip_leaves_out_the_static_assets_no_function_uses(lambda_zip: Path, zip_names: list[str]) -> None:
    # THEN Powertools' swagger-ui bundle, source maps and type stubs are not in the zip
    assert not [name for name in zip_names if name.endswith((".js", ".css", ".map", ".pyi"))]
    assert not [name for name in zip_names if "swagger_ui" in name and not name.endswith(".py")]
    # AND the zip is smaller than the 1.68 MB it was with them (the handlers still import: next tests)
    assert lambda_zip.stat().st_size < 1_400_000  # 1.25 MB (was 1.68 MB)


def test_native_extensions_are_built_for_the_template_architecture(
    lambda_zip: Path, zip_names: list[str], template_platform: LambdaPlatform
) -> None:
    # GIVEN the shared libraries in the zip
    libraries = [name for name in zip_names if name.endswith(".so") or ".so." in name]

    # THEN each is an ELF for the template's architecture and CPython version, not this machine's
    with zipfile.ZipFile(lambda_zip) as archive:
        for name in libraries:
            header = archive.read(name)[:20]
            assert header[:4] == b"\x7fELF", name
            assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[template_platform.architecture], (
                name
            )
            if "cpython-" in name:
                assert f"cpython-{template_platform.python_version.replace('.', '')}" in name, name


def test_handlers_import_from_the_zip(lambda_zip: Path, tmp_path: Path) -> None:
    # GIVEN the zip extracted as Lambda does. Its native libraries are built for the Lambda platform
    # (checked above) and cannot load here, so packages holding them are swapped for this machine's
    # build of the same version; everything else must come from the zip itself.
    with zipfile.ZipFile(lambda_zip) as archive:
        archive.extractall(tmp_path)
    native = {path.relative_to(tmp_path).parts[0] for path in tmp_path.rglob("*.so")}
    for package in native:
        (zip_dist,) = tmp_path.glob(f"{package}-*.dist-info")
        assert importlib.metadata.version(package) == zip_dist.name.removesuffix(".dist-info").split("-")[1]
        shutil.rmtree(tmp_path / package)
    # What the Lambda runtime itself provides (boto3 and what it imports), plus this machine's build of
    # the native packages, are the only things taken from outside the zip: the interpreter runs without
    # site-packages (-S), so a pure-Python dependency missing from the zip fails the import.
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    for module in (*native, *LAMBDA_RUNTIME_MODULES):
        origin = Path(importlib.import_module(module).__file__ or "")
        if origin.name == "__init__.py":  # a package: its folder
            (outside / module).symlink_to(origin.parent, target_is_directory=True)
        else:  # a single-file module (six)
            (outside / origin.name).symlink_to(origin)
    handlers = sorted(_handlers(load_template()))
    script = (
        "import importlib, json, sys\n"
        "out = {}\n"
        "for handler in sys.argv[1:]:\n"
        "    module, name = handler.rsplit('.', 1)\n"
        "    loaded = importlib.import_module(module)\n"
        "    out[handler] = [loaded.__file__, callable(getattr(loaded, name))]\n"
        "import aws_lambda_powertools, tzdata\n"
        "out['aws_lambda_powertools'] = [aws_lambda_powertools.__file__, True]\n"
        "out['tzdata'] = [tzdata.__file__, True]\n"
        "print(json.dumps(out))\n"
    )
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(outside)]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "DIRECTORY_TABLE": "provider-directory",
        # the settlement export reads its settings at cold start
        "ATHENA_WORKGROUP": "ctr-billing",
        "GLUE_DATABASE": "ctr_billing",
        "VENDOR_BUCKET": "ctr-billing-vendor",
        # the archive lock's policy
        "OBJECT_LOCK_MODE": "GOVERNANCE",
        "OBJECT_LOCK_RETENTION_DAYS": "2557",
    }

    # WHEN each handler is imported in a fresh interpreter (boto3 from this one, as Lambda provides it)
    completed = subprocess.run(
        [sys.executable, "-S", "-c", script, *handlers],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # THEN every handler resolves to a callable loaded from the zip's own files
    assert completed.returncode == 0, completed.stderr[-2000:]
    loaded = json.loads(completed.stdout)
    assert set(loaded) == {*handlers, "aws_lambda_powertools", "tzdata"}
    for name, (path, is_callable) in loaded.items():
        assert is_callable, name
        assert Path(path).resolve().is_relative_to(tmp_path.resolve()), f"{name} loaded from {path}"


def test_rebuilding_gives_the_same_bytes(lambda_zip: Path, build_dir: Path) -> None:
    # GIVEN the session's zip
    first = hashlib.sha256(lambda_zip.read_bytes()).hexdigest()

    # WHEN it is built again from the same sources
    again = build_lambda_zip(build_dir)

    # THEN the bytes, and so the content-addressed key, are the same
    assert hashlib.sha256(again.read_bytes()).hexdigest() == first
    assert code_key(again, "releases/") == code_key(lambda_zip, "releases")


def test_functions_sharing_the_zip_must_share_a_platform() -> None:
    # GIVEN a template where one function declares another architecture
    template = copy.deepcopy(load_template())
    template["Resources"]["AgentByExtensionFunction"]["Properties"]["Architectures"] = ["x86_64"]
    template["Resources"]["TransformCsvFunction"]["Properties"]["Architectures"] = ["arm64"]

    # WHEN/THEN packaging refuses, naming the functions
    with pytest.raises(PackagingError, match="AgentByExtensionFunction"):
        lambda_platform(template)


def test_platform_maps_to_manylinux_wheels() -> None:
    assert LambdaPlatform("arm64", "3.12").pip_platforms[0] == "manylinux2014_aarch64"
    assert LambdaPlatform("x86_64", "3.12").pip_platforms[0] == "manylinux2014_x86_64"


def test_packaged_template_defaults_the_code_parameters_and_changes_nothing_else() -> None:
    # GIVEN the template as CloudFormation receives it
    rendered = load_template()

    # WHEN it is packaged for an uploaded zip, then packaged again for a newer one
    first = packaged_template(rendered, "artifacts-bucket", "releases/lambda-aaaa.zip")
    second = packaged_template(loads_template(first), "artifacts-bucket", "releases/lambda-bbbb.zip")

    # THEN the code parameters default to the latest upload
    packaged = loads_template(second)
    parameters = packaged["Parameters"]
    assert parameters["LambdaCodeBucket"]["Default"] == "artifacts-bucket"
    assert parameters["LambdaCodeKey"]["Default"] == "releases/lambda-bbbb.zip"
    # AND everything else is the rendered template, in its order
    expected = copy.deepcopy(rendered)
    for name in ("LambdaCodeBucket", "LambdaCodeKey"):
        expected["Parameters"][name]["Default"] = parameters[name]["Default"]
    assert packaged == expected
    assert list(packaged["Parameters"]) == list(rendered["Parameters"])
    assert list(packaged["Resources"]) == list(rendered["Resources"])


def test_a_template_without_the_code_parameters_cannot_be_packaged() -> None:
    # GIVEN a template that declares no code parameters WHEN/THEN packaging refuses, naming them
    with pytest.raises(PackagingError, match="no parameter LambdaCodeBucket, LambdaCodeKey"):
        packaged_template({"Resources": {}}, "artifacts-bucket", "lambda.zip")


def test_package_template_only_writes_the_rendered_template_and_builds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an output path and a build folder
    output, build = tmp_path / "out" / "template.yaml", tmp_path / "build"

    # WHEN `ctr-billing package --template-only` runs (what `make template-checks` lints)
    status = main(["package", "--template-only", "--output", str(output), "--build-dir", str(build)])

    # THEN the template is written as CloudFormation receives it, and no zip is built
    assert status == 0
    assert loads_template(output.read_text(encoding="utf-8")) == load_template()
    assert not build.exists()
    assert f"wrote {output}" in capsys.readouterr().out


def test_package_reports_a_template_that_does_not_render_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a template embedding a file that is not there
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  Q:\n    Properties: { QueryString: !Embed gone.sql }\n", encoding="utf-8"
    )

    # WHEN it is packaged THEN the user gets one line naming the file, and nothing is written
    status = main(
        ["package", "--template-only", "--template", str(template), "--output", str(tmp_path / "t")]
    )
    assert status == 2
    assert "!Embed gone.sql: no such file" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def _options(command: str) -> dict[str, str]:
    return {word: value for word, value in pairwise([*shlex.split(command), ""]) if word.startswith("--")}


def _documented_deploy_commands() -> list[str]:
    """Every ``aws cloudformation deploy`` command of the README's shell blocks, continuations joined."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
    lines = (line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line.startswith("aws cloudformation deploy")]


def test_the_deploy_commands_upload_a_template_too_large_to_send_inline() -> None:
    # GIVEN the packaged template the deploy commands name, with a full-length code key
    packaged = packaged_template(load_template(), "my-artifacts", f"ctr-billing/lambda-{'0' * 64}.zip")
    too_large_to_send_inline = len(packaged.encode()) > INLINE_TEMPLATE_LIMIT

    # WHEN reading the command `ctr-billing package` prints and the ones the README documents
    printed = deploy_command(Path("build/packaged.yaml"), "my-artifacts", "ctr-billing/")
    documented = _documented_deploy_commands()

    # THEN each deploys the packaged template and, when it is too large to send inline, names the
    # artifacts bucket to upload it to
    assert documented, "README documents no `aws cloudformation deploy` command"
    for command in [printed, *documented]:
        options = _options(command)
        assert options["--template-file"] == "build/packaged.yaml", command
        if too_large_to_send_inline:
            assert options.get("--s3-bucket") == "my-artifacts", command
            assert options.get("--s3-prefix") == "ctr-billing", command


# ---- the command, against S3 on a local moto server --------------------------------------------------


@pytest.fixture
def s3_endpoint(aws_env: str) -> str:
    return aws_env


@pytest.mark.integration
def test_package_command_uploads_the_zip_and_writes_a_deployable_template(
    s3_endpoint: str, build_dir: Path, lambda_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an artifacts bucket
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="artifacts")
    output = tmp_path / "packaged.yaml"

    # WHEN `ctr-billing package` runs against it
    status = main(
        [
            "package",
            "--bucket",
            "artifacts",
            "--prefix",
            "ctr-billing/",
            "--output",
            str(output),
            "--build-dir",
            str(build_dir),
            "--endpoint-url",
            s3_endpoint,
            "--region",
            "us-east-1",
        ]
    )

    # THEN the packaged template is the rendered one, whose code parameters name the uploaded object,
    # byte for byte the zip
    assert status == 0
    packaged = loads_template(output.read_text(encoding="utf-8"))
    assert packaged["Resources"] == load_template()["Resources"]
    parameters = packaged["Parameters"]
    assert parameters["LambdaCodeBucket"]["Default"] == "artifacts"
    key = parameters["LambdaCodeKey"]["Default"]
    assert key.startswith("ctr-billing/lambda-") and key.endswith(".zip")
    uploaded = s3.get_object(Bucket="artifacts", Key=key)["Body"].read()
    assert uploaded == lambda_zip.read_bytes()
    printed = capsys.readouterr().out
    assert f"s3://artifacts/{key}" in printed
    # AND the deploy command it prints uploads the template to the same bucket and prefix
    assert deploy_command(output, "artifacts", "ctr-billing/") in printed


def test_package_command_reports_a_missing_bucket_without_a_traceback(
    s3_endpoint: str, build_dir: Path, lambda_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no such bucket WHEN packaging to it
    status = main(
        [
            "package",
            "--bucket",
            "no-such-bucket",
            "--output",
            str(tmp_path / "packaged.yaml"),
            "--build-dir",
            str(build_dir),
            "--endpoint-url",
            s3_endpoint,
        ]
    )

    # THEN the user gets one line naming the bucket, and no template is written
    assert status == 2
    assert "s3://no-such-bucket" in capsys.readouterr().err
    assert not (tmp_path / "packaged.yaml").exists()
