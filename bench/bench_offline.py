"""The offline CLI (``ctr-billing transform``) on 1,000,000 realistic CTRs.

Target (issue 2): >= 30,000 CTRs/s and peak RSS under 300 MB, per output format. Baseline in the same
run: the floor, reading the same lines and ``json.loads`` of each, nothing else.
Each measurement runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "firehose" / "data" / "example-ctrs.jsonl"
WORK = ROOT / ".bench"
TARGET_RATE = 30_000
TARGET_RSS_MB = 300

_MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

_FLOOR = """
with open(sys.argv[1], encoding="utf-8") as lines:
    for line in lines:
        json.loads(line)
"""

_CLI = """
import contextlib, io
from firehose.cli.main import main
with contextlib.redirect_stderr(io.StringIO()):
    main(["transform", "--input", sys.argv[1], "--format", sys.argv[2], "--output", sys.argv[3], "--no-progress"])
"""


def make_input(count: int) -> Path:
    """``count`` CTRs cycling through the bundled examples, each with its own ContactId."""
    path = WORK / f"ctrs-{count}.jsonl"
    if path.exists():
        return path
    WORK.mkdir(exist_ok=True)
    examples = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    templates = [json.dumps(ctr) for ctr in examples if "ContactId" in ctr]
    ids = [ctr["ContactId"] for ctr in examples if "ContactId" in ctr]
    with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as out:
        for number in range(count):
            index = number % len(templates)
            out.write(templates[index].replace(ids[index], f"{ids[index][:24]}{number:012d}") + "\n")
    path.with_suffix(".tmp").rename(path)
    return path


def _measure(body: str, *args: str) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(body=body), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main(count: int = 1_000_000) -> None:
    source = make_input(count)
    print(f"offline CLI on {count:,} CTRs ({source.stat().st_size / count:.0f} B each)")
    floor = _measure(_FLOOR, str(source))
    print(
        f"  floor (read + json.loads): {count / floor['seconds']:>10,.0f} CTRs/s  peak RSS {floor['rss_mb']:.0f} MB"
    )
    for output_format in ("csv", "json", "parquet"):
        output = WORK / f"offline.{output_format}"
        measured = _measure(_CLI, str(source), output_format, str(output))
        rate = count / measured["seconds"]
        verdict = "meets" if rate >= TARGET_RATE and measured["rss_mb"] < TARGET_RSS_MB else "MISSES"
        print(
            f"  {output_format:<8}: {rate:>10,.0f} CTRs/s  peak RSS {measured['rss_mb']:.0f} MB  "
            f"time {measured['seconds'] / floor['seconds']:.2f}x the floor  "
            f"({verdict} >= {TARGET_RATE:,}/s and < {TARGET_RSS_MB} MB)"
        )
        output.unlink(missing_ok=True)


if __name__ == "__main__":
    main(int(os.environ.get("BENCH_OFFLINE_CTRS", "1000000")))
