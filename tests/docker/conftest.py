"""Fixtures of the Docker provider's tests. Their honesty (a skip in CI is a failure, the summary
counts them) lives in tests/conftest.py: report hooks only see the items below their conftest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sandbox_gateway.config import Settings
from sandbox_gateway.ports import SandboxRef

from tests.support.docker_engine import require_docker_image, sandbox_for

SETTINGS = Settings(docker_memory_mb=256, docker_pids_limit=64)


@pytest.fixture(scope="session")
def engine() -> Any:
    require_docker_image()
    import docker  # noqa: PLC0415

    return docker.from_env()


@pytest.fixture(scope="session")
def provider(engine: Any) -> Any:
    from sandbox_gateway.adapters.docker import DockerSandboxProvider  # noqa: PLC0415

    return DockerSandboxProvider(SETTINGS)


@pytest.fixture
def sandbox(provider: Any, request: pytest.FixtureRequest) -> Iterator[SandboxRef]:
    yield from sandbox_for(provider, request.node.name)
