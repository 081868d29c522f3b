"""Transform settings: read once from the environment into one frozen object; a bad value names its variable."""

from __future__ import annotations

import dataclasses
import zoneinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cfn_tools import load_yaml

from transform.core.columns import COLUMN_NAMES, DEFAULT_CSV_COLUMNS
from transform.core.settings import OutputFormat, SettingsError, TransformSettings

TEMPLATE = Path(__file__).resolve().parents[3] / "cloudformation" / "template.yaml"


def test_defaults_with_an_empty_environment() -> None:
    # GIVEN no settings at all  WHEN read  THEN the DESIGN defaults
    settings = TransformSettings.from_environ({})
    assert settings.output_format is OutputFormat.CSV
    assert settings.billable_channels == frozenset({"VOICE"})
    assert settings.min_billable_seconds == 0
    assert settings.billing_timezone is None
    assert settings.extension_attribute == "extensionNumber"
    assert settings.csv_columns == DEFAULT_CSV_COLUMNS
    assert settings.directory_table is None
    assert settings.directory_cache_seconds == 300
    assert settings.ledger_table is None
    assert settings.ledger_retention_days == 400


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("OUTPUT_FORMAT", "json", "output_format", OutputFormat.JSON),
        ("OUTPUT_FORMAT", " CSV ", "output_format", OutputFormat.CSV),
        ("BILLABLE_CHANNELS", "voice, chat", "billable_channels", frozenset({"VOICE", "CHAT"})),
        ("BILLABLE_CHANNELS", "VOICE,TASK,EMAIL", "billable_channels", frozenset({"VOICE", "TASK", "EMAIL"})),
        ("MIN_BILLABLE_SECONDS", "30", "min_billable_seconds", 30),
        ("MIN_BILLABLE_SECONDS", "", "min_billable_seconds", 0),
        ("BILLING_TIMEZONE", "America/New_York", "billing_timezone", ZoneInfo("America/New_York")),
        ("BILLING_TIMEZONE", "UTC", "billing_timezone", None),
        ("BILLING_TIMEZONE", "utc", "billing_timezone", None),
        ("EXTENSION_ATTRIBUTE", "providerExt", "extension_attribute", "providerExt"),
        ("CSV_COLUMNS", "contact_id, duration_seconds", "csv_columns", ("contact_id", "duration_seconds")),
        ("CSV_COLUMNS", ",".join(COLUMN_NAMES), "csv_columns", COLUMN_NAMES),
        ("DIRECTORY_TABLE", "ctr-billing-directory", "directory_table", "ctr-billing-directory"),
        ("DIRECTORY_CACHE_SECONDS", "0", "directory_cache_seconds", 0),
        ("LEDGER_TABLE", "ctr-billing-ledger", "ledger_table", "ctr-billing-ledger"),
        ("LEDGER_RETENTION_DAYS", "30", "ledger_retention_days", 30),
    ],
)
def test_each_setting_is_read(variable: str, value: str, attribute: str, expected: Any) -> None:
    # GIVEN one variable set  WHEN read  THEN its attribute has the value
    settings = TransformSettings.from_environ({variable: value})
    assert getattr(settings, attribute) == expected


def test_the_time_zone_keeps_its_name_for_messages() -> None:
    settings = TransformSettings.from_environ({"BILLING_TIMEZONE": "Europe/Paris"})
    assert settings.billing_timezone_name == "Europe/Paris"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OUTPUT_FORMAT", "parquet"),
        ("OUTPUT_FORMAT", "xml"),
        ("BILLABLE_CHANNELS", ""),
        ("BILLABLE_CHANNELS", " , "),
        ("BILLABLE_CHANNELS", "VOCIE"),
        ("BILLABLE_CHANNELS", "VOICE,SMS"),
        ("MIN_BILLABLE_SECONDS", "-1"),
        ("MIN_BILLABLE_SECONDS", "1.5"),
        ("MIN_BILLABLE_SECONDS", "ten"),
        ("BILLING_TIMEZONE", "Mars/Olympus_Mons"),
        ("BILLING_TIMEZONE", "America"),
        ("BILLING_TIMEZONE", "../../etc/passwd"),
        ("EXTENSION_ATTRIBUTE", "extension number"),
        ("EXTENSION_ATTRIBUTE", "x" * 128),
        ("CSV_COLUMNS", "call_type,patient_name"),
        ("CSV_COLUMNS", "call_type,,duration_seconds"),
        ("CSV_COLUMNS", "call_type,call_type"),
        ("DIRECTORY_TABLE", "ab"),
        ("DIRECTORY_TABLE", "table/with/slashes"),
        ("DIRECTORY_CACHE_SECONDS", "-5"),
        ("LEDGER_TABLE", "no spaces allowed"),
        ("LEDGER_RETENTION_DAYS", "0"),
        ("LEDGER_RETENTION_DAYS", "a year"),
    ],
)
def test_each_bad_setting_fails_naming_the_variable(variable: str, value: str) -> None:
    # GIVEN a bad value  WHEN the settings are read (the cold start)
    with pytest.raises(SettingsError) as raised:
        TransformSettings.from_environ({variable: value})
    # THEN the error starts with the variable's name
    assert str(raised.value).startswith(variable)


def test_settings_are_frozen() -> None:
    # GIVEN settings read at cold start  WHEN code tries to change them  THEN it cannot
    settings = TransformSettings.from_environ({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.min_billable_seconds = 5  # type: ignore[misc]


def _template() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(TEMPLATE.read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize("function", ["TransformCsvFunction", "TransformJsonFunction"])
def test_the_template_defaults_are_valid_settings(function: str) -> None:
    # GIVEN the template's transform function, its variables resolved with the parameters' defaults
    template = _template()
    parameters = template["Parameters"]
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    environ = {}
    for name, value in variables.items():
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
            environ[name] = str(parameters[value["Ref"]].get("Default", ""))
        elif isinstance(value, str | int):
            environ[name] = str(value)
    # the AWS resources (table names) are not this test's business
    environ.pop("DIRECTORY_TABLE", None)
    environ.pop("LEDGER_TABLE", None)
    # WHEN read  THEN they are valid and the output format is the function's
    settings = TransformSettings.from_environ(environ)
    expected = OutputFormat.CSV if function == "TransformCsvFunction" else OutputFormat.JSON
    assert settings.output_format is expected
    assert settings.csv_columns == DEFAULT_CSV_COLUMNS


@pytest.mark.parametrize("name", ["America", "America/", "Etc", "Mars/Olympus_Mons"])
def test_bad_time_zone_fails_naming_the_variable_with_the_tzdata_package_only(name: str) -> None:
    # GIVEN no system zoneinfo (as on Lambda: zones come from the tzdata package)
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        # WHEN a zone name that is a tzdata directory or nothing is configured
        with pytest.raises(SettingsError) as raised:
            TransformSettings.from_environ({"BILLING_TIMEZONE": name})
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
    # THEN the cold start fails naming the variable
    assert str(raised.value).startswith("BILLING_TIMEZONE")
