"""A delivery stream's configuration, read only from what DescribeDeliveryStream returns."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MB = 1024 * 1024
# Firehose defaults (API reference: ProcessorParameter, BufferingHints).
DEFAULT_PROCESSOR_BUFFER_MB = 1.0
DEFAULT_PROCESSOR_INTERVAL_SECONDS = 60.0
DEFAULT_NUMBER_OF_RETRIES = 3
DEFAULT_DESTINATION_BUFFER_MB = 5.0
DEFAULT_DESTINATION_INTERVAL_SECONDS = 300.0
SUPPORTED_PROCESSORS = frozenset({"Lambda", "AppendDelimiterToRecord"})


class UnsupportedConfigurationError(ValueError):
    """The delivery stream uses a feature the local runtime does not emulate."""


@dataclass(frozen=True, slots=True)
class Processor:
    type: str
    parameters: Mapping[str, str]

    def parameter(self, name: str, default: str | None = None) -> str | None:
        return self.parameters.get(name, default)


@dataclass(frozen=True, slots=True)
class FormatConversion:
    database: str
    table: str
    catalog_id: str | None
    region: str | None
    version_id: str
    parquet_compression: str
    case_insensitive: bool


@dataclass(frozen=True, slots=True)
class DeliveryStreamConfig:
    name: str
    arn: str
    version_id: str
    created: datetime
    source_stream_arn: str
    bucket: str
    prefix: str
    error_prefix: str
    buffer_bytes: int
    buffer_seconds: float
    compression: str
    kms_key_arn: str | None
    file_extension: str | None
    processors: tuple[Processor, ...]
    dynamic_partitioning: bool
    format_conversion: FormatConversion | None

    @property
    def lambda_processor(self) -> Processor | None:
        return next((p for p in self.processors if p.type == "Lambda"), None)

    def processor_buffer(self) -> tuple[int, float]:
        """Bytes and seconds the processor buffers before one invocation (the Lambda's parameters)."""
        processor = self.lambda_processor
        if processor is None:
            return 0, 0.0
        size_mb = float(processor.parameter("BufferSizeInMBs") or DEFAULT_PROCESSOR_BUFFER_MB)
        seconds = float(processor.parameter("BufferIntervalInSeconds") or DEFAULT_PROCESSOR_INTERVAL_SECONDS)
        return int(size_mb * MB), seconds

    def number_of_retries(self) -> int:
        processor = self.lambda_processor
        if processor is None:
            return 0
        return int(processor.parameter("NumberOfRetries") or DEFAULT_NUMBER_OF_RETRIES)

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> DeliveryStreamConfig:
        name = description["DeliveryStreamName"]
        source = (description.get("Source") or {}).get("KinesisStreamSourceDescription") or {}
        if not source.get("KinesisStreamARN"):
            raise UnsupportedConfigurationError(f"delivery stream {name} has no Kinesis stream source")
        destination = _extended_s3(description)
        processing = destination.get("ProcessingConfiguration") or {}
        processors: tuple[Processor, ...] = ()
        if _true(processing.get("Enabled")):
            processors = tuple(
                Processor(
                    type=item["Type"],
                    parameters={
                        parameter["ParameterName"]: str(parameter["ParameterValue"])
                        for parameter in item.get("Parameters") or []
                    },
                )
                for item in processing.get("Processors") or []
            )
        unsupported = sorted({p.type for p in processors} - SUPPORTED_PROCESSORS)
        if unsupported:
            raise UnsupportedConfigurationError(
                f"delivery stream {name}: processor(s) {', '.join(unsupported)} are not emulated locally"
            )
        hints = destination.get("BufferingHints") or {}
        encryption = destination.get("EncryptionConfiguration") or {}
        kms = (encryption.get("KMSEncryptionConfig") or {}).get("AWSKMSKeyARN")
        return cls(
            name=name,
            arn=description["DeliveryStreamARN"],
            version_id=str(description.get("VersionId") or "1"),
            created=description["CreateTimestamp"],
            source_stream_arn=source["KinesisStreamARN"],
            bucket=destination["BucketARN"].split(":::", 1)[-1],
            prefix=destination.get("Prefix") or "",
            error_prefix=destination.get("ErrorOutputPrefix") or "",
            buffer_bytes=int(float(hints.get("SizeInMBs", DEFAULT_DESTINATION_BUFFER_MB)) * MB),
            buffer_seconds=float(hints.get("IntervalInSeconds", DEFAULT_DESTINATION_INTERVAL_SECONDS)),
            compression=(destination.get("CompressionFormat") or "UNCOMPRESSED").upper(),
            kms_key_arn=kms,
            file_extension=destination.get("FileExtension") or None,
            processors=processors,
            dynamic_partitioning=_true(
                (destination.get("DynamicPartitioningConfiguration") or {}).get("Enabled")
            ),
            format_conversion=_format_conversion(name, destination),
        )


def delimiter(processor: Processor) -> bytes:
    """AppendDelimiterToRecord's delimiter; escapes such as ``\\n`` are honoured, default newline."""
    value = processor.parameter("Delimiter")
    if value is None:
        return b"\n"
    return codecs.decode(value, "unicode_escape").encode("utf-8")


def _true(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _extended_s3(description: Mapping[str, Any]) -> Mapping[str, Any]:
    for destination in description.get("Destinations") or []:
        extended = destination.get("ExtendedS3DestinationDescription")
        if extended:
            return extended  # type: ignore[no-any-return]
        plain = destination.get("S3DestinationDescription")
        if plain:
            return plain  # type: ignore[no-any-return]
    raise UnsupportedConfigurationError(
        f"delivery stream {description['DeliveryStreamName']} has no S3 destination"
    )


def _format_conversion(name: str, destination: Mapping[str, Any]) -> FormatConversion | None:
    conversion = destination.get("DataFormatConversionConfiguration") or {}
    if (
        not conversion
        or conversion.get("Enabled") is False
        or str(conversion.get("Enabled")).lower() == "false"
    ):
        return None
    schema = conversion.get("SchemaConfiguration") or {}
    output = (conversion.get("OutputFormatConfiguration") or {}).get("Serializer") or {}
    if "ParquetSerDe" not in output:
        raise UnsupportedConfigurationError(
            f"delivery stream {name}: only Parquet output is emulated locally"
        )
    deserializer = (conversion.get("InputFormatConfiguration") or {}).get("Deserializer") or {}
    openx = deserializer.get("OpenXJsonSerDe")
    case_insensitive = True if openx is None else openx.get("CaseInsensitive", True) not in (False, "false")
    return FormatConversion(
        database=schema["DatabaseName"],
        table=schema["TableName"],
        catalog_id=schema.get("CatalogId"),
        region=schema.get("Region"),
        version_id=str(schema.get("VersionId") or "LATEST"),
        parquet_compression=str((output.get("ParquetSerDe") or {}).get("Compression") or "SNAPPY").upper(),
        case_insensitive=bool(case_insensitive),
    )
