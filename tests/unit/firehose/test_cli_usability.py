"""The CLI's usability: --version, help on every option, plain help text, completion, progress, --json."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firehose.cli import main as cli
from firehose.offline.lake import LakeError, LocalLake, without_ansi
from firehose.pipeline.progress import PutProgress, progress_bar

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "firehose.cli.main"]


def _parsers(parser: argparse.ArgumentParser, path: str = "ctr-billing"):  # type: ignore[no-untyped-def]
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_version_prints_the_package_version() -> None:
    done = subprocess.run([*CLI, "--version"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("ctr-billing ")
    assert done.stdout.split()[1][0].isdigit() or done.stdout.split()[1] == "unknown"


def test_every_option_of_every_command_has_help() -> None:
    missing = [
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, parser in _parsers(cli.build_parser([]))
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction | argparse._VersionAction)
        and not action.help
    ]
    assert missing == []


def test_help_has_no_restructuredtext_markup() -> None:
    for path, parser in _parsers(cli.build_parser([])):
        assert "``" not in parser.format_help(), path


def test_the_completion_summaries_are_the_commands_own_help() -> None:
    parser = cli.build_parser([])
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    assert helps == cli.SUMMARIES


def _complete(line: str) -> list[str]:
    environment = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "COMP_TYPE": "9",
    }
    # argcomplete answers on file descriptor 8, as the shell's completion function reads it.
    command = " ".join(CLI) + " 8>&1 1>/dev/null 2>/dev/null"
    done = subprocess.run(
        ["bash", "-c", command], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    return [word.strip() for word in done.stdout.split("\n") if word.strip()]


def test_completion_offers_the_subcommands() -> None:
    words = _complete("ctr-billing ")
    assert {"demo", "transform", "query", "generate", "completion"} <= set(words)
    assert _complete("ctr-billing tr") == ["transform"]


def test_completion_offers_a_commands_options() -> None:
    words = _complete("ctr-billing transform --")
    assert {"--input", "--format", "--output", "--json"} <= set(words)
    assert set(_complete("ctr-billing query --format ")) == {"table", "csv", "json"}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_a_script_for_the_shell(shell: str) -> None:
    done = subprocess.run([*CLI, "completion", shell], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "ctr-billing" in done.stdout
    assert "_ARGCOMPLETE" in done.stdout


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_total_percentage_and_eta_on_a_terminal() -> None:
    terminal = Terminal()
    with progress_bar(terminal, desc="transform", unit=" CTRs", total=200) as bar:
        bar.update(100)
    last = terminal.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("transform:")
    assert "%" in last
    assert "/200" in last
    assert "<" in last  # elapsed<remaining


def test_the_progress_bar_draws_nothing_off_a_terminal() -> None:
    log = io.StringIO()
    with progress_bar(log, desc="rebill", unit="B", total=10, bytes_=True) as bar:
        bar.update(5)
    assert log.getvalue() == ""


def test_the_demo_bar_says_handled_and_then_drains_to_a_total() -> None:
    terminal = Terminal()
    counts = {"raw": {"delivered": 4}, "vendor": {"delivered": 2, "dropped": 2}}
    with PutProgress(terminal, lambda: counts, {"raw": "RawDeliveryStream"}, total=4) as progress:
        progress.put(4)
        progress.draining(4)
    shown = terminal.getvalue().replace("\r", "\n")
    assert "delivered:" not in shown
    assert "handled: raw 4, vendor 4" in shown
    assert "put: 100%" in shown
    assert "drain: 100%" in shown
    assert "8/8" in shown


def test_sql_parse_errors_carry_no_ansi_codes(tmp_path: Path) -> None:
    (tmp_path / "billing_rows").mkdir()
    with LocalLake(tmp_path) as lake, pytest.raises(LakeError) as raised:
        lake.query("SELECT FROM WHERE (")
    assert "\x1b" not in str(raised.value)
    assert without_ansi("\x1b[4mbad\x1b[0m token") == "bad token"
