"""Firehose record-transformation Lambda entry point: ``transform.handler.lambda_handler``.

Settings are read once, at cold start; a bad value fails the cold start naming the variable.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from transform.core.batch import BatchResult, BatchStage, BatchTransformer
from transform.core.settings import TransformSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ctr-billing-transform")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CtrBilling")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

SETTINGS = TransformSettings.from_environ(os.environ)


def _stages(settings: TransformSettings, dynamodb: DynamoDBClient | None = None) -> list[BatchStage]:
    """Optional batch stages; each imports boto3 only when its setting is on (and no client is given)."""
    stages: list[BatchStage] = []
    if settings.directory_table:
        from transform.stages.enrichment import directory_stage

        stages.append(directory_stage(settings, dynamodb))
    if settings.ledger_table:  # after enrichment: the fingerprint covers the provider extension
        from transform.stages.ledger import ledger_stage

        stages.append(ledger_stage(settings, dynamodb))
    return stages


TRANSFORMER = BatchTransformer(SETTINGS, _stages(SETTINGS))


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = TRANSFORMER.transform(event["records"])
    publish_outcomes(result)
    return result.response


def publish_outcomes(result: BatchResult) -> None:
    """One count per outcome; the not-billable reason as a dimension. Logs hold counts and codes only."""
    for outcome, count in result.outcomes.items():
        metrics.add_metric(name=outcome.value, unit=MetricUnit.Count, value=count)
    for reason, count in result.not_billable.items():
        with single_metric(
            name="NotBillableByReason", unit=MetricUnit.Count, value=count, namespace=NAMESPACE
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="Reason", value=reason)
    logger.info(
        "batch transformed",
        extra={
            "records": len(result.records),
            "outcomes": {outcome.value: count for outcome, count in result.outcomes.items()},
            "not_billable": dict(result.not_billable),
        },
    )
    for record_id, problem in result.failures.items():
        logger.warning("record failed", extra={"record_id": record_id, "problem": problem})
