"""The whole service on one machine: DynamoDB, SQS, EventBridge and S3 on one moto server, sandboxes
from the local E2B-compatible host (or real E2B, or Docker), the local gateway in front of the
functions, and a poller that feeds the worker its queue's messages."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.config import Settings
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.models.tenant import KEY_PREFIX, SCOPES

from local.aws import FAKE_AWS, LocalAwsResources, QueuePoller, aws_client, create_resources
from local.e2b_host.testing import running_host
from local.gateway import FunctionPools, Gateway, serve
from local.template import (
    ROOT,
    ScheduledFunction,
    SqsEventSource,
    environment_references,
    function_environment,
    parameter_default,
    scheduled_functions,
    sessions_table_definition,
    sqs_event_sources,
)

logger = logging.getLogger("local.stack")

TABLE_NAME = "sandbox-gateway-sessions-local"
POOL_FUNCTION = "PoolFunction"  # template.yaml's warm-pool refill
# The deployed reaper runs every minute; locally it runs more often, so an expired session's
# sandbox is gone well within a minute (template.yaml's ReaperFunction, same handler).
REAPER_INTERVAL_SECONDS = 20.0
# The key `running_stack` creates for its callers (make dev prints it, the e2e tests send it).
DEV_TENANT = "dev"
DEV_KEY_NAME = "make-dev"
DEV_KEY_VARIABLE = "SGW_DEV_API_KEY"  # a key given in advance (sgw_<12 hex>_<43 base64url>)
DEV_KEY_FORMAT = re.compile(rf"{KEY_PREFIX}[0-9a-f]{{12}}_[A-Za-z0-9_-]{{43}}")
CACHE_SECONDS_VARIABLE = "LOCAL_AUTHORIZER_CACHE_SECONDS"  # replaces the template's ReauthorizeEvery
_FAKE_AWS = FAKE_AWS
# The stack's AWS endpoint (DynamoDB, SQS, EventBridge, S3): LocalStack's port, which AWS tooling
# and tutorials expect. `make dev --aws-port` (running_stack's aws_port) picks another; 0 a free one.
AWS_PORT = 4566
# A message the worker fails is received again after this long, not the queue's VisibilityTimeout.
QUEUE_RETRY_DELAY_SECONDS = 1
# Lambda starts an SQS event source mapping with five concurrent batches.
QUEUE_POLLERS_MAX = 5


@dataclass(frozen=True)
class Stack:
    url: str
    provider: str
    dynamodb_url: str
    e2b_url: str | None
    gateway: Gateway
    function_log: str  # the functions' stdout: JSON logs and EMF metrics, as CloudWatch would get
    scheduler: Scheduler  # runs the reaper every REAPER_INTERVAL_SECONDS
    api_key: str  # a key of tenant DEV_TENANT with every scope
    tenant_id: str = DEV_TENANT
    # The moto server's URL (same as dynamodb_url) and the resources of async executions on it.
    aws_url: str | None = None
    queue_url: str | None = None  # ExecutionQueue, which the worker's poller reads
    dead_letter_queue_url: str | None = None
    event_bus_name: str | None = None
    results_bucket: str | None = None
    completions_queue_url: str | None = None  # local only: every completion event, to read
    pollers: tuple[QueuePoller, ...] = ()
    warm_pool: Mapping[str, int] = field(default_factory=dict)  # {environment: size}; empty: none


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dynamodb(url: str) -> Any:
    return boto3.resource(
        "dynamodb",
        endpoint_url=url,
        region_name=_FAKE_AWS["AWS_DEFAULT_REGION"],
        aws_access_key_id=_FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=_FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
    )


def tenant_store(dynamodb_url: str) -> DynamoDBTenantStore:
    """The stack's keys, quotas and usage, as `sgw admin` reaches them (tests create keys with it)."""
    return DynamoDBTenantStore(_dynamodb(dynamodb_url).Table(TABLE_NAME))


def create_dev_key(dynamodb_url: str, key: str | None = None) -> str:
    """A key of tenant DEV_TENANT with every scope: `key` itself when given (it must be well-formed),
    else a new one."""
    _, created = tenant_store(dynamodb_url).create_key(
        DEV_TENANT, DEV_KEY_NAME, SCOPES, int(time.time()), key=key
    )
    return created


class AwsPortInUse(RuntimeError):
    pass


