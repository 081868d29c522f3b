"""``ctr-billing rebill`` on a raw archive of 1,000,000 realistic CTRs, beside the read-and-parse floor.

The archive is what a rebill of 2026-11-02 reads with the default window: every object that arrived
from 2026-11-01 through 2026-11-05 (UTC), i.e. five days of a busy contact center's traffic (~200,000
records a day), as the raw delivery stream leaves it: GZIP JSON lines under ``ctr/YYYY/MM/DD/HH/``, one
object per five minutes of arrival (Firehose's 300 s buffer), CTRs of ~2.3 KB built by
``tests/support/ctr_factory.py`` (inbound, outbound and transferred calls, voicemail, abandoned, chat,
supervisor monitors), 4 % of contacts republished up to two hours later with a changed attribute, and
agent events sharing the stream. Every record is read and billed; the rebilled day's are written and
settled. Generated once into ``.bench/`` (minutes).

Measured, each in a fresh process (so its peak RSS is its own):
  * floor  -- gunzip every object and ``decode_ctr_fields`` of every line, nothing else, one process;
  * rebill -- ``ctr-billing rebill --date 2026-11-02`` to a folder, one process (``--jobs 1``) and with
              the default pool (one process per core).
Peak RSS is the main process's and the largest worker's. The same runs on 100,000 CTRs show how memory
grows with the archive. Target (issue 10): >= 50,000 CTRs/s with flat memory. Figures only, never a
pass/fail assertion.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
DAY = "2026-11-02"
# Contacts start from the day before DAY and stop early enough that every record (republished ones
# included) arrives before the window ends (DAY + 3 days, end of day).
TRAFFIC_START = datetime(2026, 11, 1, tzinfo=UTC)
TRAFFIC_SECONDS = (4 * 24 + 20) * 3600
TARGET_RATE = 50_000
OBJECT_SECONDS = 300  # the raw stream's buffer interval: one object per five minutes of arrival
REPUBLISH_RATE = 0.04
AGENT_EVENT_RATE = 0.08
BILLABLE_SHARE = 0.8

_MEASURE = """
import json, os, resource, sys, time
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
times = os.times()
print(json.dumps({{
    "seconds": seconds,
    # CPU time of the process and of its (joined) pool workers: steadier than wall time on a shared machine.
    "cpu_seconds": times.user + times.system + times.children_user + times.children_system,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}}))
"""

_FLOOR = """
import gzip
from pathlib import Path
from transform.core.decoding import decode_ctr_fields
lines_read = 0
for path in sorted(Path(sys.argv[1]).rglob("*.gz")):
    with gzip.open(path, "rb") as lines:
        for line in lines:
            lines_read += 1
            try:
                decode_ctr_fields(line)
            except Exception:
                pass
