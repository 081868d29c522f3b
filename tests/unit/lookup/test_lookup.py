"""Unit tests of the lookup core: TTL cache, identifiers, settings, the two lookups, the cached directory
view and the enrichment stage, with in-memory directories (the DynamoDB adapter is tested against the
embedded AWS in tests/integration)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from lookup.cache import TTLCache
from lookup.directory import CachedDirectory, DirectoryEntry
from lookup.identifiers import (
    InvalidIdentifierError,
    agent_arn,
    agent_id_from,
    agent_queue_arn,
    canonical_extension,
    extension_clash_key,
    extension_from,
    instance_arn_from,
    zero_padded_forms,
)
from lookup.lookups import agent_with_extension, connect_parameters, extension_of_agent
from lookup.settings import LookupSettings, SettingsError
from tests.events import CONNECT_GET_AGENT_BY_EXTENSION, CONNECT_GET_EXTENSION_BY_AGENT_ID, load_event
from transform.core.batch import PendingContact
from transform.core.rules import BillableContact, Outcome
from transform.stages.enrichment import DirectoryEnrichment

ROOT = Path(__file__).resolve().parents[3]
INSTANCE = "arn:aws:connect:us-east-1:111122223333:instance/0f6b7c1e-2d3a-4b5c-8d9e-0a1b2c3d4e5f"
AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- TTL cache -------------------------------------------------------------------------------------


def test_cache_entry_lives_until_its_ttl() -> None:
    clock = Clock()
    cache: TTLCache[str, str | None] = TTLCache(60, clock=clock)
    cache.put("a", "4417")
    cache.put("missing", None)
    clock.now += 59.9
    assert cache.lookup("a") == (True, "4417")
    # a cached miss is a hit whose value is None
    assert cache.lookup("missing") == (True, None)
    clock.now += 0.1
    assert cache.lookup("a") == (False, None)
    assert len(cache) == 1  # the expired entry was dropped on read


def test_cache_evicts_the_oldest_entries_past_its_size() -> None:
    cache: TTLCache[int, int] = TTLCache(60, max_entries=3, clock=Clock())
    for key in range(5):
        cache.put(key, key)
    assert [cache.lookup(key)[0] for key in range(5)] == [False, False, True, True, True]


def test_cache_with_zero_ttl_stores_nothing() -> None:
    cache: TTLCache[str, str] = TTLCache(0)
    cache.put("a", "b")
    assert not cache.enabled
    assert cache.lookup("a") == (False, None)


@pytest.mark.parametrize(("ttl", "size"), [(-1, 10), (10, 0)])
def test_cache_rejects_nonsense_limits(ttl: float, size: int) -> None:
    with pytest.raises(ValueError, match="must"):
        TTLCache(ttl, max_entries=size)


# --- identifiers -----------------------------------------------------------------------------------


def test_agent_id_from_arn_or_bare_id() -> None:
    assert agent_id_from(f"{INSTANCE}/agent/{AGENT}") == AGENT
    assert agent_id_from(f"  {AGENT} ") == AGENT
    assert agent_id_from("arn:aws-us-gov:connect:us-gov-west-1:111122223333:instance/abc/agent/x1") == "x1"


@pytest.mark.parametrize(
    "value",
    [None, "", " ", 7, f"{INSTANCE}/queue/{AGENT}", f"{INSTANCE}/agent/", "arn:aws:s3:::b", "a b", "../x"],
)
def test_malformed_agent_identifiers_are_refused_without_echoing_them(value: object) -> None:
    with pytest.raises(InvalidIdentifierError) as raised:
        agent_id_from(value)
    assert str(raised.value).startswith(("missing parameter AgentArn", "AgentArn is"))
    if isinstance(value, str) and value.strip():
        assert value not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4417", "4417"),
        (" 0 ", "0"),
        ("00012", "00012"),
        # DESIGN §3: a caller's keyed digits in any script are the ASCII extension; zeros are kept.
        ("\u096a\u096a\u0967\u096d", "4417"),  # Devanagari
        ("\u0660\u0664\u0661\u0667", "0417"),  # Arabic-Indic, leading zero kept
        ("\uff14\uff14\uff11\uff17", "4417"),  # full-width
    ],
)
def test_extension_is_one_to_five_digits_in_canonical_form(value: str, expected: str) -> None:
    assert extension_from(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\u096a\u096a\u0967\u096d", "4417"),
        (" 0417 ", "0417"),
        ("=1+2", "=1+2"),  # not digits: as given, the CSV writer guards it
        ("\u00b2", "\u00b2"),  # a superscript is a digit but not a decimal digit: as given
        ("4\u0964", "4\u0964"),  # a digit beside a non-digit: as given
    ],
)
def test_canonical_extension(value: str, expected: str) -> None:
    assert canonical_extension(value) == expected


def test_extensions_clash_when_equal_but_for_leading_zeros() -> None:
    assert extension_clash_key("0417") == extension_clash_key("417") == extension_clash_key("00417")
    assert extension_clash_key("4170") != extension_clash_key("417")
    assert extension_clash_key("0") == extension_clash_key("000")
    assert zero_padded_forms("0417") == ("417", "0417", "00417")
    assert zero_padded_forms("12345") == ("12345",)
    assert zero_padded_forms("00") == ("0", "00", "000", "0000", "00000")


@pytest.mark.parametrize(
    "value",
    ["", "123456", "12a", "4417#", "+1", "\u00b2", "\u0661\u0662\u0663\u0664\u0665\u0666", None, 4417],
)
def test_bad_extensions_are_refused(value: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="extensionNumber"):
        extension_from(value)


def test_instance_arn_and_derived_arns() -> None:
    assert instance_arn_from(INSTANCE) == INSTANCE
    assert agent_arn(INSTANCE, AGENT) == f"{INSTANCE}/agent/{AGENT}"
    assert agent_queue_arn(INSTANCE, AGENT) == f"{INSTANCE}/queue/agent/{AGENT}"
    for bad in (None, "", f"{INSTANCE}/agent/{AGENT}", "arn:aws:connect:us-east-1:1:instance/x"):
        with pytest.raises(InvalidIdentifierError, match="InstanceARN"):
            instance_arn_from(bad)


# --- settings --------------------------------------------------------------------------------------


def test_settings_from_environment() -> None:
    settings = LookupSettings.from_environ(
        {"DIRECTORY_TABLE": "ctr-billing-directory", "DIRECTORY_CACHE_SECONDS": "30"}
    )
    assert settings == LookupSettings("ctr-billing-directory", cache_seconds=30)
    assert LookupSettings.from_environ({"DIRECTORY_TABLE": "t12"}).cache_seconds == 300


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "DIRECTORY_TABLE"),
        ({"DIRECTORY_TABLE": "a b"}, "DIRECTORY_TABLE"),
        ({"DIRECTORY_TABLE": "tbl", "DIRECTORY_CACHE_SECONDS": "-1"}, "DIRECTORY_CACHE_SECONDS"),
        ({"DIRECTORY_TABLE": "tbl", "DIRECTORY_CACHE_ENTRIES": "0"}, "DIRECTORY_CACHE_ENTRIES"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as raised:
        LookupSettings.from_environ(environ)
    assert str(raised.value).startswith(variable)


# --- the lookups over an in-memory directory -------------------------------------------------------


class MemoryDirectory:
    def __init__(self, entries: Iterable[DirectoryEntry]) -> None:
        self.entries = list(entries)

    def entry_for_agent(self, agent_id: str) -> DirectoryEntry | None:
        return next((entry for entry in self.entries if entry.agent_id == agent_id), None)

    def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]:
        return tuple(entry for entry in self.entries if entry.extension == extension)


def test_lookup_answers_are_flat_maps_of_strings() -> None:
    directory = MemoryDirectory([DirectoryEntry(AGENT, "4417")])  # no username stored
    by_agent = extension_of_agent(directory, {"AgentArn": AGENT})
    by_extension = agent_with_extension(directory, {"extensionNumber": "4417"}, {"InstanceARN": INSTANCE})
    assert by_agent == {"found": "true", "extension": "4417"}
    assert by_extension["username"] == ""
    for answer in (by_agent, by_extension):
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in answer.items())


def test_the_events_connect_publishes_are_answered() -> None:
    # GIVEN the events the two flows send, as AWS documents them, and a directory that knows the agent
    directory = MemoryDirectory([DirectoryEntry(AGENT, "4417", "dr.okafor")])
    by_agent = connect_parameters(load_event(CONNECT_GET_EXTENSION_BY_AGENT_ID))
    by_extension = connect_parameters(load_event(CONNECT_GET_AGENT_BY_EXTENSION))
    # WHEN each lookup reads its parameters and the contact from them
    # THEN the agent's extension, and the agent with its ARNs under the contact's own instance
    assert extension_of_agent(directory, by_agent[0]) == {"found": "true", "extension": "4417"}
    answer = agent_with_extension(directory, *by_extension)
    assert (answer["found"], answer["agentArn"]) == ("true", f"{INSTANCE}/agent/{AGENT}")


def test_lookups_answer_in_the_canonical_extension_form() -> None:
    # GIVEN a directory holding 0417 (leading zero significant) and a row a hand edit left in Devanagari
    directory = MemoryDirectory(
        [DirectoryEntry(AGENT, "0417", "dr.okafor"), DirectoryEntry("agent-2", "\u096a\u096a\u0967\u096d")]
    )
    # WHEN a caller keys Arabic-Indic digits, or 417 without the zero
    keyed = agent_with_extension(
        directory, {"extensionNumber": "\u0660\u0664\u0661\u0667"}, {"InstanceARN": INSTANCE}
    )
    unpadded = agent_with_extension(directory, {"extensionNumber": "417"}, {"InstanceARN": INSTANCE})
    # THEN the keyed digits are 0417 and find the agent; 417 is another extension; answers are ASCII
    assert (keyed["found"], keyed["agentId"], keyed["extensionNumber"]) == ("true", AGENT, "0417")
    assert unpadded == {"found": "false"}
    assert extension_of_agent(directory, {"AgentArn": "agent-2"}) == {"found": "true", "extension": "4417"}


def test_lookup_validates_before_reading_the_directory() -> None:
    class Exploding(MemoryDirectory):
        def agents_with_extension(self, extension: str) -> tuple[DirectoryEntry, ...]:
            raise AssertionError("must not be read")

    answer = agent_with_extension(Exploding([]), {"extensionNumber": "12"}, {"InstanceARN": "nope"})
    assert answer == {
        "found": "false",
        "error": "ContactData.InstanceARN is not an Amazon Connect instance ARN",
    }


# --- cached directory view -------------------------------------------------------------------------


class CountingTable:
    """Stands in for DirectoryTable; counts reads."""

    def __init__(self, entries: Iterable[DirectoryEntry]) -> None:
        self.entries = {entry.agent_id: entry for entry in entries}
        self.reads: list[tuple[str, Any]] = []

    def get(self, agent_id: str) -> DirectoryEntry | None:
        self.reads.append(("get", agent_id))
        return self.entries.get(agent_id)

    def find_by_extension(self, extension: str, limit: int = 2) -> list[DirectoryEntry]:
        self.reads.append(("query", extension))
        return [entry for entry in self.entries.values() if entry.extension == extension][:limit]

    def batch_get(self, agent_ids: Iterable[str]) -> dict[str, DirectoryEntry]:
        ids = list(agent_ids)
        self.reads.append(("batch", tuple(ids)))
        return {agent_id: self.entries[agent_id] for agent_id in ids if agent_id in self.entries}


def test_cached_directory_rereads_after_the_ttl() -> None:
    clock = Clock()
    table = CountingTable([DirectoryEntry("a1", "11")])
    directory = CachedDirectory(table, cache_seconds=60, clock=clock)  # type: ignore[arg-type]
    assert directory.entry_for_agent("a1") == DirectoryEntry("a1", "11")
    assert directory.entry_for_agent("zz") is None
    assert directory.agents_with_extension("11") == (DirectoryEntry("a1", "11"),)
    table.entries["a1"] = DirectoryEntry("a1", "12")
    assert directory.entry_for_agent("a1") == DirectoryEntry("a1", "11")  # cached
    assert directory.entry_for_agent("zz") is None  # cached miss
    clock.now += 61
    assert directory.entry_for_agent("a1") == DirectoryEntry("a1", "12")
    assert table.reads == [("get", "a1"), ("get", "zz"), ("query", "11"), ("get", "a1")]


def test_batched_reads_fetch_only_what_the_cache_lacks() -> None:
    table = CountingTable([DirectoryEntry("a1", "11"), DirectoryEntry("a2", "22")])
    directory = CachedDirectory(table, cache_seconds=60, clock=Clock())  # type: ignore[arg-type]
    assert directory.entries_for_agents(["a1", "a1", "x"]) == {"a1": DirectoryEntry("a1", "11")}
    assert directory.entries_for_agents(["a1", "a2", "x"]) == {
        "a1": DirectoryEntry("a1", "11"),
        "a2": DirectoryEntry("a2", "22"),
    }
    # the first read deduplicated; the second fetched only a2 (x was a cached miss)
    assert table.reads == [("batch", ("a1", "x")), ("batch", ("a2",))]


# --- the enrichment stage --------------------------------------------------------------------------


def pending(record_id: str, agent_id: str, extension: str = "", dropped: bool = False) -> PendingContact:
    contact = BillableContact(
        ctr={},
        agent={},
        initiated=None,  # type: ignore[arg-type]
        connected=None,  # type: ignore[arg-type]
        disconnected=None,  # type: ignore[arg-type]
        provider_left=None,  # type: ignore[arg-type]
        duration_seconds=60,
        contact_duration_seconds=60,
        hold_seconds=0,
        provider_extension=extension,
        agent_id=agent_id,
    )
    return PendingContact(record_id, {}, contact, Outcome.DUPLICATE if dropped else None)


class RecordingDirectory:
    def __init__(self, entries: dict[str, DirectoryEntry]) -> None:
        self.entries = entries
        self.requests: list[list[str]] = []

    def entries_for_agents(self, agent_ids: Any) -> dict[str, DirectoryEntry]:
        self.requests.append(list(agent_ids))
        return {agent_id: self.entries[agent_id] for agent_id in agent_ids if agent_id in self.entries}


def test_enrichment_fills_only_contacts_that_need_it_with_one_request() -> None:
    directory = RecordingDirectory(
        {
            "a": DirectoryEntry("a", "101"),
            "b": DirectoryEntry("b", "102"),
            "bad": DirectoryEntry("bad", "=1+2"),
        }
    )
    contacts = [
        pending("1", "a"),
        pending("2", "a"),
        pending("3", "b", extension="77"),  # dialled: kept
        pending("4", "b", dropped=True),  # a duplicate: not looked up
        pending("5", ""),  # no agent ARN
        pending("6", "unknown"),
        pending("7", "bad"),  # a hand-edited table must not put text into the billing row
    ]
    DirectoryEnrichment(directory)(contacts)
    assert [item.contact.provider_extension for item in contacts] == ["101", "101", "77", "", "", "", ""]
    assert directory.requests == [["a", "unknown", "bad"]]


def test_enrichment_writes_the_canonical_extension() -> None:
    directory = RecordingDirectory(
        {"a": DirectoryEntry("a", "\u0664\u0664\u0661\u0667"), "z": DirectoryEntry("z", "0417")}
    )
    contacts = [pending("1", "a"), pending("2", "z")]
    DirectoryEnrichment(directory)(contacts)
    assert [item.contact.provider_extension for item in contacts] == ["4417", "0417"]


def test_enrichment_without_candidates_makes_no_request() -> None:
    directory = RecordingDirectory({})
    DirectoryEnrichment(directory)([pending("1", "a", extension="5")])
    assert directory.requests == []


# --- the Lambda's import path stays light ----------------------------------------------------------


@pytest.mark.parametrize(("directory_table", "boto3_loaded"), [("", False), ("provider-directory", True)])
def test_transform_imports_boto3_only_with_a_directory_table(
    directory_table: str, boto3_loaded: bool
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DIRECTORY_TABLE", "LEDGER_TABLE"} and not key.startswith("AWS_")
    }
    env.update(DIRECTORY_TABLE=directory_table, AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(ROOT))
    probe = "import sys, transform.handler; print('boto3' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == str(boto3_loaded)
