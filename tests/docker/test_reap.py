"""`make reap`: one sweep by label, checked against the session store. (The periodic sweep is the
reaper service's, tested in tests/integration/test_exploit_expired_session_keeps_its_sandbox.py.)"""

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

from local.docker_sandbox.reap import main as make_reap

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


def test_make_reap_removes_only_expired_containers_of_its_owner(
    owned: DockerSandboxProvider, engine: docker.DockerClient
) -> None:
    expired = owned.create(SandboxSpec("ses_docker_reap_expired", "tenant-docker", ENVIRONMENT, 1)).sandbox_id
    live = owned.create(SandboxSpec("ses_docker_reap_live", "tenant-docker", ENVIRONMENT, 300)).sandbox_id
    time.sleep(1.1)

    assert make_reap([]) == 0
    names = {c.name for c in engine.containers.list(all=True)}
    assert expired not in names and live in names
