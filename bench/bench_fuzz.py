"""Fuzz campaign of fixed duration: hostile Firehose batches through the transform in every mode.

The strategies and the checked properties are the fuzz tests' own (``tests/support/fuzz_inputs.py``,
``tests/unit/transform/test_fuzz.py``). Hypothesis runs generation only (no shrinking, no example database) in
rounds of fresh seeds until the time is up. Prints the number of inputs tried; a figure, never a
pass/fail verdict on speed. A property violation is reported with its exception type (never the input,
which may look like PHI) and makes ``main`` return 1.

    python -m bench.bench_fuzz [SECONDS]      # default 30, or FUZZ_SECONDS
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.support.fuzz_inputs import MODES, check_response, firehose_batches, mode

DEFAULT_SECONDS = 30.0
ROUND_EXAMPLES = 200


def campaign(seconds: float) -> dict[str, Any]:
    batches = 0
    records = 0
    results: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    round_number = 0

    while time.monotonic() < deadline:
        round_number += 1

        @seed(round_number)
        @settings(
            max_examples=ROUND_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(mode_index=st.sampled_from(range(len(MODES))), batch=firehose_batches())
        def one(mode_index: int, batch: list[dict[str, Any]]) -> None:
            nonlocal batches, records
            if time.monotonic() >= deadline:
                return
            settings_, transformer = mode(mode_index)
            batches += 1
            records += len(batch)
            try:
                response = transformer.transform(batch).response
                check_response(settings_, batch, response)
            except Exception as error:  # counted, not raised: the campaign runs for its full time
                failures[type(error).__name__] += 1
                return
            results.update(answer["result"] for answer in response["records"])

        one()

    elapsed = time.monotonic() - started
    return {
        "seconds": round(elapsed, 1),
        "batches": batches,
        "records": records,
        "records_per_second": round(records / elapsed),
        "results": dict(results),
        "failures": dict(failures),
        "modes": len(MODES),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else float(os.environ.get("FUZZ_SECONDS", DEFAULT_SECONDS))
    figures = campaign(seconds)
    print(
        f"fuzz: {figures['records']:,} inputs (records) in {figures['batches']:,} batches tried in "
        f"{figures['seconds']} s over {figures['modes']} modes ({figures['records_per_second']:,} records/s); "
        f"results {figures['results']}; property violations {figures['failures'] or 0}"
    )
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
