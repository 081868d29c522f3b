"""``ctr-billing``: one command line for the offline transform, the embedded pipeline and operations.

Each subcommand lives in its own module under ``firehose/cli/commands/`` exposing
``register(subparsers)``; the parser dispatches to the ``handler`` it sets. Shell completion is
argcomplete's (``ctr-billing completion bash|zsh`` prints the script to source).
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
    "lock-archive": "firehose.cli.commands.lock_archive",
    "package": "firehose.cli.commands.package",
    "report": "firehose.cli.commands.report",
    "generate": "firehose.cli.commands.generate",
    "completion": "firehose.cli.commands.completion",
}
# Each command's one-line help, for completing the command's name without importing every module
# (``demo`` takes seconds to import); a test checks they are the modules' own.
SUMMARIES: dict[str, str] = {
    "demo": "run the whole pipeline locally on simulated (or given) CTRs",
    "serve": "run the embedded AWS and the local Firehose runtime until Ctrl-C",
    "transform": "transform a file of CTRs (JSON lines, plain or .gz) into billing rows",
    "directory": "manage the provider directory (agent -> extension)",
    "query": "run Athena SQL or a named query on a local data lake (DuckDB)",
    "export": "write the vendor's settled CSV and manifest for one billing day",
    "rebill": "recompute a billing day from the raw archive with the current rules and settings",
    "lock-archive": "check (and with --apply, set) the Object Lock retention of a day's raw archive versions",
    "package": "build the Lambda zip and a packaged CloudFormation template",
    "generate": "write example inputs: simulated CTRs, or a ready event for the Lambdas",
    "completion": "print the bash or zsh completion script for ctr-billing",
    "report": "write one billing day's charts as a self-contained HTML file",
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("connect-ctr-billing")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every subcommand, or only the one ``argv`` names when it names one."""
    parser = argparse.ArgumentParser(
        prog="ctr-billing",
        description="Bill telehealth calls from Amazon Connect contact trace records.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    words = list(sys.argv[1:] if argv is None else argv)
    completing = "_ARGCOMPLETE" in os.environ
    if completing:
        words = _completion_words()
    named = [name for name in COMMANDS if words and words[0] == name]
    if (completing and not named) or (words and words[0] == "--version"):
        # Completing the command's name: its help is enough, without importing every command.
        for name in COMMANDS:
            subparsers.add_parser(name, help=SUMMARIES.get(name))
        return parser
    for name in named or COMMANDS:
        importlib.import_module(COMMANDS[name]).register(subparsers)
    return parser


def _completion_words() -> list[str]:
    """The words after ``ctr-billing`` on the command line being completed (argcomplete's COMP_LINE)."""
    import shlex

    line = os.environ.get("COMP_LINE", "")
    point = int(os.environ.get("COMP_POINT", len(line)))
    try:
        words = shlex.split(line[:point])
    except ValueError:  # an open quote
        words = line[:point].split()
    # The word being typed is not a command yet unless a space follows it.
    complete = words[1:] if line[:point].endswith(" ") else words[1:-1]
    return complete


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser)  # answers the shell and exits
    args = parser.parse_args(argv)
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
