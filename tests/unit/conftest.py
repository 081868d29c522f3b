"""Shared fixtures for unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firehose.deploy.template import load_template
from firehose.offline.lake import LocalLake
from tests.support.lake_samples import LakeSample, build_lake


@pytest.fixture(scope="session")
def cfn_template() -> dict[str, Any]:
    """``cloudformation/template.yaml`` in long form (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``)."""
    return load_template()


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> LakeSample:
    """A data lake built from realistic CTRs (republished versions, DST days, formula cells)."""
    return build_lake(tmp_path_factory.mktemp("demo") / "lake")


@pytest.fixture(scope="session")
def lake(sample: LakeSample) -> Iterator[LocalLake]:
    with LocalLake(sample.root) as local:
        yield local
