"""The CloudFormation template: ``cloudformation/template.yaml`` and the template CloudFormation receives.

The source names some values instead of holding a copy, so each has one source:

- ``!Embed <path>``: the text of a file beside the template (the named queries' SQL in ``queries/``, which
  the local lake and the settlement export run too; the contact flows in ``flows/``);
- ``!OutcomeMetric <name>``: the metric the transform Lambda publishes for ``Outcome.<name>``
  (``transform.core.rules``).

``load_template`` reads a template and resolves them: the template as CloudFormation receives it, which is
what every caller looks at. ``rendered_template`` is that as YAML, which ``ctr-billing package`` writes,
the embedded AWS deploys and ``make template-checks`` lints. CloudFormation knows neither function, so the
source itself is refused rather than deployed half-rendered.

YAML and JSON are read and written by cfn-flip: short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...)
become their long-form dictionaries (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``), as CloudFormation reads
them, so resources, parameters and outputs can be looked up by logical ID.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cfn_flip

from transform.core.rules import Outcome

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "cloudformation" / "template.yaml"

Template = dict[str, Any]

# The build-time functions, as cfn-flip reads their tags (``!Embed x`` -> ``{"Fn::Embed": "x"}``).
EMBED = "Fn::Embed"
OUTCOME_METRIC = "Fn::OutcomeMetric"


class TemplateError(ValueError):
    """A template cannot be read, rendered or written; the message names the file or function."""


def loads_template(text: str) -> Template:
    """Parse template text (YAML with short-form tags, or JSON) into long-form data, as written."""
    try:
        # Through cfn-flip's JSON: plain dicts and lists, as json.loads gives them.
        document = json.loads(cfn_flip.to_json(text))
    except ValueError as error:  # cfn-flip reports YAML it cannot read with its JSON parser's error
        raise TemplateError(f"not a CloudFormation template: {error}") from None
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError("not a CloudFormation template: no top-level Resources mapping")
    return document


def load_template(path: Path = TEMPLATE_PATH) -> Template:
    """The template at ``path`` (by default the project's) as CloudFormation receives it: rendered."""
    return render(loads_template(path.read_text(encoding="utf-8")), path.parent)


def render(template: Template, base: Path) -> Template:
    """``template`` with its build-time functions resolved; ``!Embed`` paths are relative to ``base``.

    A template without them (one already rendered) comes back equal.
    """
    resolved: Template = _resolve(template, base.resolve())
    return resolved


def rendered_template(path: Path = TEMPLATE_PATH) -> str:
    """The template at ``path``, rendered, as YAML text: what is deployed and linted."""
    return dumps_template(load_template(path))


def dumps_template(template: Template) -> str:
    """``template`` as YAML with short-form tags, checked to read back as the same data."""
    text: str = cfn_flip.flip(json.dumps(template), in_format="json", out_format="yaml")
    if loads_template(text) != template:
        raise TemplateError("the template does not read back from YAML as written")
    return text


def _resolve(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == EMBED:
                return _embedded(argument, base)
            if key == OUTCOME_METRIC:
                return _outcome_metric(argument)
        return {key: _resolve(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, base) for item in value]
    return value


def _embedded(argument: Any, base: Path) -> str:
    if not isinstance(argument, str):
        raise TemplateError(f"!Embed takes a file path, got {argument!r}")
    path = (base / argument).resolve()
    # Only the template's own folder: a template names its files, not the machine's.
    if not path.is_relative_to(base) or not path.is_file():
        raise TemplateError(f"!Embed {argument}: no such file in {base}")
    return path.read_text(encoding="utf-8")


def _outcome_metric(argument: Any) -> str:
    try:
        return Outcome[str(argument)].value
    except KeyError:
        names = ", ".join(outcome.name for outcome in Outcome)
        raise TemplateError(f"!OutcomeMetric {argument}: not an Outcome ({names})") from None


def resources_of_type(template: Template, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(logical_id, resource)`` for every resource of ``resource_type``, in template order."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == resource_type:
            yield logical_id, resource


def resource_properties(template: Template, logical_id: str) -> dict[str, Any]:
    """The ``Properties`` of one resource (KeyError naming the logical ID if it is missing)."""
    try:
        resource = template["Resources"][logical_id]
    except KeyError:
        raise KeyError(f"template has no resource {logical_id!r}") from None
    properties: dict[str, Any] = resource.get("Properties", {})
    return properties


def lambda_environment(template: Template, logical_id: str) -> dict[str, Any]:
    """A Lambda function's environment variables as declared (values may be intrinsics)."""
    variables: dict[str, Any] = (
        resource_properties(template, logical_id).get("Environment", {}).get("Variables", {})
    )
    return variables
