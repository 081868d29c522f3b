"""Pipeline throughput and peak memory: ``ctr-billing demo``'s pipeline at 10,000 and 100,000 contacts.

Each measurement runs in a fresh process (so peak RSS is its own) on the embedded AWS with the template
deployed, side by side with a baseline in the same run:

* ``put-only``: the same records put into the embedded Kinesis with no delivery stream running, the
  ceiling the embedded AWS sets;
* ``pipeline``: the stack as deployed, every record through the three delivery streams until drained;
* ``pipeline, no ledger``: the same after UpdateFunctionConfiguration removes the vendor transform's
  LEDGER_TABLE (the billing ledger makes one DynamoDB call per billable contact).

Figures, never pass/fail: records/s end to end (first put to last object written), the ratio to the
put-only baseline, peak RSS of the process holding the embedded AWS and the runtime, and of the
largest Lambda worker.

    python -m bench.bench_pipeline                   # all sizes and variants
    python -m bench.bench_pipeline --one 10000 pipeline   # one measurement, JSON on stdout
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = (10_000, 100_000)
VARIANTS = ("put-only", "pipeline", "pipeline, no ledger")


def measure(contacts: int, variant: str) -> dict[str, Any]:
    """One measurement in this process."""
    from firehose.commands.demo import put_all, start_pipeline
    from firehose.embedded import DeployedStack, EmbeddedAws, deploy_stack, lambda_zip
    from firehose.simulator import ConnectSimulator

    def without_ledger(aws: EmbeddedAws, stack: DeployedStack) -> None:
        client = aws.client("lambda")
        name = stack.resources["TransformCsvFunction"]
        configuration = client.get_function_configuration(FunctionName=name)
        # moto echoes template values as given (a Number parameter is an int); the API takes strings.
        variables = {key: str(value) for key, value in configuration["Environment"]["Variables"].items()}
        variables.pop("LEDGER_TABLE", None)
        client.update_function_configuration(FunctionName=name, Environment={"Variables": variables})

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        work = Path(scratch)
        build = Path(tempfile.gettempdir()) / "ctr-billing-build"
        simulator = ConnectSimulator(contacts, seed=1)
        records = ((record.data, record.partition_key) for record in simulator.records())
        worker_rss = 0.0
        if variant == "put-only":
            with EmbeddedAws() as aws:
                stack = deploy_stack(aws, lambda_zip(build))
                started = time.perf_counter()
                put = put_all(
                    aws.client("kinesis"), stack.resources["ContactTraceRecordsStream"], records, _ignore
                )
                seconds = time.perf_counter() - started
        else:
            hook = without_ledger if variant == "pipeline, no ledger" else None
            pipeline = start_pipeline(work, build, 1.0, before_runtime=hook)
            try:
                started = time.perf_counter()
                trimming = _Trimmer(pipeline)
                put = put_all(pipeline.aws.client("kinesis"), pipeline.stream_name(), records, trimming.tick)
                pipeline.runtime.drain(timeout=3600)
                seconds = time.perf_counter() - started
                worker_rss = _lambda_worker_peak_rss_mb()
            finally:
                pipeline.runtime.stop(drain=False)
                pipeline.aws.stop()
    return {
        "contacts": contacts,
        "variant": variant,
        "records": put,
        "seconds": round(seconds, 2),
        "records_per_second": round(put / seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_lambda_worker_mb": worker_rss,
    }


class _Trimmer:
    """Between PutRecords calls, pace the producer as the demo does and let the embedded Kinesis forget
    what every delivery stream delivered."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self._last = time.monotonic()

    def tick(self, put: int) -> None:
        from firehose.commands.demo import hold_back

        hold_back(self._pipeline, put)
        if time.monotonic() - self._last >= 0.5:
            self._pipeline.trim_delivered()
            self._last = time.monotonic()


def _lambda_worker_peak_rss_mb() -> float:
    """The largest peak RSS (VmHWM) of this process's Lambda workers, from /proc (Linux)."""
    peak = 0
    me = str(os.getpid())
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields.get("PPid", "").strip() == me and b"lambda_worker" in command:
            peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]))
    return round(peak / 1024, 1)


def _ignore(_: int) -> None:
    pass


def main(sizes: tuple[int, ...] = SIZES) -> None:
    results: list[dict[str, Any]] = []
    for contacts in sizes:
        for variant in VARIANTS:
            completed = subprocess.run(
                [sys.executable, "-m", "bench.bench_pipeline", "--one", str(contacts), variant],
                capture_output=True,
                text=True,
                check=False,
                timeout=3600,
            )
            if completed.returncode != 0:
                print(completed.stderr[-2000:], file=sys.stderr)
                raise RuntimeError(f"measurement {contacts} {variant} failed")
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    print(
        f"{'contacts':>9} {'variant':<21} {'records':>8} {'seconds':>8} {'records/s':>10} "
        f"{'vs put-only':>11} {'peak RSS MB':>12} {'worker RSS MB':>14}"
    )
    for result in results:
        baseline = next(
            r for r in results if r["contacts"] == result["contacts"] and r["variant"] == "put-only"
        )
        ratio = result["records_per_second"] / baseline["records_per_second"]
        print(
            f"{result['contacts']:>9} {result['variant']:<21} {result['records']:>8} {result['seconds']:>8} "
            f"{result['records_per_second']:>10} {ratio:>10.2f}x {result['peak_rss_mb']:>12} "
            f"{result['peak_rss_lambda_worker_mb']:>14}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), sys.argv[3])))
    else:
        main()
