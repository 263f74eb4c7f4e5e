"""Small cached factories that build the services with their adapters, once per warm container."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import boto3

from sandbox_gateway.adapters.aws_outbound import (
    EventBridgeExecutionEvents,
    S3ResultStore,
    SqsExecutionQueue,
    s3_client,
)
from sandbox_gateway.adapters.callbacks import CallbackGuard, HttpCallbackSender
from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.adapters.execution_finish import DynamoDBExecutionFinisher
from sandbox_gateway.adapters.execution_store import DynamoDBExecutionStore
from sandbox_gateway.adapters.idempotency import IdempotentRequests
from sandbox_gateway.adapters.kms import KmsSealer
from sandbox_gateway.adapters.pool_store import DynamoDBSandboxPool
from sandbox_gateway.adapters.secrets import e2b_api_key_source
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore, TenantCallbackSecrets
from sandbox_gateway.api.context import vouched_quota_overrides
from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import get_settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Provider
from sandbox_gateway.ports import SandboxProvider, SessionRepository
from sandbox_gateway.providers import ProviderRegistry
from sandbox_gateway.services.executions import ExecutionService
from sandbox_gateway.services.files import FileService
from sandbox_gateway.services.orchestration import AsyncPorts, ExecutionOrchestrator
from sandbox_gateway.services.pool import WarmPool
from sandbox_gateway.services.reaper import OrphanSweep, ReaperService, StillLive
from sandbox_gateway.services.sessions import SessionService
from sandbox_gateway.services.tenants import TenantLedger, default_quotas
from sandbox_gateway.timing import SANDBOX, Timed, time_dynamodb_calls

if TYPE_CHECKING:
    # The providers' adapters import their SDKs (E2B's, docker-py): each factory imports its own
    # when first called, so a function whose routes reach no sandbox (meta, the authorizer)
    # never loads them, and docker-py is never imported where it is not installed (Lambda).
    from sandbox_gateway.adapters.docker import DockerSandboxProvider
    from sandbox_gateway.adapters.e2b import E2BSandboxProvider

_overrides: dict[object, object] = {}


@cache
def providers() -> ProviderRegistry:
    """Each provider behind its factory; tests' overrides take a provider's place. Every call into a
    provider counts as the request's sandbox time (Server-Timing)."""

    def factory(provider: Provider, build: Callable[[], SandboxProvider]) -> Callable[[], SandboxProvider]:
        def timed() -> SandboxProvider:
            chosen = _overrides.get(provider) or build()
            return cast(SandboxProvider, Timed(chosen, SANDBOX))

        return timed

    factories = {
        Provider.E2B: factory(Provider.E2B, e2b_provider),
        Provider.DOCKER: factory(Provider.DOCKER, docker_provider),
    }
    return ProviderRegistry.for_deployment(factories, local_mode=get_settings().local_mode)


def provider_for(provider: Provider) -> SandboxProvider:
    return providers().get(provider)


@cache
def catalogue() -> EnvironmentCatalogue:
    settings = get_settings()
    return EnvironmentCatalogue([*BUILT_IN_ENVIRONMENTS, *settings.custom_environments], providers())


@cache
def sessions_table() -> Any:
    """The one table: sessions, and the tenants' keys, quotas and usage beside them."""
    settings = get_settings()
    resource = boto3.resource("dynamodb", endpoint_url=settings.dynamodb_endpoint_url)
    time_dynamodb_calls(resource.meta.client)
    return resource.Table(settings.table_name)


@cache
def session_repository() -> SessionRepository:
    if "repository" in _overrides:
        return _overrides["repository"]  # type: ignore[return-value]
    return DynamoDBSessionRepository(sessions_table())


@cache
def idempotent(operation: str) -> IdempotentRequests:
    """Idempotency-Key records of one route: "create-session", "execute", "write-file"."""
    settings = get_settings()
    client = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url)
    time_dynamodb_calls(client)
    return IdempotentRequests(settings.table_name, client, operation)


def idempotent_create() -> IdempotentRequests:
    return idempotent("create-session")


@cache
def aws_client(service: str) -> Any:
    """SQS, EventBridge and S3: AWS_ENDPOINT_URL points them at the local stack's moto."""
    return boto3.client(service, endpoint_url=get_settings().aws_endpoint_url)


@cache
def execution_store() -> DynamoDBExecutionStore:
    return DynamoDBExecutionStore(sessions_table(), get_settings().execution_retention_seconds)


@cache
def result_store() -> S3ResultStore | None:
    settings = get_settings()
    if not settings.results_bucket:
        return None
    # Path-style URLs locally: a presigned URL must name 127.0.0.1, not <bucket>.127.0.0.1.
    client = s3_client(settings.aws_endpoint_url)
    return S3ResultStore(client, settings.results_bucket, settings.result_url_seconds)


@cache
def callback_guard() -> CallbackGuard:
    return CallbackGuard(allow_loopback=get_settings().callback_allow_loopback)


