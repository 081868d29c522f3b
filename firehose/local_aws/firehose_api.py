"""Firehose's direct puts refused where AWS refuses them (a fix in ``moto_fixes``' register).

A delivery stream whose source is a Kinesis stream takes its records only from that stream: AWS
answers ``PutRecord`` and ``PutRecordBatch`` to it with ``InvalidArgumentException`` ("This operation is
not permitted on KinesisStreamAsSource delivery stream type."). moto accepts them and writes the raw
records straight into the destination bucket under the prefix as written (e.g. a literal
``billing/!{timestamp:yyyy/MM/dd/HH}/`` key): untransformed CTRs where the vendor reads.

Imported by ``firehose.local_aws.server`` before ``moto_fixes.install()``, so the fix is checked and
applied with the others (same fingerprints, same start-up refusal when moto changes).
"""

from __future__ import annotations

import functools
from typing import Any

from moto.firehose.exceptions import InvalidArgumentException
from moto.firehose.models import FirehoseBackend

from firehose.local_aws.moto_fixes import Target, _fix

KINESIS_SOURCE = "KinesisStreamAsSource"
# AWS's words (as the AWS CLI prints them for a put to such a stream).
NOT_PERMITTED = "This operation is not permitted on KinesisStreamAsSource delivery stream type."


def _refusing_kinesis_sourced(original: Any) -> Any:
    @functools.wraps(original)
    def put_record_batch(self: FirehoseBackend, delivery_stream_name: str, records: Any) -> Any:
        stream = self.delivery_streams.get(delivery_stream_name)
        if stream is not None and stream.delivery_stream_type == KINESIS_SOURCE:
            raise InvalidArgumentException(NOT_PERMITTED)
        return original(self, delivery_stream_name, records)

    return put_record_batch


@_fix(
    "firehose-kinesis-source-refuses-puts",
    "fix",
    replaces=(Target(FirehoseBackend, "put_record_batch", ("3a7a495751a6",)),),
    # PutRecord is answered through put_record_batch.
    relies_on=(Target(FirehoseBackend, "put_record", ("73aa223b7ec3",)),),
)
def _kinesis_source_refuses_puts() -> None:
    """moto accepts PutRecord/PutRecordBatch to a Kinesis-sourced delivery stream, as AWS does not.

    It then writes the raw records into the destination bucket under the prefix as written, expressions
    and all (``billing/!{timestamp:...}/``): PHI where the vendor reads. AWS refuses both calls with
    ``InvalidArgumentException``; so does the embedded AWS, and nothing reaches a bucket.
    """
    FirehoseBackend.put_record_batch = _refusing_kinesis_sourced(  # type: ignore[method-assign]
        FirehoseBackend.put_record_batch
    )
