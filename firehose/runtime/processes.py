"""Process figures for the demo and the benchmark, read from /proc (Linux). Imports nothing heavy:
the embedded AWS's server process imports it too."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb(pid: int) -> float | None:
    """A running process's peak resident set size (``VmHWM``) in MiB; None if unknown (ended, not Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None
