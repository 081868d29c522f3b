"""Shared fixtures for unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from firehose.template import load_template


@pytest.fixture(scope="session")
def cfn_template() -> dict[str, Any]:
    """``cloudformation/template.yaml`` in long form (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``)."""
    return load_template()
