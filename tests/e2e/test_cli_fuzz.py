"""CLI fuzz (issue 13, "Prove it"): every ``ctr-billing`` subcommand over hostile files and arguments
for a bounded time from a fixed seed: no traceback, no write outside the named outputs, no planted
PHI in stderr, inputs never modified. ``CLI_FUZZ_SECONDS`` (default 60) bounds it; the longer
campaign is ``python -m bench.bench_cli_fuzz``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support.cli_fuzz import Campaign, report_lines

pytest_plugins = ["tests.support.lookup_fixtures"]
pytestmark = [pytest.mark.e2e]

SEED = 20261102


def test_every_subcommand_survives_hostile_files_and_arguments(
    aws_env: str, directory_table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seconds = float(os.environ.get("CLI_FUZZ_SECONDS", "60"))
    report = Campaign(tmp_path / "sandbox", SEED, aws_env, directory_table).run(seconds)
    with capsys.disabled():
        print("\n" + "\n".join(report_lines(report)))
    assert set(report.by_command) >= {
        "transform",
        "export",
        "rebill",
        "query",
        "directory",
        "generate",
        "lock-archive",
    }
    assert report.violations == {}, report.summary()
    # AND the devices the campaign names as outputs are still devices: an atomic rename over /dev/null
    # would turn the machine's null device into a file
    for device in ("/dev/null", "/dev/full"):
        assert stat.S_ISCHR(os.stat(device).st_mode), device
