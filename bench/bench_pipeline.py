"""Pipeline throughput and peak memory: ``ctr-billing demo``'s pipeline at 10,000 and 100,000 contacts.

Each measurement runs in a fresh process (so peak RSS is its own) with the embedded AWS in a child
process of its own (``EmbeddedAws(isolated=True)``, as ``ctr-billing demo`` runs it): the pipeline
process talks to it only over HTTP, as to real AWS, and everything the embedded AWS *stores* (S3 objects,
DynamoDB items, Kinesis records) is counted in that child, not in the pipeline. Side by side:

* ``put-only``: the same records put into the embedded Kinesis with no delivery stream running, the
  ceiling the embedded AWS sets;
* ``pipeline``: the stack as deployed, every record through the three delivery streams until drained;
* ``pipeline, no ledger``: the same after UpdateFunctionConfiguration removes the vendor transform's
  LEDGER_TABLE (the billing ledger calls DynamoDB for billable contacts).

Figures, never pass/fail: records/s end to end (first put to last object written), the ratio to the
put-only baseline, and peak RSS (Linux VmHWM / ru_maxrss) of three kinds of process, separately: the
pipeline process (producer + Firehose runtime, or the producer alone for put-only), the largest Lambda
worker, and the embedded AWS. Last, whether the pipeline's memory grows: its peak RSS at the largest
size over the smallest (1.00 = flat; the embedded AWS's grows with the data it stores, as S3 would).

    python -m bench.bench_pipeline                             # all sizes and variants
    python -m bench.bench_pipeline --sizes 10000 100000 --variants put-only pipeline
    python -m bench.bench_pipeline --one 10000 pipeline        # one measurement, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from firehose.pipeline.local import LocalPipeline

SIZES = (10_000, 100_000)
VARIANTS = ("put-only", "pipeline", "pipeline, no ledger")


def measure(contacts: int, variant: str) -> dict[str, Any]:
    """One measurement in this process (the embedded AWS in a child process)."""
    from firehose.local_aws.server import EmbeddedAws
    from firehose.local_aws.stack import DeployedStack, deploy_stack, lambda_zip
    from firehose.pipeline.local import start_pipeline
    from firehose.pipeline.producer import put_records
    from firehose.pipeline.simulator import ConnectSimulator

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
        worker_rss: float | None = None
        if variant == "put-only":
            with EmbeddedAws(isolated=True) as aws:
                stack = deploy_stack(aws, lambda_zip(build))
                started = time.perf_counter()
                put = put_records(
                    aws.client("kinesis"), stack.resources["ContactTraceRecordsStream"], records
                )
                seconds = time.perf_counter() - started
                aws_rss = aws.peak_rss_mb()
        else:
            hook = without_ledger if variant == "pipeline, no ledger" else None
            pipeline = start_pipeline(work, build, 1.0, before_runtime=hook, isolated=True)
            try:
                started = time.perf_counter()
                trimming = _Trimmer(pipeline)
                put = put_records(
                    pipeline.aws.client("kinesis"), pipeline.stream_name(), records, trimming.tick
                )
                pipeline.runtime.drain(timeout=3600)
                seconds = time.perf_counter() - started
                memory = pipeline.memory()
                worker_rss, aws_rss = memory["lambda_worker_mb"], memory["embedded_aws_mb"]
            finally:
                pipeline.runtime.stop(drain=False)
                pipeline.aws.stop()
    return {
        "contacts": contacts,
        "variant": variant,
        "records": put,
        "seconds": round(seconds, 2),
        "records_per_second": round(put / seconds, 1),
        "pipeline_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "lambda_worker_rss_mb": worker_rss,
        "embedded_aws_rss_mb": aws_rss,
    }


class _Trimmer:
    """Between PutRecords calls, pace the producer as the demo does and let the embedded Kinesis forget
    what every delivery stream delivered."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self._pipeline = pipeline
        self._last = time.monotonic()

    def tick(self, put: int) -> None:
        self._pipeline.hold_back(put)
        if time.monotonic() - self._last >= 0.5:
            self._pipeline.trim_delivered()
            self._last = time.monotonic()


def _run_one(contacts: int, variant: str) -> dict[str, Any]:
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
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value}"


def report(results: list[dict[str, Any]]) -> list[str]:
    """The figures as a Markdown table (pasteable into the README), then the memory growth verdict."""
    lines = [
        "| contacts | variant | records | seconds | records/s | vs put-only | pipeline RSS MB "
        "| Lambda worker RSS MB | embedded AWS RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        baseline = next(
            (r for r in results if r["contacts"] == result["contacts"] and r["variant"] == "put-only"), None
        )
        ratio = f"{result['records_per_second'] / baseline['records_per_second']:.2f}x" if baseline else "-"
        lines.append(
            f"| {result['contacts']:,} | {result['variant']} | {result['records']:,} | {result['seconds']} "
            f"| {result['records_per_second']} | {ratio} | {result['pipeline_rss_mb']} "
            f"| {_shown(result['lambda_worker_rss_mb'])} | {_shown(result['embedded_aws_rss_mb'])} |"
        )
    sizes = sorted({r["contacts"] for r in results})
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        lines.append("")
        for variant in dict.fromkeys(r["variant"] for r in results):
            pair = {r["contacts"]: r for r in results if r["variant"] == variant}
            if small in pair and large in pair:
                parts = [
                    f"{label} {pair[large][key] / pair[small][key]:.2f}"
                    for label, key in (
                        ("pipeline process", "pipeline_rss_mb"),
                        ("Lambda worker", "lambda_worker_rss_mb"),
                        ("embedded AWS", "embedded_aws_rss_mb"),
                    )
                    if pair[small][key] and pair[large][key]
                ]
                pipeline_ratio = pair[large]["pipeline_rss_mb"] / pair[small]["pipeline_rss_mb"]
                verdict = "flat" if pipeline_ratio <= 1.10 else "GROWS"
                lines.append(
                    f"peak RSS {large:,}/{small:,} contacts, {variant}: {', '.join(parts)} "
                    f"-> pipeline memory {verdict}"
                )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bench_pipeline")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = [_run_one(contacts, variant) for contacts in arguments.sizes for variant in arguments.variants]
    print("\n".join(report(results)), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]), sys.argv[3])))
    else:
        main()
