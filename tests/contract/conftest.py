"""Contract tier: one suite of provider behaviour, run against every real provider.

E2B runs through the unmodified SDK over HTTP against the local E2B-compatible host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.adapters.e2b import E2BSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Environment
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec

from local.e2b_host.testing import HostInfo, running_host
from tests.support.docker_engine import require_docker_image


@pytest.fixture(scope="session")
def e2b_host() -> Iterator[HostInfo]:
    with running_host() as host:
        yield host


def e2b_provider_for(host: HostInfo) -> E2BSandboxProvider:
    return E2BSandboxProvider(
        lambda: host.env["E2B_API_KEY"],
        request_timeout_seconds=10,
        api_url=host.url,
        sandbox_url=host.url,
    )


@pytest.fixture(scope="session", params=["e2b", "docker"])
def provider_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def provider(provider_kind: str, request: pytest.FixtureRequest) -> SandboxProvider:
    if provider_kind == "docker":
        require_docker_image()
        return DockerSandboxProvider(Settings())
    return e2b_provider_for(request.getfixturevalue("e2b_host"))


def environment(provider_kind: str, language: str = "python") -> Environment:
    return next(e for e in BUILT_IN_ENVIRONMENTS if e.name == f"{provider_kind}-{language}")


SandboxFactory = Callable[..., SandboxRef]


@pytest.fixture
def new_sandbox(provider: SandboxProvider, provider_kind: str) -> Iterator[SandboxFactory]:
    """Creates sandboxes for one test and kills whatever the test left alive."""
    created: list[str] = []

    def make(language: str = "python", lifetime: int = 300, envs: dict[str, str] | None = None) -> SandboxRef:
        env = environment(provider_kind, language)
        session_id = f"ses_contract{len(created)}"
        spec = SandboxSpec(session_id, "tenant-contract", env, lifetime, envs or {})
        sandbox_id = provider.create(spec)
        created.append(sandbox_id)
        return SandboxRef(sandbox_id, session_id, env, int(time.time()) + lifetime)

    yield make
    for sandbox_id in created:
        provider.kill(sandbox_id)
