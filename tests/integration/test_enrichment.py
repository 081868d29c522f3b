"""Transform enrichment against the embedded AWS: a billable CTR without the extension attribute gets the
provider's extension from the directory, with at most one BatchGetItem per 100 distinct agents."""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from firehose.offline.directory_files import seed_directory
from lookup.directory import CachedDirectory, DirectoryTable
from transform.core.batch import BatchTransformer
from transform.core.settings import TransformSettings
from transform.stages.enrichment import DirectoryEnrichment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytest_plugins = ["tests.support.lookup_fixtures"]
pytestmark = pytest.mark.integration

INSTANCE = "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"


def agent_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


def ctr(contact: int, agent: int, extension_attribute: str | None = None) -> dict[str, Any]:
    """A billable inbound voice CTR answered by ``agent`` (a queue-routed call: no extension dialled)."""
    document: dict[str, Any] = {
        "AWSContactTraceRecordFormatVersion": "2017-03-10",
        "ContactId": f"c0000000-0000-4000-8000-{contact:012d}",
        "Channel": "VOICE",
        "InitiationMethod": "INBOUND",
        "InitiationTimestamp": "2026-11-02T14:13:58Z",
        "DisconnectTimestamp": "2026-11-02T14:31:11Z",
        "CustomerEndpoint": {"Address": "+12025550143", "Type": "TELEPHONE_NUMBER"},
        "Agent": {
            "ARN": f"{INSTANCE}/agent/{agent_id(agent)}",
            "ConnectedToAgentTimestamp": "2026-11-02T14:14:20Z",
            "CustomerHoldDuration": 0,
            "Username": f"provider{agent}",
        },
        "Attributes": {},
    }
    if extension_attribute is not None:
        document["Attributes"]["extensionNumber"] = extension_attribute
    return document


def firehose_records(ctrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"recordId": f"r{index}", "data": base64.b64encode(json.dumps(document).encode()).decode()}
        for index, document in enumerate(ctrs)
    ]


def extensions_of(response_records: list[dict[str, Any]]) -> list[str]:
    """The provider_extension cell (5th default CSV column) of every Ok record, in order."""
    cells = []
    for record in response_records:
        assert record["result"] == "Ok", record["result"]
        row = next(csv.reader(io.StringIO(base64.b64decode(record["data"]).decode())))
        cells.append(row[4])
    return cells


@pytest.fixture
def seeded(dynamodb: DynamoDBClient, directory_table: str) -> str:
    # Agents 0..249 have extensions 1000..1249; agent 999 is not in the directory.
    seed_directory(
        dynamodb,
        directory_table,
        [
            {"agentId": agent_id(n), "extension": str(1000 + n), "username": f"provider{n}"}
            for n in range(250)
        ],
    )
    return directory_table


def test_queue_routed_calls_get_the_providers_extension(
    dynamodb: DynamoDBClient, seeded: str, count_calls: Any
) -> None:
    # GIVEN a Firehose batch of 300 billable CTRs answered by 250 distinct agents, none with the attribute
    calls = count_calls(dynamodb)
    stage = DirectoryEnrichment(CachedDirectory(DirectoryTable(dynamodb, seeded), cache_seconds=300))
    transformer = BatchTransformer(TransformSettings(directory_table=seeded), [stage])
    agents = [n % 250 for n in range(300)]
    # WHEN the batch is transformed
    result = transformer.transform(firehose_records([ctr(i, agent) for i, agent in enumerate(agents)]))
    # THEN every row carries its provider's extension, read with ceil(250 / 100) = 3 batched reads
    assert extensions_of(result.records) == [str(1000 + agent) for agent in agents]
    assert calls["BatchGetItem"] == 3
    assert calls["GetItem"] == 0

    # WHEN the next batch has the same agents (same warm container)
    calls.reset()
    result = transformer.transform(firehose_records([ctr(1000 + i, agent) for i, agent in enumerate(agents)]))
    # THEN the cache answers: no directory read at all
    assert extensions_of(result.records) == [str(1000 + agent) for agent in agents]
    assert calls.calls == {}


