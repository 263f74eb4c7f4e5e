"""The reaper's entry points for the local stack: one cheap sweep by label, and a periodic one."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from sandbox_gateway import wiring
from sandbox_gateway.adapters.docker import DockerSandboxProvider
from sandbox_gateway.config import Settings
from sandbox_gateway.models.environment import BUILT_IN_ENVIRONMENTS
from sandbox_gateway.ports import SandboxSpec

from local.docker_sandbox.reap import reap_once, start_periodic_reaper

ENVIRONMENT = next(e for e in BUILT_IN_ENVIRONMENTS if e.name == "docker-python")


class NoLiveSessions:
    """A session store that knows no session: every expired container may go."""

    def get(self, tenant_id: str, session_id: str) -> Any:
        return None


@pytest.fixture
def owned(engine: docker.DockerClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerSandboxProvider]:
    owner = f"reap-test-{secrets.token_hex(3)}"
    monkeypatch.setenv("DOCKER_OWNER", owner)
    wiring.override("repository", NoLiveSessions())
    provider = DockerSandboxProvider(Settings(docker_owner=owner))
    yield provider
    provider.reap(everything=True)
    wiring.reset()


def test_reap_once_removes_only_expired_containers_of_its_owner(
    owned: DockerSandboxProvider, engine: docker.DockerClient
) -> None:
    expired = owned.create(SandboxSpec("ses_docker_reap_expired", "tenant-docker", ENVIRONMENT, 1))
    live = owned.create(SandboxSpec("ses_docker_reap_live", "tenant-docker", ENVIRONMENT, 300))
    time.sleep(1.1)

    assert reap_once() == [expired]
    names = {c.name for c in engine.containers.list(all=True)}
    assert expired not in names and live in names


def test_start_periodic_reaper_removes_an_expired_container_within_its_interval(
    owned: DockerSandboxProvider, engine: docker.DockerClient
) -> None:
    expired = owned.create(SandboxSpec("ses_docker_reap_periodic", "tenant-docker", ENVIRONMENT, 1))
    stop = start_periodic_reaper(interval_seconds=0.5)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and expired in {c.name for c in engine.containers.list(all=True)}:
            time.sleep(0.2)
    finally:
        stop.set()
    assert expired not in {c.name for c in engine.containers.list(all=True)}
