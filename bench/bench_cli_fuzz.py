"""CLI fuzz campaign of fixed duration: every ``ctr-billing`` subcommand over hostile files and
arguments (``tests/support/cli_fuzz.py``), the directory commands against a moto server. Prints the
inputs tried and the violations by property (never the inputs); a violation makes ``main`` return 1.

    python -m bench.bench_cli_fuzz [SECONDS] [SEED]      # default 300 (or CLI_FUZZ_SECONDS), seed from time
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

DEFAULT_SECONDS = 300.0


def main() -> int:
    import boto3

    from tests.support.cli_fuzz import Campaign, report_lines
    from tests.support.lookup_fixtures import directory_table_definition
    from tests.support.moto_server import moto_server

    seconds = (
        float(sys.argv[1])
        if len(sys.argv) > 1
        else float(os.environ.get("CLI_FUZZ_SECONDS", DEFAULT_SECONDS))
    )
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    saved = dict(os.environ)
    with moto_server() as endpoint, tempfile.TemporaryDirectory(prefix="cli-fuzz-") as root:
        os.environ.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto's fixed test credentials
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
        )
        try:
            table = f"provider-directory-{uuid.uuid4().hex[:12]}"
            client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
            client.create_table(TableName=table, **directory_table_definition())
            started = time.monotonic()
            report = Campaign(Path(root) / "sandbox", seed, endpoint, table).run(seconds)
            elapsed = time.monotonic() - started
        finally:
            os.environ.clear()
            os.environ.update(saved)
    print(f"seed {seed}, {elapsed:.0f} s, {report.tried / elapsed:.1f} inputs/s")
    for line in report_lines(report):
        print(line)
    return 1 if report.violation_count else 0


if __name__ == "__main__":
    raise SystemExit(main())
