"""Load ``cloudformation/template.yaml`` into plain Python data.

CloudFormation's short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...) become their long-form
dictionaries (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``), exactly as CloudFormation reads them, so
tests and the local runtime can look resources, parameters and outputs up by logical ID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "cloudformation" / "template.yaml"

# Short-form tag -> long-form key. ``!Ref`` and ``!Condition`` keep their bare names.
_FUNCTIONS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Length",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "ToJsonString",
            "Transform",
        )
    },
}


class _TemplateLoader(yaml.SafeLoader):
    """A safe loader that understands CloudFormation's short-form intrinsic functions."""


def _intrinsic(key: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if key == "Fn::GetAtt":
                resource, _, attribute = str(value).partition(".")
                value = [resource, attribute]
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {key: value}

    return construct


for _tag, _key in _FUNCTIONS.items():
    _TemplateLoader.add_constructor(f"!{_tag}", _intrinsic(_key))


def loads_template(text: str) -> dict[str, Any]:
    """Parse template text (YAML with short-form tags, or JSON) into long-form data."""
    document = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError("not a CloudFormation template: no top-level Resources mapping")
    return document


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Read and parse a template file; by default the project's ``cloudformation/template.yaml``."""
    return loads_template(path.read_text(encoding="utf-8"))


def resources_of_type(template: dict[str, Any], resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(logical_id, resource)`` for every resource of ``resource_type``, in template order."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == resource_type:
            yield logical_id, resource


def resource_properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The ``Properties`` of one resource (KeyError naming the logical ID if it is missing)."""
    try:
        resource = template["Resources"][logical_id]
    except KeyError:
        raise KeyError(f"template has no resource {logical_id!r}") from None
    properties: dict[str, Any] = resource.get("Properties", {})
    return properties


def lambda_environment(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A Lambda function's environment variables as declared (values may be intrinsics)."""
    variables: dict[str, Any] = (
        resource_properties(template, logical_id).get("Environment", {}).get("Variables", {})
    )
    return variables