def test_dialled_extension_wins_and_unknown_agents_stay_empty(
    dynamodb: DynamoDBClient, seeded: str, count_calls: Any
) -> None:
    # GIVEN a CTR whose caller dialled 77 (attribute set), one by an agent not in the directory,
    # and one enriched normally
    calls = count_calls(dynamodb)
    stage = DirectoryEnrichment(CachedDirectory(DirectoryTable(dynamodb, seeded), cache_seconds=300))
    transformer = BatchTransformer(TransformSettings(directory_table=seeded), [stage])
    result = transformer.transform(
        firehose_records([ctr(1, 5, extension_attribute="77"), ctr(2, 999), ctr(3, 7)])
    )
    # THEN the attribute is kept, the unknown agent's cell is empty, and only agents that needed it were read
    assert extensions_of(result.records) == ["77", "", "1007"]
    assert calls["BatchGetItem"] == 1


def test_an_agent_arn_that_is_no_agent_id_is_not_looked_up(
    dynamodb: DynamoDBClient, seeded: str, count_calls: Any
) -> None:
    # GIVEN a batch where one CTR's Agent.ARN ends in 3,000 characters (no agent id; a key DynamoDB
    # would refuse, failing the whole batch) beside one enriched normally
    calls = count_calls(dynamodb)
    stage = DirectoryEnrichment(CachedDirectory(DirectoryTable(dynamodb, seeded), cache_seconds=300))
    transformer = BatchTransformer(TransformSettings(directory_table=seeded), [stage])
    hostile = ctr(1, 5)
    hostile["Agent"]["ARN"] = f"{INSTANCE}/agent/{'a' * 3000}"
    # WHEN it is transformed
    result = transformer.transform(firehose_records([hostile, ctr(2, 7)]))
    # THEN both are billed, the hostile one without an extension, and only the real agent was read
    assert extensions_of(result.records) == ["", "1007"]
    assert calls["BatchGetItem"] == 1


def test_batch_without_contacts_needing_enrichment_reads_nothing(
    dynamodb: DynamoDBClient, seeded: str, count_calls: Any
) -> None:
    calls = count_calls(dynamodb)
    stage = DirectoryEnrichment(CachedDirectory(DirectoryTable(dynamodb, seeded), cache_seconds=300))
    transformer = BatchTransformer(TransformSettings(directory_table=seeded), [stage])
    result = transformer.transform(firehose_records([ctr(1, 5, extension_attribute="4417")]))
    assert extensions_of(result.records) == ["4417"]
    assert calls.calls == {}


def test_transform_lambda_stages_enrich_when_directory_table_is_set(aws_env: str, seeded: str) -> None:
    # GIVEN the transform Lambda's settings with DIRECTORY_TABLE set, as the template configures it
    import os

    from transform.handler import _stages

    settings = TransformSettings.from_environ({**os.environ, "DIRECTORY_TABLE": seeded, "LEDGER_TABLE": ""})
    # WHEN the handler builds its batch stages (its own boto3 client, AWS reached the standard way)
    stages = _stages(settings)
    response = BatchTransformer(settings, stages).transform(firehose_records([ctr(1, 42)]))
    # THEN the queue-routed call's row has the provider's extension
    assert [type(stage) for stage in stages] == [DirectoryEnrichment]
    assert extensions_of(response.records) == ["1042"]


def test_directory_failure_fails_the_invocation_so_firehose_retries(
    aws_env: str, dynamodb: DynamoDBClient, count_calls: Any
) -> None:
    # GIVEN the configured directory table is missing
    stage = DirectoryEnrichment(CachedDirectory(DirectoryTable(dynamodb, "no-such-table"), cache_seconds=300))
    transformer = BatchTransformer(TransformSettings(directory_table="no-such-table"), [stage])
    from lookup.directory import DirectoryError

    # THEN the batch raises (never rows silently missing the extension), without PHI in the message
    with pytest.raises(DirectoryError) as raised:
        transformer.transform(firehose_records([ctr(1, 3)]))
    assert "+12025550143" not in str(raised.value)
    assert "ResourceNotFoundException" in str(raised.value)