print(json.dumps({"lines": lines_read}))
"""

# The CLI as a user runs it; the settlement (the export's own code, after every object is read) is timed
# apart, with the peak RSS reached before it.
_REBILL = """
import contextlib, io
import firehose.offline.rebill.run
from firehose.cli.main import main
phases = {}
settle = firehose.offline.rebill.run.settle
def timed_settle(*args, **kwargs):
    phases["read_seconds"] = time.perf_counter() - start
    phases["read_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    result = settle(*args, **kwargs)
    phases["settle_seconds"] = time.perf_counter() - began
    return result
firehose.offline.rebill.run.settle = timed_settle
output = io.StringIO()
with contextlib.redirect_stdout(output):
    status = main(["rebill", "--date", sys.argv[2], "--raw", sys.argv[1], "--to", sys.argv[3], "--json", *sys.argv[4:]])
assert status == 0, status
summary = json.loads(output.getvalue())
print(json.dumps({"lines": summary["lines"], "rows": summary["billing"]["rows"], "jobs": summary["jobs"],
                  "lake_rows": summary["rows_written"], "sha256": summary["billing"]["sha256"], **phases}))
"""


def _builders() -> tuple[list[Callable[..., dict[str, Any]]], list[Callable[..., dict[str, Any]]]]:
    sys.path.insert(0, str(ROOT))
    from tests.support.ctr_factory import BILLABLE_KINDS, NOT_BILLABLE_KINDS

    return list(BILLABLE_KINDS), list(NOT_BILLABLE_KINDS)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_archive(count: int, seed: int = 7) -> Path:
    """``count`` records (CTRs, republished versions, agent events) as GZIP objects keyed by arrival:
    ``WORK/rebill-<count>/raw/ctr/YYYY/MM/DD/HH/ctr-billing-raw-…gz``."""
    root = WORK / f"rebill-window-{count}" / "raw"
    done = root.parent / "complete"
    if done.exists():
        return root
    billable_kinds, other_kinds = _builders()
    from tests.support.ctr_factory import agent_event

    rng = random.Random(seed)
    writers: dict[int, gzip.GzipFile] = {}

    def put(arrived: datetime, document: dict[str, Any]) -> None:
        bucket = int(arrived.timestamp()) // OBJECT_SECONDS
        writer = writers.get(bucket)
        if writer is None:
            opened = datetime.fromtimestamp(bucket * OBJECT_SECONDS, UTC)
            folder = root / "ctr" / f"{opened:%Y/%m/%d/%H}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"ctr-billing-raw-1-{opened:%Y-%m-%d-%H-%M-%S}-{uuid.UUID(int=rng.getrandbits(128))}.gz"
            # Firehose compresses with standard GZIP; level 6 keeps generation quick.
            writer = writers[bucket] = gzip.GzipFile(folder / name, "wb", compresslevel=6)
        writer.write(json.dumps(document, separators=(",", ":")).encode() + b"\n")

    records = 0
    spacing = TRAFFIC_SECONDS / (count * (1 - AGENT_EVENT_RATE) / (1 + REPUBLISH_RATE))
    end = TRAFFIC_START + timedelta(seconds=TRAFFIC_SECONDS)
    clock = TRAFFIC_START
    while records < count:
        clock += timedelta(seconds=rng.uniform(0, 2 * spacing))
        initiated = min(clock, end)
        if rng.random() < AGENT_EVENT_RATE:
            event = agent_event()
            event["EventTimestamp"] = _iso(initiated)
            put(initiated + timedelta(seconds=rng.randint(1, 5)), event)
            records += 1
            continue
        builder = rng.choice(billable_kinds if rng.random() < BILLABLE_SHARE else other_kinds)
        ctr = builder(
            contact_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            initiated=initiated,
            queue_seconds=rng.randrange(5, 300),
            talk_seconds=rng.randrange(30, 2400),
            hold_seconds=rng.choice((0, 0, 15, 60, 240)),
            number_of_holds=rng.randrange(0, 3),
            phone=f"+1202555{rng.randrange(100, 200):04d}",
            extension=rng.choice((None, f"{rng.randrange(1000, 1040)}")),
            agent_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            username=rng.choice(("dr.okafor", "dr.lindqvist", "np.haddad", "dr.moreau")),
        )
        updated = datetime.fromisoformat(ctr["LastUpdateTimestamp"])
        put(updated + timedelta(seconds=rng.randint(1, 30)), ctr)
        records += 1
        if records < count and rng.random() < REPUBLISH_RATE:
            # Connect republishes when attributes change after the contact: same ContactId, later update.
            later = updated + timedelta(minutes=rng.randint(5, 120))
            ctr["Attributes"] = {**ctr["Attributes"], "followUpBooked": "true"}
            ctr["LastUpdateTimestamp"] = _iso(later)
            put(later + timedelta(seconds=rng.randint(1, 30)), ctr)
            records += 1
    for writer in writers.values():
        writer.close()
    done.write_text(f"{records}\n")
    return root


def _measure(body: str, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(body=body), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"measurement failed: {completed.stderr[-2000:]}")
    lines = completed.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    if len(lines) > 1:
        result.update(json.loads(lines[-2]))
    return result


def run_size(count: int) -> dict[str, dict[str, Any]]:
    raw = make_archive(count)
    size = sum(path.stat().st_size for path in raw.rglob("*.gz"))
    objects = sum(1 for _ in raw.rglob("*.gz"))
    print(f"raw archive of {count:,} records: {objects} objects, {size / 2**20:.0f} MB GZIP ({raw})")
    out = WORK / f"rebill-window-{count}" / "out"
    results = {
        "floor": _measure(_FLOOR, str(raw)),
        "rebill --jobs 1": _measure(_REBILL, str(raw), DAY, str(out), "--jobs", "1"),
        "rebill": _measure(_REBILL, str(raw), DAY, str(out)),
    }
    floor = results["floor"]
    print(f"  {'':<16} {'CTRs/s':>9} {'wall':>7} {'CPU':>7} {'vs floor':>9} {'peak RSS':>9} {'worker':>7}")
    for name, measured in results.items():
        rate = measured["lines"] / measured["seconds"]
        worker = f"{measured['worker_rss_mb']:.0f} MB" if measured.get("worker_rss_mb") else "-"
        ratio = "" if name == "floor" else f"{measured['seconds'] / floor['seconds']:.2f}x"
        print(
            f"  {name:<16} {rate:>9,.0f} {measured['seconds']:>6.1f}s {measured['cpu_seconds']:>6.1f}s "
            f"{ratio:>9} {measured['rss_mb']:>6.0f} MB {worker:>7}"
        )
    for name in ("rebill --jobs 1", "rebill"):
        measured = results[name]
        verdict = "meets" if measured["lines"] / measured["seconds"] >= TARGET_RATE else "MISSES"
        print(
            f"  {name}: {measured['jobs']} process(es); read {measured['read_seconds']:.1f} s "
            f"(peak RSS {measured['read_rss_mb']:.0f} MB), settle {measured['settle_seconds']:.1f} s; "
            f"{measured['lake_rows']:,} versions of the day's partitions, {measured['rows']:,} billed rows "
            f"({verdict} >= {TARGET_RATE:,}/s)"
        )
    assert results["rebill --jobs 1"]["sha256"] == results["rebill"]["sha256"], "the pool changed the file"
    return results


def main(count: int | None = None) -> None:
    count = count or int(os.environ.get("BENCH_REBILL_CTRS", "1000000"))
    small = max(count // 10, 1)
    large = run_size(count)
    baseline = run_size(small)
    print(f"peak RSS at {count:,} / {small:,} records:")
    for name in ("rebill --jobs 1", "rebill"):
        growth = [
            f"main process {large[name]['rss_mb'] / baseline[name]['rss_mb']:.2f}x",
            f"before the settlement {large[name]['read_rss_mb'] / baseline[name]['read_rss_mb']:.2f}x",
        ]
        if large[name].get("worker_rss_mb") and baseline[name].get("worker_rss_mb"):
            growth.append(
                f"largest worker {large[name]['worker_rss_mb'] / baseline[name]['worker_rss_mb']:.2f}x"
            )
        print(f"  {name}: {', '.join(growth)}")


if __name__ == "__main__":
    main()
