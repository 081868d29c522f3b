"""``make bench``: run every benchmark module's ``main()`` in turn and print its figures.

``python -m bench`` runs them all; ``python -m bench transform offline`` runs those whose module name
contains one of the words. A benchmark that fails is reported and makes the exit status non-zero; the
others still run.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback

# One line per benchmark module (each exposes ``main()``), in the order they run.
BENCHMARKS: tuple[str, ...] = (
    "bench.bench_transform",
    "bench.bench_offline",
    "bench.bench_rebill",
    "bench.bench_pipeline",
    "bench.bench_fuzz",
    "bench.bench_cli_fuzz",
    "bench.bench_chaos",
)


def run(names: list[str]) -> int:
    selected = [module for module in BENCHMARKS if not names or any(name in module for name in names)]
    if not selected:
        print(f"no benchmark matches {' '.join(names)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    for module_name in selected:
        print(f"== {module_name}", flush=True)
        started = time.perf_counter()
        arguments = sys.argv
        sys.argv = [module_name]  # each benchmark reads its own defaults, not the runner's filter words
        try:
            status = importlib.import_module(module_name).main()
        except Exception:
            traceback.print_exc()
            failed.append(module_name)
        else:
            if status:
                failed.append(module_name)
        finally:
            sys.argv = arguments
        print(f"   ({time.perf_counter() - started:.1f} s)\n", flush=True)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
