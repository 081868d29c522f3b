"""One way for tests to run a moto server on 127.0.0.1 and point boto3 at it.

moto's backends are process-wide: every server a test session starts shares them, so tests create
resources with names of their own.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server at a free port; yields its endpoint URL and stops it afterwards."""
    # werkzeug logs a line per request when nothing configured logging (a benchmark run, unlike pytest's
    # capture): noise, and request paths carry object keys. The embedded AWS quiets it the same way.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def point_aws_at(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a process that talks to ``endpoint`` (what the Lambdas and the CLI read)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
