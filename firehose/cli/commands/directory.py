"""``ctr-billing directory``: manage the provider directory (agent -> extension) in DynamoDB.

    ctr-billing directory import FILE.csv      # agentId,extension,username; all or nothing
    ctr-billing directory export [--output F]  # CSV with header, re-importable
    ctr-billing directory set AGENT EXT [--username U]
    ctr-billing directory remove AGENT

The table is ``--table`` or ``DIRECTORY_TABLE``; AWS is reached the standard way (profile, env
credentials, ``AWS_DEFAULT_REGION``), or the embedded AWS with ``--endpoint-url`` / ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from firehose.cli.errors import CommandError
from firehose.offline import directory_files as directory
from firehose.offline.transform import open_output
from lookup.directory import DirectoryError
from lookup.directory_admin import DirectoryAdmin


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "directory",
        help="manage the provider directory (agent -> extension)",
        description=(
            "Manage the provider directory table: which extension rings which provider. "
            "Extensions are 1-5 digits (other scripts' digits are stored as ASCII; leading zeros are kept) "
            "and belong to one agent at most: 0417 and 417 cannot belong to two agents."
        ),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--table", help="directory table name (default: $DIRECTORY_TABLE)")
    common.add_argument(
        "--endpoint-url", help="AWS endpoint, e.g. the embedded AWS (default: $AWS_ENDPOINT_URL)"
    )
    common.add_argument("--region", help="AWS region (default: the standard AWS configuration)")
    actions = parser.add_subparsers(dest="directory_action", required=True, metavar="ACTION")

    importer = actions.add_parser(
        "import",
        parents=[common],
        help="add or update entries from a CSV file (all or nothing)",
        description="Columns agentId,extension,username (header required, each column once; UTF-8). "
        "Every line is checked before anything is written; every bad line is reported.",
    )
    importer.add_argument("file", metavar="FILE.csv", help="CSV file, or - for stdin")
    importer.set_defaults(handler=run_import)

    exporter = actions.add_parser("export", parents=[common], help="write the directory as CSV")
    exporter.add_argument(
        "--output",
        default="-",
        help="output file (default: stdout), written whole or not at all; usernames a spreadsheet "
        "would run as a formula get a ' prefix, which import removes",
    )
    exporter.set_defaults(handler=run_export)

    setter = actions.add_parser("set", parents=[common], help="give an agent an extension")
    setter.add_argument("agent", metavar="AGENT", help="the agent's id (last segment of its ARN)")
    setter.add_argument("extension", metavar="EXT", help="1-5 digits")
    setter.add_argument(
        "--username",
        help="the agent's Connect user name (the voicemail solution's nightly sync rewrites any other)",
    )
    setter.set_defaults(handler=run_set)

    remover = actions.add_parser("remove", parents=[common], help="remove an agent's extension")
    remover.add_argument("agent", metavar="AGENT", help="the agent's id (last segment of its ARN)")
    remover.set_defaults(handler=run_remove)


def open_table(args: argparse.Namespace) -> DirectoryAdmin:
    table_name = args.table or os.environ.get("DIRECTORY_TABLE", "").strip()
    if not table_name:
        raise CommandError("no directory table: pass --table or set DIRECTORY_TABLE")
    import boto3
    from botocore.exceptions import NoRegionError

    try:
        client = boto3.client(
            "dynamodb", endpoint_url=args.endpoint_url or None, region_name=args.region or None
        )
    except NoRegionError:
        raise CommandError("no AWS region: pass --region or set AWS_DEFAULT_REGION") from None
    return DirectoryAdmin(client, table_name)


@contextmanager
def _aws_errors() -> Iterator[None]:
    try:
        yield
    except DirectoryError as error:
        raise CommandError(str(error)) from None


def run_import(args: argparse.Namespace) -> int:
    table = open_table(args)
    data = _read_input(args.file)
    with _aws_errors():
        count = directory.import_csv(table, data)
    print(f"imported {count} entr{'y' if count == 1 else 'ies'} into {table.table_name}", file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    table = open_table(args)
    try:
        with _aws_errors(), open_output(args.output, "w") as output:
            count = directory.export_csv(table, output)
    except OSError as error:
        raise CommandError(f"{args.output}: {error.strerror or error}") from None
    print(f"exported {count} entr{'y' if count == 1 else 'ies'} from {table.table_name}", file=sys.stderr)
    return 0


def run_set(args: argparse.Namespace) -> int:
    table = open_table(args)
    with _aws_errors():
        extension = directory.set_extension(table, args.agent, args.extension, args.username)
    print(f"agent {args.agent} now has extension {extension}", file=sys.stderr)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    table = open_table(args)
    with _aws_errors():
        directory.remove_agent(table, args.agent)
    print(f"agent {args.agent} no longer has an extension", file=sys.stderr)
    return 0


MAX_INPUT = 64 * 1024 * 1024


def _read_input(path: str) -> bytes:
    """The import file's bytes (decoded strictly, with line numbers, by ``import_csv``)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_INPUT + 1)
    except OSError as error:
        raise CommandError(f"{path}: {error.strerror or error}") from None
    if len(data) > MAX_INPUT:
        raise CommandError(f"{path}: larger than {MAX_INPUT // (1024 * 1024)} MiB; split the import")
    return data
