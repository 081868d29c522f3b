"""``ctr-billing``: one command line for the offline transform, the embedded pipeline and operations.

Each subcommand lives in its own module under ``firehose/commands/`` exposing
``register(subparsers)``; the parser dispatches to the ``handler`` it sets.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from firehose.commands import demo as demo_command
from firehose.commands import directory as directory_command
from firehose.commands import export as export_command
from firehose.commands import package as package_command
from firehose.commands import query as query_command
from firehose.commands import serve as serve_command
from firehose.commands import transform as transform_command
from firehose.errors import CommandError

COMMAND_MODULES = (
    demo_command,
    transform_command,
    directory_command,
    query_command,
    export_command,
    package_command,
    serve_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctr-billing",
        description="Bill telehealth calls from Amazon Connect contact trace records.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as error:
        print(f"ctr-billing: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
