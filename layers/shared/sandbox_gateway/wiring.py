"""Small cached factories that build the services with their adapters, once per warm container."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

import boto3

from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.adapters.dynamodb import DynamoDBSessionRepository
from sandbox_gateway.adapters.e2b import E2BSandboxProvider
from sandbox_gateway.adapters.idempotency import IdempotentCreate
from sandbox_gateway.adapters.secrets import e2b_api_key_source
from sandbox_gateway.adapters.tenants import DynamoDBTenantStore
from sandbox_gateway.catalogue import EnvironmentCatalogue
from sandbox_gateway.config import get_settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Provider
from sandbox_gateway.ports import SandboxProvider, SessionRepository
from sandbox_gateway.providers import ProviderRegistry
from sandbox_gateway.services.executions import ExecutionService
from sandbox_gateway.services.files import FileService
from sandbox_gateway.services.reaper import OrphanSweep, ReaperService, StillLive
from sandbox_gateway.services.sessions import SessionService
from sandbox_gateway.services.tenants import TenantLedger, default_quotas
from sandbox_gateway.timing import SANDBOX, Timed, time_dynamodb_calls

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
def idempotent_create() -> IdempotentCreate:
    settings = get_settings()
    client = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url)
    time_dynamodb_calls(client)
    return IdempotentCreate(settings.table_name, client)


@cache
def e2b_provider() -> E2BSandboxProvider:
    settings = get_settings()
    return E2BSandboxProvider(
        e2b_api_key_source(settings),
        request_timeout_seconds=settings.e2b_request_timeout_seconds,
        api_url=settings.e2b_api_url,
        sandbox_url=settings.e2b_sandbox_url,
        output_limit_bytes=settings.e2b_output_limit_bytes,
        workspace=settings.workspace_root,
    )


@cache
def docker_provider() -> DockerSandboxProvider:
    return DockerSandboxProvider(get_settings())


@cache
def tenant_store() -> DynamoDBTenantStore:
    return DynamoDBTenantStore(sessions_table())


@cache
def tenant_ledger() -> TenantLedger:
    return TenantLedger(tenant_store(), default_quotas(get_settings()))


@cache
def session_service() -> SessionService:
    return SessionService(
        session_repository(), provider_for, catalogue(), get_settings(), ledger=tenant_ledger()
    )


@cache
def execution_service() -> ExecutionService:
    return ExecutionService(session_service(), session_repository(), get_settings(), ledger=tenant_ledger())


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
        idempotent_create,
        e2b_provider,
        docker_provider,
        session_service,
        execution_service,
        file_service,
        reaper_service,
    ):
        factory.cache_clear()
