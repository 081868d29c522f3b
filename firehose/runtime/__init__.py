"""The local Firehose runtime (DESIGN §4): Kinesis source, processors, Lambda transforms, S3 delivery."""

from firehose.runtime.delivery import WorkerOptions
from firehose.runtime.runtime import FirehoseRuntime, RuntimeFailure, default_options

__all__ = ["FirehoseRuntime", "RuntimeFailure", "WorkerOptions", "default_options"]
