"""Contract tier: one suite of provider behaviour, run against every provider.

E2B runs through the unmodified SDK over HTTP against the local E2B-compatible host; Docker
against the engine; the fake (tests/support/fakes.py) in memory, so the fake the service tests
stand on cannot drift from the real providers. Tests that need a real interpreter ask for the
`runs_code` fixture, which skips the fake (it answers code by a rule set).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.adapters.e2b import E2BSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS, Environment
from sandbox_gateway.models.errors import DomainError
from sandbox_gateway.ports import SandboxProvider, SandboxRef, SandboxSpec

from local.e2b_host.testing import HostInfo, running_host
from tests.support.docker_engine import require_docker_image
from tests.support.fakes import FakeSandboxProvider


@pytest.fixture(scope="session")
def e2b_host() -> Iterator[HostInfo]:
    with running_host() as host:
        yield host


def e2b_provider_for(host: HostInfo, **options: Any) -> E2BSandboxProvider:
    return E2BSandboxProvider(
        lambda: host.env["E2B_API_KEY"],
        request_timeout_seconds=10,
        api_url=host.url,
        sandbox_url=host.url,
        **options,
    )


@pytest.fixture(scope="module")
def e2b(e2b_host: HostInfo) -> E2BSandboxProvider:
    """The service's E2B adapter on the local host, for the E2B-only attack tests."""
    return e2b_provider_for(e2b_host)


@pytest.fixture
def ref(e2b: E2BSandboxProvider, request: pytest.FixtureRequest) -> Iterator[SandboxRef]:
    """A fresh E2B sandbox for one test, killed after it."""
    env = environment("e2b")
    session_id = "ses_" + request.node.name.replace("[", "_").replace("]", "")[:48]
    sandbox_id = e2b.create(SandboxSpec(session_id, "tenant-contract", env, 300)).sandbox_id
    yield SandboxRef(sandbox_id, session_id, env, int(time.time()) + 300)
    e2b.kill(sandbox_id)


@pytest.fixture(scope="session", params=["fake", "e2b", "docker"])
def provider_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def provider(provider_kind: str, request: pytest.FixtureRequest) -> SandboxProvider:
    if provider_kind == "fake":
        return FakeSandboxProvider()
    if provider_kind == "docker":
        require_docker_image()
        return DockerSandboxProvider(Settings())
    return e2b_provider_for(request.getfixturevalue("e2b_host"))


@pytest.fixture
def runs_code(provider_kind: str) -> None:
    """For tests that need a real interpreter (state, output, the workspace seen from code)."""
    if provider_kind == "fake":
        pytest.skip("the fake answers code by a rule set; it is held to everything else")


def environment(provider_kind: str, language: str = "python") -> Environment:
    kind = "e2b" if provider_kind == "fake" else provider_kind  # the fake stands in for E2B
    return next(e for e in BUILT_IN_ENVIRONMENTS if e.name == f"{kind}-{language}")


@contextlib.contextmanager
def raises_exactly(error: type[DomainError], code: str) -> Iterator[pytest.ExceptionInfo[DomainError]]:
    """Exactly this class and code: a broad `pytest.raises(ProviderError)` also passes on an
    unreachable or timed-out provider."""
    with pytest.raises(error) as caught:
        yield caught
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert caught.value.code == code


SandboxFactory = Callable[..., SandboxRef]


@pytest.fixture
def new_sandbox(provider: SandboxProvider, provider_kind: str) -> Iterator[SandboxFactory]:
    """Creates sandboxes for one test and kills whatever the test left alive."""
    created: list[str] = []

    def make(language: str = "python", lifetime: int = 300, envs: dict[str, str] | None = None) -> SandboxRef:
        env = environment(provider_kind, language)
        session_id = f"ses_contract{len(created)}"
        spec = SandboxSpec(session_id, "tenant-contract", env, lifetime, envs or {})
        sandbox_id = provider.create(spec).sandbox_id
        created.append(sandbox_id)
        return SandboxRef(sandbox_id, session_id, env, int(time.time()) + lifetime)

    yield make
    for sandbox_id in created:
        provider.kill(sandbox_id)
