"""The whole service on one machine: DynamoDB on moto's server, sandboxes from the local
E2B-compatible host (or real E2B, or Docker), and the local gateway in front of the functions."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import DomainError

from local.e2b_host.testing import running_host
from local.gateway import Gateway, serve
from local.template import ROOT, function_environment, sessions_table_definition

logger = logging.getLogger("local.stack")

TABLE_NAME = "sandbox-gateway-sessions-local"
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Stack:
    url: str
    provider: str
    dynamodb_url: str
    e2b_url: str | None
    gateway: Gateway
    function_log: str  # the functions' stdout: JSON logs and EMF metrics, as CloudWatch would get


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def dynamodb_server() -> Iterator[str]:
    """moto in server mode (local/moto_server.py), with the sessions table created from
    template.yaml's definition.

    Its own process: in-process, moto's request handling would share the gateway's GIL.
    """
    port = free_port()
    server = subprocess.Popen(
        # moto's own server, but one request at a time: conditional writes must be atomic.
        [sys.executable, "-m", "local.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, server)
        dynamodb = boto3.resource(
            "dynamodb",
            endpoint_url=url,
            region_name=_FAKE_AWS["AWS_DEFAULT_REGION"],
            aws_access_key_id=_FAKE_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        )
        dynamodb.create_table(TableName=TABLE_NAME, **sessions_table_definition())
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError("moto server did not start in time")


@contextlib.contextmanager
def sandbox_backend(provider: str) -> Iterator[tuple[dict[str, str], str | None]]:
    """Environment variables that point the functions at their sandboxes."""
    if provider == "e2b":
        key = os.environ.get("E2B_API_KEY")
        if not key:
            raise SystemExit("--provider e2b uses real E2B and needs E2B_API_KEY; omit it to run offline")
        yield {"E2B_API_KEY": key}, None
        return
    with running_host() as host:
        yield dict(host.env), host.url


@contextlib.contextmanager
def running_stack(
    *, host: str = "127.0.0.1", port: int = 0, provider: str = "local", concurrency: int = 8
) -> Iterator[Stack]:
    docker_owner = f"stack-{secrets.token_hex(4)}"
    with dynamodb_server() as dynamodb_url, sandbox_backend(provider) as (sandbox_env, e2b_url):
        environment = {
            **function_environment(),
            **_FAKE_AWS,
            **sandbox_env,
            "TABLE_NAME": TABLE_NAME,
            "DYNAMODB_ENDPOINT_URL": dynamodb_url,
            # Local development: the Docker provider is allowed here and only here.
            "LOCAL_MODE": "true",
            "DOCKER_OWNER": docker_owner,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "SandboxGatewayLocal",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"),
        }
        handle, log_path = tempfile.mkstemp(prefix="sandbox-gateway-functions-", suffix=".log")
        os.close(handle)
        gateway = serve(host, port, environment, concurrency, log_path)
        try:
            yield Stack(gateway.url, provider, dynamodb_url, e2b_url, gateway, log_path)
        finally:
            gateway.shutdown()
            gateway.pools.shutdown()
            _remove_docker_sandboxes(docker_owner)


def _remove_docker_sandboxes(owner: str) -> None:
    """Sessions die with this stack's in-memory DynamoDB: so do their containers."""
    try:
        removed = DockerSandboxProvider(Settings(docker_owner=owner)).reap(everything=True)
    except DomainError:
        return  # no engine: nothing was started on it
    if removed:
        logger.info("removed %d Docker sandbox(es) of this stack", len(removed))
