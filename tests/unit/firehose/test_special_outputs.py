"""Outputs that are devices or pipes are written in place, never replaced by a renamed file: an atomic
rename over ``/dev/null`` would turn the machine's null device into a regular file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from firehose.cli.main import main


def _drain(path: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(path, "rb") as pipe:
            into.append(pipe.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


@pytest.mark.parametrize(
    "command",
    [
        ["generate", "event", "firehose"],
        ["generate", "ctrs", "--contacts", "3"],
    ],
)
def test_a_pipe_output_stays_a_pipe(tmp_path: Path, command: list[str]) -> None:
    # GIVEN a named pipe as the output, with a reader at the other end
    pipe = tmp_path / "out.pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = _drain(pipe, received)
    # WHEN a command writes its output there
    status = main([*command, "--output", str(pipe)])
    reader.join(timeout=30)
    # THEN the data went through the pipe and the pipe is still a pipe
    assert status == 0
    assert received and received[0]
    assert stat.S_ISFIFO(pipe.stat().st_mode)
