"""``ctr-billing completion bash|zsh``: the shell completion script, argcomplete's.

    eval "$(ctr-billing completion bash)"    # in ~/.bashrc
    eval "$(ctr-billing completion zsh)"     # in ~/.zshrc

The same script as ``register-python-argcomplete ctr-billing`` (argcomplete's own command) prints.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

SHELLS = ("bash", "zsh")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "completion",
        help="print the bash or zsh completion script for ctr-billing",
        description=re.sub(r"``([^`]+)``", r"\1", __doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in: bash or zsh")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["ctr-billing"], shell=args.shell))
    return 0
