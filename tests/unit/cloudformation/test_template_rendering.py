"""cloudformation/template.yaml rendered into the template CloudFormation receives (firehose.deploy.template):
cfn-flip reads the short-form tags, ``!Embed`` fills in a file beside the template and ``!OutcomeMetric``
the metric name of a transform outcome, so the files and the enum are the one source of those values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cfn_flip
import pytest

from firehose.deploy.template import (
    EMBED,
    OUTCOME_METRIC,
    TEMPLATE_PATH,
    TemplateError,
    dumps_template,
    load_template,
    loads_template,
    render,
    rendered_template,
    resources_of_type,
)
from transform.core.rules import Outcome

SMALL_TEMPLATE = """\
Resources:
  Query:
    Type: AWS::Athena::NamedQuery
    Properties:
      QueryString: !Embed queries/q.sql
      Database: !Ref Database
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      MetricName: !OutcomeMetric MALFORMED
      Dimensions: [{ Name: service, Value: !Sub "${AWS::StackName}-transform" }]
  Flow:
    Type: AWS::Connect::ContactFlow
    Properties:
      Content: !Sub
        - !Embed flows/f.json
        - FunctionArn: !GetAtt Function.Arn
"""
QUERY = "-- a comment\nSELECT 1\n"
FLOW = '{\n  "Version": "2019-10-30",\n  "Arn": "${FunctionArn}"\n}\n'
BUILD_FUNCTIONS = (EMBED, OUTCOME_METRIC)


def _build_functions(value: Any) -> list[str]:
    """Every build-time function left in a template."""
    text = json.dumps(value)
    return [name for name in BUILD_FUNCTIONS if f'"{name}"' in text]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "queries").mkdir()
    (tmp_path / "queries" / "q.sql").write_text(QUERY, encoding="utf-8")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "f.json").write_text(FLOW, encoding="utf-8")
    (tmp_path / "template.yaml").write_text(SMALL_TEMPLATE, encoding="utf-8")
    return tmp_path


def test_short_form_tags_read_as_the_long_form_cloudformation_reads() -> None:
    # GIVEN a template with short-form tags WHEN it is read
    template = loads_template(SMALL_TEMPLATE)
    # THEN each is its long-form function, the build-time ones included
    resources = template["Resources"]
    assert resources["Query"]["Properties"] == {
        "QueryString": {EMBED: "queries/q.sql"},
        "Database": {"Ref": "Database"},
    }
    assert resources["Alarm"]["Properties"]["MetricName"] == {OUTCOME_METRIC: "MALFORMED"}
    assert resources["Flow"]["Properties"]["Content"] == {
        "Fn::Sub": [{EMBED: "flows/f.json"}, {"FunctionArn": {"Fn::GetAtt": ["Function", "Arn"]}}]
    }
    # AND the same template in JSON reads the same
    assert loads_template(json.dumps(template)) == template


@pytest.mark.parametrize("text", ["- a list", "Parameters: {}", "Resources: [unclosed"])
def test_text_that_is_not_a_template_is_refused(text: str) -> None:
    # GIVEN YAML without Resources, or not YAML at all WHEN/THEN reading it is refused, saying so
    with pytest.raises(TemplateError, match="not a CloudFormation template"):
        loads_template(text)


def test_rendering_fills_in_the_files_and_the_outcome_metric_names(folder: Path) -> None:
    # GIVEN a template naming a query file, a flow file and an outcome
    # WHEN it is loaded as CloudFormation receives it
    template = load_template(folder / "template.yaml")
    # THEN the files' text and the outcome's metric name stand in their place, and nothing else changed
    resources = template["Resources"]
    assert resources["Query"]["Properties"] == {"QueryString": QUERY, "Database": {"Ref": "Database"}}
    assert resources["Alarm"]["Properties"]["MetricName"] == Outcome.MALFORMED.value
    assert resources["Flow"]["Properties"]["Content"] == {
        "Fn::Sub": [FLOW, {"FunctionArn": {"Fn::GetAtt": ["Function", "Arn"]}}]
    }
    assert _build_functions(template) == []


def test_the_rendered_yaml_reads_back_as_the_rendered_template(folder: Path) -> None:
    # GIVEN the rendered template as text
    text = rendered_template(folder / "template.yaml")
    # THEN it reads back as the rendered data, with the short-form tags CloudFormation reads
    assert loads_template(text) == load_template(folder / "template.yaml")
    assert "!GetAtt" in text and "!Embed" not in text and "!OutcomeMetric" not in text


@pytest.mark.parametrize("path", ["../outside.sql", "/etc/hostname", "queries/missing.sql", "queries"])
def test_an_embed_of_a_file_that_is_not_beside_the_template_is_refused(folder: Path, path: str) -> None:
    # GIVEN a file outside the template's folder (and one that does not exist)
    (folder.parent / "outside.sql").write_text("SELECT 2\n", encoding="utf-8")
    template = loads_template(SMALL_TEMPLATE.replace("queries/q.sql", path))
    # WHEN/THEN rendering refuses, naming the path
    with pytest.raises(TemplateError, match=f"!Embed {path}: no such file"):
        render(template, folder)


def test_an_unknown_outcome_is_refused_listing_the_outcomes(folder: Path) -> None:
    # GIVEN a template naming an outcome that does not exist
    template = loads_template(SMALL_TEMPLATE.replace("MALFORMED", "MALFORMD"))
    # WHEN/THEN rendering refuses, listing the outcomes there are
    with pytest.raises(TemplateError, match=r"!OutcomeMetric MALFORMD: not an Outcome \(MALFORMED, "):
        render(template, folder)


def test_a_rendered_template_renders_to_itself() -> None:
    # GIVEN the project's template as CloudFormation receives it
    template = load_template()
    # THEN no build-time function is left, and rendering it again changes nothing
    assert _build_functions(template) == []
    assert render(template, TEMPLATE_PATH.parent) == template
    assert loads_template(dumps_template(template)) == template


def test_the_source_names_the_outcome_metrics_rather_than_writing_them() -> None:
    # GIVEN the metrics the alarms read from the transform Lambda's namespace, as written
    source = loads_template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    namespace = "CtrBilling"
    written = [
        query["MetricStat"]["Metric"]["MetricName"]
        for _, alarm in resources_of_type(source, "AWS::CloudWatch::Alarm")
        for query in alarm["Properties"].get("Metrics", [])
        if query.get("MetricStat", {}).get("Metric", {}).get("Namespace") == namespace
    ]
    # THEN each names an Outcome, so the enum is where the names are written
    assert written
    assert all(
        set(name) == {OUTCOME_METRIC} and name[OUTCOME_METRIC] in Outcome.__members__ for name in written
    )


def test_an_embed_of_something_other_than_a_path_is_refused(folder: Path) -> None:
    # GIVEN an !Embed of a list WHEN/THEN rendering refuses, saying what it takes
    template = loads_template(SMALL_TEMPLATE.replace("!Embed queries/q.sql", "!Embed [queries/q.sql]"))
    with pytest.raises(TemplateError, match="!Embed takes a file path"):
        render(template, folder)


def test_yaml_that_would_not_read_back_as_the_template_is_never_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a YAML writer that loses part of the template
    monkeypatch.setattr(cfn_flip, "flip", lambda *_args, **_kwargs: "Resources: {}\n")
    # WHEN/THEN writing the template refuses rather than hand out a different one
    with pytest.raises(TemplateError, match="does not read back"):
        dumps_template(load_template())
