"""Lambda entry point of the daily settlement export: ``transform.settlement.handler.lambda_handler``.

Settings and clients are made once, at cold start: a missing or bad setting fails the cold start naming
the variable, before any day is settled. The work is ``transform.settlement.export`` (one SQL text) on Athena,
written to the vendor bucket (``transform.settlement.athena``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from transform.settlement.athena import AthenaEngine, S3Destination, SettlementConfig, settlement_day
from transform.settlement.export import publish, settle

CONFIG = SettlementConfig(os.environ)
ENGINE = AthenaEngine(boto3.client("athena"), CONFIG.workgroup, CONFIG.database)
DESTINATION = S3Destination(boto3.client("s3"), CONFIG.bucket, CONFIG.prefix, lock=CONFIG.lock)

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "ctr-billing-settlement"))


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    day = settlement_day(event or {}, CONFIG.settings, datetime.now(UTC))
    settlement = settle(ENGINE, day, CONFIG.settings, datetime.now(UTC))
    csv_location, manifest_location = publish(settlement, DESTINATION)
    # Counts, names and a hash only: the rows themselves are PHI.
    logger.info("settled", extra={"date": day.isoformat(), "rows": settlement.rows})
    return {
        "date": day.isoformat(),
        "rows": settlement.rows,
        "sha256": settlement.sha256,
        "csv": csv_location,
        "manifest": manifest_location,
    }
