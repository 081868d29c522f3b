"""Fixtures every test folder may use: a moto server over HTTP and an environment pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto_server import moto_server, point_aws_at


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    point_aws_at(moto_endpoint, monkeypatch)
    return moto_endpoint
