"""The embedded AWS: a moto server on 127.0.0.1 at a free port, reached only over HTTP with boto3.

Two ways to run it, same HTTP API:

* ``EmbeddedAws()`` serves from a thread of this process (tests: fast to start, and a test may change
  moto's process-wide settings, e.g. IAM enforcement);
* ``EmbeddedAws(isolated=True)`` serves from a child process (``ctr-billing demo`` / ``serve`` and the
  benchmark): this module is imported there, so the CloudFormation models and moto fixes are in place
  in the process that serves, and the caller's process holds only its clients. Its memory is then the
  pipeline's own, while everything the embedded AWS stores (objects, items, records) is counted in the
  child (``peak_rss_mb``). The child ignores Ctrl-C and serves until its stdin closes, i.e. until
  ``stop()`` or the caller's exit, so ``serve`` can still drain after Ctrl-C and no server is orphaned.

The one call that reaches into moto's backends on the caller's behalf, forgetting consumed Kinesis
records (``trim_kinesis``), is a control route in front of moto's application
(``POST /_ctr-billing/kinesis/trim``), so it works across the process boundary and the same way in
both modes. The process that serves also runs Lambda's SQS event source mappings, from a thread of
``ControlRoute`` (``firehose.local_aws.event_sources``).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
import botocore.session
import botocore.utils
from botocore.client import BaseClient
from botocore.config import Config
from moto.kinesis.models import kinesis_backends
from moto.moto_server import werkzeug_app
from werkzeug.serving import BaseWSGIServer, make_server

from firehose.local_aws import moto_fixes
from firehose.local_aws.athena import AthenaRoute
from firehose.local_aws.event_sources import SqsEventSources
from firehose.local_aws.lambda_api import LambdaInvokeRoute
from firehose.local_aws.models import register_models
from firehose.runtime.processes import peak_rss_mb

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
# moto accepts any credentials; these are never real ones.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TRIM_PATH = "/_ctr-billing/kinesis/trim"

# Whoever imports the server serves (in-thread) or is about to: the fixes' start-up checks run here,
# before any request, and the models are in moto's map before the first stack is created.
moto_fixes.install()
register_models()


# --- control route: forgetting consumed Kinesis records, served by the process that holds them --------


def trim_shards(region: str, stream_arn: str, delivered: Mapping[str, int]) -> int:
    """Forget a stream's records up to the given sequence number per shard (in this process's moto
    backend); returns how many. The newest record of a shard is kept: moto numbers the next from it."""
    stream = kinesis_backends[ACCOUNT_ID][region].describe_stream(stream_arn=stream_arn, stream_name=None)
    removed = 0
    for shard in stream.shards.values():
        limit = delivered.get(shard.shard_id)
        if limit is None:
            continue
        records = shard.records
        while len(records) > 1 and (oldest := next(iter(records))) <= int(limit):
            del records[oldest]
            removed += 1
    return removed


StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ControlRoute:
    """WSGI: ``TRIM_PATH`` answered here, every other request passed to moto's application."""

    def __init__(self, moto_app: WsgiApp) -> None:
        self._moto_app = moto_app
        # Set by the server once its port is known: the local Lambdas' and Athena's clients call it.
        self.endpoint = ""
        # Engines moto lacks, answered here: Lambda Invoke (firehose.local_aws.lambda_api) and Athena
        # query executions on DuckDB (firehose.local_aws.athena).
        self.lambda_invoke = LambdaInvokeRoute(self._client, self._aws_environment)
        self.athena = AthenaRoute(self._client)
        # Lambda's SQS event source mappings, polled from a thread of their own once the server serves
        # (firehose.local_aws.event_sources); the functions run in the Invoke route's warm workers.
        self.event_sources = SqsEventSources(self._client, self.lambda_invoke.function, region=REGION)
        self._client_lock = threading.Lock()

    def _aws_environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def _client(self, service: str, *, region: str = REGION, config: Config | None = None) -> Any:
        """A client of this embedded AWS, for the routes and their background threads (one factory)."""
        # boto3's default session is not safe to create clients from in several threads at once.
        with self._client_lock:
            return boto3.client(  # type: ignore[call-overload]
                service, endpoint_url=self.endpoint, region_name=region, config=config, **CREDENTIALS
            )

    def start(self) -> None:
        """Start the background work of a serving server (the endpoint is known)."""
        self.event_sources.start()

    def close(self) -> None:
        self.event_sources.close()  # before the functions it invokes are closed
        self.lambda_invoke.close()
        self.athena.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.lambda_invoke.matches(environ):
            return self.lambda_invoke(environ, start_response, self._moto_app)
        if self.athena.matches(environ):
            return self.athena(environ, start_response, self._moto_app)
        if environ.get("PATH_INFO") != TRIM_PATH:
            return self._moto_app(environ, start_response)
        status, answer = "200 OK", dict[str, Any]()
        try:
            if environ.get("REQUEST_METHOD") != "POST":
                raise ValueError("POST only")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            removed = trim_shards(body.get("region", REGION), body["stream_arn"], body["delivered"])
            answer = {"removed": removed}
        except Exception as error:  # answered as a 400, like any bad request
            status, answer = "400 Bad Request", {"error": type(error).__name__}
        payload = json.dumps(answer).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]