@cache
def async_ports() -> AsyncPorts | None:
    """None unless queue, bus and bucket are all configured: async is all or nothing."""
    settings = get_settings()
    if not (settings.execution_queue_url and settings.event_bus_name and settings.results_bucket):
        return None
    return AsyncPorts(
        queue=SqsExecutionQueue(aws_client("sqs"), settings.execution_queue_url),
        events=EventBridgeExecutionEvents(aws_client("events"), settings.event_bus_name),
        callbacks=HttpCallbackSender(
            callback_guard(),
            attempts=settings.callback_attempts,
            timeout_seconds=settings.callback_timeout_seconds,
        ),
        secrets=callback_secrets(),
    )


@cache
def callback_secrets() -> TenantCallbackSecrets:
    return TenantCallbackSecrets(tenant_store())


@cache
def orchestrator() -> ExecutionOrchestrator:
    return ExecutionOrchestrator(
        execution_service(),
        session_service(),
        catalogue(),
        execution_store(),
        result_store(),
        settings=get_settings(),
        async_ports=async_ports(),
        tenants=tenant_store(),
        check_callback_url=callback_guard().check_syntax,
    )


@cache
def e2b_provider() -> E2BSandboxProvider:
    from sandbox_gateway.adapters.e2b import E2BSandboxProvider  # noqa: PLC0415 - see TYPE_CHECKING

    settings = get_settings()
    return E2BSandboxProvider(
        e2b_api_key_source(settings),
        request_timeout_seconds=settings.e2b_request_timeout_seconds,
        api_url=settings.e2b_api_url,
        sandbox_url=settings.e2b_sandbox_url,
        output_limit_bytes=settings.e2b_output_limit_bytes,
        workspace=settings.workspace_root,
        sealer=access_sealer(),
    )


@cache
def access_sealer() -> KmsSealer | None:
    key_id = get_settings().sandbox_access_key_id
    return KmsSealer(key_id, lambda: aws_client("kms")) if key_id else None


@cache
def docker_provider() -> DockerSandboxProvider:
    from sandbox_gateway.adapters.docker import DockerSandboxProvider  # noqa: PLC0415 - see TYPE_CHECKING

    return DockerSandboxProvider(get_settings())


@cache
def tenant_store() -> DynamoDBTenantStore:
    return DynamoDBTenantStore(sessions_table())


@cache
def tenant_ledger() -> TenantLedger:
    # A request's quotas come with the authorizer's answer when it carried them (no read).
    return TenantLedger(tenant_store(), default_quotas(get_settings()), vouched=vouched_quota_overrides)


@cache
def session_service() -> SessionService:
    return SessionService(
        session_repository(),
        provider_for,
        catalogue(),
        get_settings(),
        ledger=tenant_ledger(),
        pool=warm_pool() if get_settings().warm_pool else None,
    )


@cache
def warm_pool() -> WarmPool:
    settings = get_settings()
    return WarmPool(
        DynamoDBSandboxPool(sessions_table()),
        provider_for,
        catalogue(),
        sizes=settings.warm_pool,
        max_age_seconds=settings.warm_pool_max_age_seconds,
    )


@cache
def execution_service() -> ExecutionService:
    return ExecutionService(
        session_service(),
        session_repository(),
        get_settings(),
        ledger=tenant_ledger(),
        finisher=execution_finisher(),
    )


@cache
def execution_finisher() -> DynamoDBExecutionFinisher | None:
    """One transaction for a synchronous execute's release, usage and record; None when a test
    put another session repository in place (the writes then go one by one)."""
    repository = session_repository()
    if not isinstance(repository, DynamoDBSessionRepository):
        return None
    return DynamoDBExecutionFinisher(sessions_table(), repository, tenant_store(), execution_store())


@cache
def file_service() -> FileService:
    return FileService(session_service(), get_settings(), ledger=tenant_ledger())


@cache
def reaper_service() -> ReaperService:
    settings = get_settings()
    sweeps: list[OrphanSweep] = []
    if Provider.DOCKER in providers().enabled and Provider.DOCKER not in _overrides:
        # Containers whose sessions the store no longer knows as live (labels cannot change).
        def docker_sweep(still_live: StillLive) -> int:
            return len(docker_provider().reap(still_live))

        sweeps.append(docker_sweep)
    return ReaperService(
        session_repository(), provider_for, batch_size=settings.reaper_batch_size, orphan_sweeps=sweeps
    )


def override(key: object, value: object) -> None:
    """Tests: use `value` for a provider (by Provider) or for "repository"."""
    _overrides[key] = value
    reset(keep_overrides=True)


def reset(*, keep_overrides: bool = False) -> None:
    """Tests: forget every cached object so the next call reads settings afresh."""
    if not keep_overrides:
        _overrides.clear()
    get_settings.cache_clear()
    for factory in (
        sessions_table,
        tenant_store,
        tenant_ledger,
        providers,
        catalogue,
        session_repository,
        idempotent,
        aws_client,
        execution_store,
        result_store,
        callback_guard,
        async_ports,
        callback_secrets,
        orchestrator,
        e2b_provider,
        docker_provider,
        access_sealer,
        warm_pool,
        session_service,
        execution_finisher,
        execution_service,
        file_service,
        reaper_service,
    ):
        factory.cache_clear()
