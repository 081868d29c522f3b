"""``ctr-billing``: one command line for the offline transform, the embedded pipeline and operations.

Each subcommand lives in its own module under ``firehose/cli/commands/`` exposing
``register(subparsers)``; the parser dispatches to the ``handler`` it sets.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from firehose.cli.errors import CommandError

# Subcommand name -> its module (exposing ``register(subparsers)``). Modules are imported only when
# their command runs (or for the full help): ``demo`` pulls in moto and pyarrow, which
# ``ctr-billing transform`` must not pay for in start-up time and memory.
COMMANDS: dict[str, str] = {
    "demo": "firehose.cli.commands.demo",
    "serve": "firehose.cli.commands.serve",
    "transform": "firehose.cli.commands.transform",
    "directory": "firehose.cli.commands.directory",
    "query": "firehose.cli.commands.query",
    "export": "firehose.cli.commands.export",
    "rebill": "firehose.cli.commands.rebill",
    "package": "firehose.cli.commands.package",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every subcommand, or only the one ``argv`` names when it names one."""
    parser = argparse.ArgumentParser(
        prog="ctr-billing",
        description="Bill telehealth calls from Amazon Connect contact trace records.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    words = list(sys.argv[1:] if argv is None else argv)
    named = [name for name in COMMANDS if words and words[0] == name]
    for name in named or COMMANDS:
        importlib.import_module(COMMANDS[name]).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        status: int = args.handler(args)
    except CommandError as error:
        print(f"ctr-billing: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`ctr-billing query ... | head`): stop quietly, as Unix tools do. Python
        # would otherwise complain again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it
    return status


if __name__ == "__main__":
    sys.exit(main())
