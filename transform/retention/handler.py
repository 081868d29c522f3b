"""Archive lock Lambda entry point: ``transform.retention.handler.lambda_handler``.

Reads the raw bucket's S3 event notifications from SQS (an event source mapping with
``ReportBatchItemFailures``) and locks each new ``ctr/`` object version (``archive_lock``). A message
that fails is reported alone and comes back after the queue's visibility timeout; after the queue's
``maxReceiveCount`` it moves to the dead-letter queue, whose alarm says a raw object may be unlocked.
Settings are read at cold start; a missing or bad one fails the cold start naming the variable.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from transform.core.object_lock import ObjectLockPolicy
from transform.retention.archive_lock import ArchiveLock, created_versions

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ctr-billing-archive-lock")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CtrBilling"), service=SERVICE)

POLICY = ObjectLockPolicy.required(os.environ)
LOCK = ArchiveLock(boto3.client("s3"), POLICY)
PROCESSOR = BatchProcessor(event_type=EventType.SQS)


def lock_message(record: SQSRecord) -> None:
    """Lock every version one notification reports; any failure fails this message only."""
    try:
        for version in created_versions(record.json_body):
            locked = LOCK.lock(version)
            metrics.add_metric(
                name="ArchiveVersionsLocked" if locked else "ArchiveVersionsAlreadyLocked",
                unit=MetricUnit.Count,
                value=1,
            )
    except Exception as error:
        # Notifications name buckets and keys, never CTR data; the body itself is not logged.
        logger.warning(
            "archive lock failed",
            extra={"message_id": record.message_id, "error": type(error).__name__, "detail": str(error)},
        )
        metrics.add_metric(name="ArchiveLockFailures", unit=MetricUnit.Count, value=1)
        raise


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=lock_message, processor=PROCESSOR, context=context
    )