@contextlib.contextmanager
def dynamodb_server(port: int = 0) -> Iterator[str]:
    """moto in server mode (local/moto_server.py) on 127.0.0.1:`port` (0: a free one), with the
    sessions table created from template.yaml's definition. It serves SQS, EventBridge and S3 too.

    Its own process: in-process, moto's request handling would share the gateway's GIL.
    """
    if port:
        _check_port_free(port)  # else the wait below could find someone else's server there
    else:
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
        _dynamodb(url).create_table(TableName=TABLE_NAME, **sessions_table_definition())
        yield url
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_seconds`: a local server holds
    nothing worth waiting for (moto once sat past its SIGTERM and failed a test run's teardown)."""
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace_seconds)


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        # As the server will: a port left in TIME_WAIT by the last run is free to take.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise AwsPortInUse(
                f"127.0.0.1:{port} is in use (another `make dev`, or LocalStack?); "
                "--aws-port picks another port"
            ) from exc


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


class Scheduler:
    """Runs template.yaml's scheduled functions (the reaper) in the gateway's worker pools, as
    EventBridge would, every `interval_seconds` instead of their own rate."""

    def __init__(
        self, pools: FunctionPools, functions: list[ScheduledFunction], interval_seconds: float
    ) -> None:
        self._pools = pools
        self._functions = functions
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self.runs = 0

    def start(self) -> Scheduler:
        if self._functions and self._interval > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)  # a run in flight ends with the worker pools

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for function in self._functions:
                try:
                    self._pools.invoke(function.as_route(), scheduled_event(function))
                except Exception:
                    # A failed run is retried at the next tick, as EventBridge's next event would.
                    logger.exception("scheduled function %s failed", function.function)
            self.runs += 1


def resource_environment(resources: LocalAwsResources) -> dict[str, str]:
    """The functions' variables that name a resource (template.yaml's Globals, `!Ref <Resource>`),
    with the local resource's value, and the endpoint their clients use for them."""
    values = {**resources.references(), "SessionsTable": TABLE_NAME}
    environment = {name: values[logical_id] for name, logical_id in environment_references().items()}
    return {
        **environment,
        # Settings.aws_endpoint_url; boto3 itself reads AWS_ENDPOINT_URL too, so every client of
        # the functions (and the AWS CLI run with this environment) reaches the moto server.
        "AWS_ENDPOINT_URL": resources.endpoint_url,
        "DYNAMODB_ENDPOINT_URL": resources.endpoint_url,
        "WORKER_TIMEOUT_SECONDS": str(parameter_default("WorkerTimeoutSeconds")),
        # Callbacks to loopback (a developer's own listener) are allowed here, and only here.
        "CALLBACK_ALLOW_LOOPBACK": "true",
    }


def start_pollers(
    pools: FunctionPools, resources: LocalAwsResources, sources: list[SqsEventSource], concurrency: int
) -> list[QueuePoller]:
    """One poller per SQS event source (the worker's queue), invoking its function in the pools."""
    pollers = []
    for source in sources:
        route = source.as_route()  # the function's own timeout, as Lambda gives it
        poller = QueuePoller(
            aws_client("sqs", resources.endpoint_url),
            resources.queue_urls[source.queue],
            functools.partial(pools.invoke, route),
            source.batch_size,
            QUEUE_RETRY_DELAY_SECONDS,
            report_batch_item_failures=source.reports_batch_item_failures,
            concurrency=max(1, min(concurrency, QUEUE_POLLERS_MAX)),
        )
        pollers.append(poller.start())
    return pollers


def scheduled_event(function: ScheduledFunction) -> dict[str, object]:
    now = time.gmtime()
    return {
        "version": "0",
        "id": secrets.token_hex(16),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        "region": _FAKE_AWS["AWS_REGION"],
        "resources": [f"arn:aws:events:local:000000000000:rule/{function.function}"],
        "detail": {},
    }


@contextlib.contextmanager
def running_stack(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    provider: str = "local",
    concurrency: int = 8,
    reaper_interval_seconds: float = REAPER_INTERVAL_SECONDS,
    extra_environment: Mapping[str, str] | None = None,
    api_key: str | None = None,
    authorizer_cache_seconds: float | None = None,
    aws_port: int = AWS_PORT,
    warm_pool: str = "",
) -> Iterator[Stack]:
    """`extra_environment` is applied to the functions' environment last (tests use it to point
    the functions at a faulty E2B, or to run them as deployed, without LOCAL_MODE).

    The stack's dev key is `api_key`, else SGW_DEV_API_KEY, else a new one. The authorizer's
    answers are cached for `authorizer_cache_seconds`, else LOCAL_AUTHORIZER_CACHE_SECONDS, else
    the template's ReauthorizeEvery, as deployed.

    DynamoDB, SQS, EventBridge and S3 answer on 127.0.0.1:`aws_port` (0: a free port; tests).

    `warm_pool` ("e2b-python=1,docker-python=1", WARM_POOL's form) boots that many sandboxes ahead,
    before the stack is returned, and the scheduler keeps the pool full (template.yaml's
    PoolFunction); empty: none."""
    docker_owner = f"stack-{secrets.token_hex(4)}"
    pool_sizes = Settings.from_environ({"WARM_POOL": warm_pool}).warm_pool  # a bad value fails here
    api_key = api_key or os.environ.get(DEV_KEY_VARIABLE) or None
    if api_key is not None and not DEV_KEY_FORMAT.fullmatch(api_key):
        # Checked before anything starts; the value itself is a secret and is not repeated.
        raise ValueError(f"{DEV_KEY_VARIABLE} is not a key: sgw_<12 hex>_<43 base64url characters>")
    if authorizer_cache_seconds is None and os.environ.get(CACHE_SECONDS_VARIABLE):
        authorizer_cache_seconds = float(os.environ[CACHE_SECONDS_VARIABLE])
    with dynamodb_server(aws_port) as dynamodb_url, sandbox_backend(provider) as (sandbox_env, e2b_url):
        dev_key = create_dev_key(dynamodb_url, api_key)
        resources = create_resources(dynamodb_url)
        environment = {
            **function_environment(),
            **_FAKE_AWS,
            **sandbox_env,
            **resource_environment(resources),
            # Local development: the Docker provider is allowed here and only here.
            "LOCAL_MODE": "true",
            "DOCKER_OWNER": docker_owner,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "SandboxGatewayLocal",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"),
            "WARM_POOL": warm_pool,
            **(extra_environment or {}),
        }
        handle, log_path = tempfile.mkstemp(prefix="sandbox-gateway-functions-", suffix=".log")
        os.close(handle)
        gateway = serve(host, port, environment, concurrency, log_path, authorizer_cache_seconds)
        scheduled = scheduled_functions()
        if environment["WARM_POOL"]:
            # Full before the first create, not a scheduler tick later.
            (refill,) = [function for function in scheduled if function.function == POOL_FUNCTION]
            gateway.pools.invoke(refill.as_route(), scheduled_event(refill))
        scheduler = Scheduler(gateway.pools, scheduled, reaper_interval_seconds).start()
        sources = sqs_event_sources()
        pollers = start_pollers(gateway.pools, resources, sources, concurrency)
        (worker_queue,) = {source.queue for source in sources}  # the template has one, ExecutionQueue
        try:
            yield Stack(
                gateway.url,
                provider,
                dynamodb_url,
                e2b_url,
                gateway,
                log_path,
                scheduler,
                dev_key,
                aws_url=dynamodb_url,
                queue_url=resources.queue_urls[worker_queue],
                dead_letter_queue_url=resources.dead_letter_queue_url(worker_queue),
                event_bus_name=resources.event_bus_name,
                results_bucket=environment.get("RESULTS_BUCKET"),
                completions_queue_url=resources.completions_queue_url,
                pollers=tuple(pollers),
                warm_pool=pool_sizes,
            )
        finally:
            for poller in pollers:  # before the pools they invoke go away
                poller.stop()
            scheduler.stop()
            gateway.shutdown()
            gateway.pools.shutdown()
            _remove_docker_sandboxes(docker_owner)


def _remove_docker_sandboxes(owner: str, budget_seconds: float = 15.0) -> None:
    """Sessions die with this stack's in-memory DynamoDB: so do their containers.

    Bounded: an engine that hangs on one stuck container (it can take a minute to answer) must
    not hold up the stack's exit; `make reap` finishes the job later.
    """

    def remove() -> None:
        try:
            removed = DockerSandboxProvider(Settings(docker_owner=owner)).reap(everything=True)
        except DomainError:
            return  # no engine: nothing was started on it
        if removed:
            logger.info("removed %d Docker sandbox(es) of this stack", len(removed))

    worker = threading.Thread(target=remove, name="remove-docker-sandboxes", daemon=True)
    worker.start()
    worker.join(budget_seconds)
    if worker.is_alive():
        logger.warning(
            "the Docker engine did not answer in %.0f s; `make reap` removes what is left", budget_seconds
        )
