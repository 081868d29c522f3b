# ruff: noqa: F811  (pytest fixtures are imported from pipeline_support and named as parameters)
"""The template deploys on the embedded AWS through moto's CloudFormation API, and the types moto skips
(Firehose, Glue, Athena, bucket policies) land in moto's own backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from firehose.deploy.template import load_template, resources_of_type
from firehose.local_aws.models import MODELS
from firehose.local_aws.server import EmbeddedAws
from firehose.local_aws.stack import DeployedStack
from tests.support.pipeline_support import deployed, embedded_aws  # noqa: F401  (fixtures)
from transform.core.columns import COLUMNS, LAKE_TABLE

pytestmark = pytest.mark.integration


def test_every_delivery_stream_of_the_template_is_described_with_its_source_and_processors(
    embedded_aws: EmbeddedAws,
    deployed: DeployedStack,
) -> None:
    # GIVEN the template's delivery streams
    template = load_template()
    declared = dict(resources_of_type(template, "AWS::KinesisFirehose::DeliveryStream"))
    assert declared

    # WHEN the deployed stack's delivery streams are described through the Firehose API
    firehose = embedded_aws.client("firehose")
    kinesis = embedded_aws.client("kinesis")
    stream_arn = kinesis.describe_stream(StreamName=deployed.resources["ContactTraceRecordsStream"])[
        "StreamDescription"
    ]["StreamARN"]
    functions = {
        logical_id: embedded_aws.client("lambda").get_function_configuration(FunctionName=physical)[
            "FunctionArn"
        ]
        for logical_id, physical in deployed.resources.items()
        if template["Resources"].get(logical_id, {}).get("Type") == "AWS::Lambda::Function"
    }

    # THEN each one reads the stack's Kinesis stream and keeps the processors the template declares
    for logical_id, resource in declared.items():
        description = firehose.describe_delivery_stream(DeliveryStreamName=deployed.resources[logical_id])[
            "DeliveryStreamDescription"
        ]
        assert description["DeliveryStreamType"] == "KinesisStreamAsSource"
        assert description["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"] == stream_arn
        destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
        declared_destination = resource["Properties"]["ExtendedS3DestinationConfiguration"]
        assert destination["Prefix"] == declared_destination["Prefix"]
        assert destination["ErrorOutputPrefix"] == declared_destination["ErrorOutputPrefix"]
        declared_types = [p["Type"] for p in declared_destination["ProcessingConfiguration"]["Processors"]]
        assert [p["Type"] for p in destination["ProcessingConfiguration"]["Processors"]] == declared_types
        for processor in destination["ProcessingConfiguration"]["Processors"]:
            parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor.get("Parameters", [])}
            if processor["Type"] == "Lambda":
                assert parameters["LambdaArn"] in functions.values()


def test_glue_table_athena_work_group_bucket_and_queue_policies_exist_in_the_embedded_backends(
    embedded_aws: EmbeddedAws,
    deployed: DeployedStack,
) -> None:
    # GIVEN the deployed stack
    template = load_template()

    # WHEN the Glue, Athena and S3 APIs are asked for what the template declared
    database = deployed.resources["GlueDatabase"]
    table = embedded_aws.client("glue").get_table(DatabaseName=database, Name=LAKE_TABLE)["Table"]
    work_group = embedded_aws.client("athena").get_work_group(WorkGroup=deployed.resources["AthenaWorkGroup"])

    # THEN the table's columns are the column registry's, and the policies are attached
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [(column.name, column.type.glue_type) for column in COLUMNS]
    assert work_group["WorkGroup"]["Name"] == deployed.resources["AthenaWorkGroup"]
    for logical_id, resource in resources_of_type(template, "AWS::S3::BucketPolicy"):
        bucket_logical_id = resource["Properties"]["Bucket"]["Ref"]
        policy = json.loads(
            embedded_aws.client("s3").get_bucket_policy(Bucket=deployed.resources[bucket_logical_id])[
                "Policy"
            ]
        )
        assert policy["Statement"], logical_id
        assert all(statement is not None for statement in policy["Statement"])
    sqs = embedded_aws.client("sqs")
    for logical_id, resource in resources_of_type(template, "AWS::SQS::QueuePolicy"):
        if "Condition" in resource and logical_id not in deployed.resources:
            continue  # a conditional resource (the voicemail's queue) the default parameters skip
        for queue in resource["Properties"]["Queues"]:
            queue_url = deployed.resources[queue["Ref"]]
            attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
            statements = json.loads(attributes["Policy"])["Statement"]
            declared = resource["Properties"]["PolicyDocument"]["Statement"]
            assert [(s["Sid"], s["Effect"]) for s in statements] == [
                (s["Sid"], s["Effect"]) for s in declared
            ], logical_id
            assert {s["Resource"] for s in statements} == {attributes["QueueArn"]}


def test_the_modelled_types_are_not_skipped(deployed: DeployedStack) -> None:
    # GIVEN the types the embedded AWS models WHEN the stack is deployed THEN none of them is skipped
    modelled = {model.cloudformation_type() for model in MODELS}
    assert not modelled & set(deployed.skipped_types)


def test_objects_put_over_plain_http_are_not_denied_by_the_tls_only_bucket_policy(
    embedded_aws: EmbeddedAws,
    deployed: DeployedStack,
) -> None:
    # GIVEN a bucket whose policy denies non-TLS requests (a conditional statement)
    bucket = deployed.outputs["ContactTraceRecordsBucket"]
    s3 = embedded_aws.client("s3")

    # WHEN an object is written and read over the embedded endpoint
    s3.put_object(Bucket=bucket, Key="ctr/probe", Body=b"probe")

    # THEN it is there
    assert s3.get_object(Bucket=bucket, Key="ctr/probe")["Body"].read() == b"probe"


def test_the_kinesis_stream_has_the_template_s_capacity_mode_and_encryption(
    embedded_aws: EmbeddedAws, deployed: DeployedStack
) -> None:
    # GIVEN the template's stream
    properties = load_template()["Resources"]["ContactTraceRecordsStream"]["Properties"]
    # WHEN the deployed stream is described
    stream = embedded_aws.client("kinesis").describe_stream(
        StreamName=deployed.resources["ContactTraceRecordsStream"]
    )["StreamDescription"]
    key = embedded_aws.client("kms").describe_key(KeyId=deployed.resources["BillingKey"])["KeyMetadata"]
    # THEN it is encrypted with the stack's key, with the API's shard count for its mode
    assert stream["EncryptionType"] == properties["StreamEncryption"]["EncryptionType"]
    assert stream["KeyId"] in (key["Arn"], key["KeyId"])
    expected_shards = 4 if deployed.parameters.get("KinesisStreamMode", "ON_DEMAND") == "ON_DEMAND" else 1
    assert len(stream["Shards"]) == expected_shards


def test_clients_read_record_arrival_times_as_utc_and_text_timestamps_as_botocore_does(
    embedded_aws: EmbeddedAws, deployed: DeployedStack
) -> None:
    # GIVEN a record put into the stack's stream and an object written to a bucket
    stream = deployed.resources["ContactTraceRecordsStream"]
    kinesis = embedded_aws.client("kinesis")
    before = datetime.now(UTC) - timedelta(seconds=5)
    put = kinesis.put_record(StreamName=stream, Data=b"probe", PartitionKey="probe")
    s3 = embedded_aws.client("s3")
    bucket = deployed.outputs["ContactTraceRecordsBucket"]
    s3.put_object(Bucket=bucket, Key="ctr/timestamp-probe", Body=b"probe")

    # WHEN the record is read back and the object's metadata is asked for
    iterator = kinesis.get_shard_iterator(
        StreamName=stream,
        ShardId=put["ShardId"],
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put["SequenceNumber"],
    )["ShardIterator"]
    record = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"][0]
    modified = s3.head_object(Bucket=bucket, Key="ctr/timestamp-probe")["LastModified"]

    # THEN the epoch arrival time is an aware UTC datetime of the put (no per-record tzlocal), and an
    # HTTP-date header still parses to an aware datetime
    arrival = record["ApproximateArrivalTimestamp"]
    assert arrival.tzinfo is UTC
    assert before <= arrival <= datetime.now(UTC) + timedelta(seconds=5)
    assert modified.tzinfo is not None
    assert before <= modified <= datetime.now(UTC) + timedelta(seconds=5)


def test_the_request_id_reaches_xml_bodies_and_every_response_header(embedded_aws: EmbeddedAws) -> None:
    # GIVEN an XML API (STS) and a JSON one (Kinesis) on the embedded endpoint
    sts = embedded_aws.client("sts")
    kinesis = embedded_aws.client("kinesis")

    # WHEN each answers a call
    identity = sts.get_caller_identity()
    streams = kinesis.list_streams()

    # THEN both carry a request id, the XML one parsed from its <RequestId> element
    assert identity["ResponseMetadata"]["RequestId"]
    assert identity["ResponseMetadata"]["RequestId"] != "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE"
    assert streams["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