# --- the server ------------------------------------------------------------------------------------


def _quiet_moto() -> None:
    # werkzeug logs one line per request: noise, and request paths carry object keys.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto warns for every resource type it skips; deploy_stack reports them instead.
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)


class _Server:
    """moto's WSGI application behind ``ControlRoute``, served by werkzeug from a daemon thread: what
    moto's ``ThreadedMotoServer`` does, except that it builds its application itself, with no room for
    a route in front."""

    def __init__(self, port: int = 0) -> None:
        _quiet_moto()
        application = ControlRoute(werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app))
        self._application = application
        # moto 5.2.4+ serves with a request handler of its own (it keeps S3 metadata header names that
        # hold underscores); earlier releases serve with werkzeug's.
        handler = getattr(werkzeug_app, "MotoRequestHandler", None)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, application, threaded=True, request_handler=handler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-aws", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host!s}:{port}"
        application.endpoint = self.endpoint
        application.start()

    def stop(self) -> None:
        self._application.close()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def serve_until_stdin_closes(port: int = 0) -> None:
    """The isolated server's process: serve, print the endpoint as one line, stop when stdin closes.
    A port that cannot be bound is reported as one line ``error: ...`` instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (serve drains first)
    try:
        server = _Server(port)
    except OSError as error:
        print(f"error: cannot listen on 127.0.0.1:{port} ({error.strerror or error})", flush=True)
        return
    print(server.endpoint, flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        server.stop()


class EmbeddedAwsError(RuntimeError):
    pass


class EmbeddedAws:
    """A moto server on 127.0.0.1 at a free port, in a thread of this process or (``isolated=True``) in
    a child process. moto's backends are process-wide, so an in-thread server is reset when it starts:
    one in-thread embedded AWS per process at a time."""

    def __init__(
        self, region: str = REGION, *, isolated: bool = False, start_timeout: float = 60.0, port: int = 0
    ) -> None:
        self.region = region
        self.isolated = isolated
        self.port = port  # 0: a free one
        self._start_timeout = start_timeout
        self._server: _Server | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self._session: boto3.session.Session | None = None
        self._session_lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None or self._process is not None

    @property
    def pid(self) -> int:
        """The process that serves (this one unless isolated)."""
        return self._process.pid if self._process is not None else os.getpid()

    def start(self) -> EmbeddedAws:
        if self.isolated:
            self.endpoint = self._start_process()
        else:
            try:
                self._server = _Server(self.port)
            except OSError as error:
                raise EmbeddedAwsError(
                    f"cannot listen on 127.0.0.1:{self.port} ({error.strerror})"
                ) from error
            self.endpoint = self._server.endpoint
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - our own server on 127.0.0.1
                pass
        except BaseException:
            self.stop()
            raise
        return self

    def _start_process(self) -> str:
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
        process = subprocess.Popen(  # this interpreter, a fixed module
            [
                sys.executable,
                "-c",
                f"from firehose.local_aws.server import serve_until_stdin_closes as s; s({int(self.port)})",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, remaining))
            chunk = os.read(process.stdout.fileno(), 256) if ready else b""
            if not chunk:
                self.stop()
                raise EmbeddedAwsError("the embedded AWS process did not start")
            line += chunk
        answer = line.decode().strip()
        if answer.startswith("error: "):
            self.stop()
            raise EmbeddedAwsError(answer.removeprefix("error: "))
        return answer

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def peak_rss_mb(self) -> float | None:
        """Peak RSS of the process that serves, while it runs (Linux); None if unknown."""
        return peak_rss_mb(self.pid)

    def __enter__(self) -> EmbeddedAws:
        return self.start() if not self.running else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def trim_kinesis(self, stream_arn: str, delivered: Mapping[str, int]) -> int:
        """Forget a stream's records up to the given sequence number per shard; returns how many.

        A local stand-in for Kinesis retention that keeps the embedded AWS's memory flat: callers pass
        the positions every delivery stream reading the stream has delivered. Delivery streams start at
        LATEST as of their creation, so no delivery stream can ask for these records again. Sent to the
        server's control route (``TRIM_PATH``), so it works whichever process serves.
        """
        body = json.dumps(
            {"region": self.region, "stream_arn": stream_arn, "delivered": dict(delivered)}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
            f"{self.endpoint}{TRIM_PATH}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            removed: int = json.loads(response.read())["removed"]
        return removed

    @property
    def environment(self) -> dict[str, str]:
        """What points the AWS CLI, boto3 or a Lambda's own clients at this embedded AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    @overload
    def client(self, service: Literal["athena"], *, max_attempts: int = 3) -> AthenaClient: ...
    @overload
    def client(
        self, service: Literal["cloudformation"], *, max_attempts: int = 3
    ) -> CloudFormationClient: ...
    @overload
    def client(self, service: Literal["dynamodb"], *, max_attempts: int = 3) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["firehose"], *, max_attempts: int = 3) -> FirehoseClient: ...
    @overload
    def client(self, service: Literal["glue"], *, max_attempts: int = 3) -> GlueClient: ...
    @overload
    def client(self, service: Literal["iam"], *, max_attempts: int = 3) -> IAMClient: ...
    @overload
    def client(self, service: Literal["kinesis"], *, max_attempts: int = 3) -> KinesisClient: ...
    @overload
    def client(self, service: Literal["kms"], *, max_attempts: int = 3) -> KMSClient: ...
    @overload
    def client(self, service: Literal["lambda"], *, max_attempts: int = 3) -> LambdaClient: ...
    @overload
    def client(self, service: Literal["s3"], *, max_attempts: int = 3) -> S3Client: ...
    @overload
    def client(self, service: Literal["sqs"], *, max_attempts: int = 3) -> SQSClient: ...
    @overload
    def client(self, service: str, *, max_attempts: int = 3) -> BaseClient: ...
    def client(self, service: str, *, max_attempts: int = 3) -> BaseClient:
        # No client-side parameter validation: the runtime's calls are fixed shapes, and validating
        # every GetRecords/PutObject cost ~10 % of the pipeline's throughput (bench_pipeline).
        # One session for every client, so service models are loaded once; creating clients from one
        # session is not thread-safe (the clients are), hence the lock.
        with self._session_lock:
            if self._session is None:
                self._session = _fast_timestamp_session()
            client: BaseClient = self._session.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.endpoint,
                region_name=self.region,
                config=Config(
                    retries={"max_attempts": max_attempts, "mode": "standard"}, parameter_validation=False
                ),
                **CREDENTIALS,
            )
            return client


def _utc_timestamp(value: Any) -> datetime:
    # botocore builds a dateutil tzlocal() for every timestamp it parses: on GetRecords (one
    # ApproximateArrivalTimestamp per record) that was ~40 % of the local Firehose's read time.
    # The instant is the same; only the zone it is expressed in differs (UTC).
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return botocore.utils.parse_timestamp(value)


def _fast_timestamp_session() -> boto3.session.Session:
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_utc_timestamp)
    return boto3.session.Session(botocore_session=core)
